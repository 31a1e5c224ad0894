# SPDX-License-Identifier: MIT
# ldpath.sh - sourced by install.sh and check-install.sh: does the dynamic
# loader find libevq in a directory without LD_LIBRARY_PATH?

# ld_searched DIR: DIR is one ldconfig scans (/etc/ld.so.conf and its
# includes, and the built-in /lib and /usr/lib ones), compared with
# symlinks resolved (/lib is /usr/lib on a merged-/usr system). Works
# without root: -N -X build no cache and make no links.
ld_searched() {
	local want d
	want=$(realpath -m "$1")
	while IFS= read -r d; do
		[ "$(realpath -m "$d")" = "$want" ] && return 0
	done < <(PATH="$PATH:/usr/sbin:/sbin" ldconfig -v -N -X 2>/dev/null |
		 sed -n 's|^\(/[^:]*\):.*|\1|p')
	return 1
}

# ldconfig_knows DIR: the loader's cache has libevq.so.0 from DIR.
ldconfig_knows() {
	local want p
	want=$(realpath -m "$1")
	while IFS= read -r p; do
		[ "$(realpath -m "$(dirname "$p")")" = "$want" ] && return 0
	done < <(PATH="$PATH:/usr/sbin:/sbin" ldconfig -p 2>/dev/null |
		 sed -n 's|^[[:space:]]*libevq\.so\.0 .*=> \(/.*\)$|\1|p')
	return 1
}
