#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# install.sh [--no-build] BUILD_DIR PREFIX - what `make install` does:
#   1. checks that PREFIX can be written, before building anything; if
#      not, says how to install (sudo, or PREFIX= a directory of yours);
#   2. configures BUILD_DIR for PREFIX and builds it (not with
#      --no-build); under sudo, as the user who owns BUILD_DIR, so that
#      the tree stays theirs;
#   3. cmake --install;
#   4. makes the library findable: when its directory is one the dynamic
#      loader searches (/usr/local/lib, ...), runs ldconfig as root, or
#      says to; otherwise says what to set (LD_LIBRARY_PATH, ...);
#   5. builds README.md's example against what is now installed and runs
#      it (scripts/check-install.sh --installed), as a user would.
# With DESTDIR set (staging for a package) only 2 and 3 are done.
# Environment: CMAKE, JOBS, CMAKE_ARGS (extra -D options), as make's.

set -euo pipefail

build_too=1
if [ "${1:-}" = --no-build ]; then
	build_too=0
	shift
fi
[ $# -eq 2 ] || { echo "usage: install.sh [--no-build] BUILD_DIR PREFIX" >&2; exit 2; }
build=$1 prefix=$2
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cmake=${CMAKE:-cmake}
jobs=${JOBS:-$(nproc)}
read -r -a extra <<<"${CMAKE_ARGS:-}"
export PATH="$PATH:/usr/sbin:/sbin"	# ldconfig, for users whose PATH lacks them

say() { printf 'install: %s\n' "$*"; }
die() { printf 'install: error: %s\n' "$*" >&2; exit 1; }

case $prefix in
/*) ;;
*) die "PREFIX must be an absolute path, not '$prefix' (say PREFIX=\$HOME/.local)" ;;
esac
uid=$(id -u)

# 1. Can we write there? The nearest existing directory of each place
# cmake --install writes to must be writable (root can write anywhere).
writable() {
	local d=$1
	while [ ! -e "$d" ]; do
		d=$(dirname "$d")
	done
	[ -w "$d" ]
}
if [ -z "${DESTDIR:-}" ] && [ "$uid" -ne 0 ]; then
	for d in "$prefix/include" "$prefix/lib" "$prefix/share/man"; do
		writable "$d" && continue
		cat >&2 <<EOF
install: error: cannot write to $prefix (as $(id -un)).
install: either install system-wide, as root:
  sudo make install                 # PREFIX=$prefix; runs ldconfig
install: or into a directory of yours, say:
  make install PREFIX=\$HOME/.local
install: (then programs find libevq through LD_LIBRARY_PATH or an rpath;
install: the end of that install says what to set)
EOF
		exit 1
	done
fi

# 2. Configure and build. Under sudo, build as the owner of the tree, so
# that root-owned files do not end up in it.
as_owner=()
if [ "$uid" -eq 0 ] && [ -n "${SUDO_UID:-}" ] && [ -d "$build" ] &&
   [ "$(stat -c %u "$build")" = "$SUDO_UID" ] && command -v setpriv >/dev/null; then
	as_owner=(setpriv --reuid="$SUDO_UID" --regid="${SUDO_GID:-$SUDO_UID}" --init-groups)
fi
if [ $build_too = 1 ]; then
	"${as_owner[@]}" "$cmake" -S "$root" -B "$build" \
		-DCMAKE_BUILD_TYPE=RelWithDebInfo -DEVQ_WERROR=ON \
		-DCMAKE_INSTALL_PREFIX="$prefix" "${extra[@]}"
	"${as_owner[@]}" "$cmake" --build "$build" -j"$jobs"
fi
[ -f "$build/CMakeCache.txt" ] || die "$build is not a configured build tree"

# 3. Install.
"$cmake" --install "$build" --prefix "$prefix"
# cmake --install writes these into the tree; keep them the owner's.
if [ ${#as_owner[@]} -gt 0 ]; then
	for f in "$build/install_manifest.txt" "$build/evq.pc"; do
		[ -e "$f" ] && chown "$SUDO_UID:${SUDO_GID:-$SUDO_UID}" "$f"
	done
fi
if [ -n "${DESTDIR:-}" ]; then
	say "installed under DESTDIR=$DESTDIR (no ldconfig, no check)"
	exit 0
fi

# 4. Can programs find the library? Where GNUInstallDirs put it:
libdir=$(sed -n 's/^CMAKE_INSTALL_LIBDIR:[A-Z]*=//p' "$build/CMakeCache.txt")
case $libdir in
/*) ;;
*) libdir=$prefix/${libdir:-lib} ;;
esac
# shellcheck source=scripts/ldpath.sh
. "$root/scripts/ldpath.sh"
if ld_searched "$libdir"; then
	if [ "$uid" -eq 0 ]; then
		ldconfig
		ldconfig_knows "$libdir" ||
			die "ran ldconfig, but it does not list $libdir/libevq.so.0"
		say "ran ldconfig: programs find libevq.so.0 in $libdir"
	else
		say "$libdir is a system directory: until root runs"
		say "  sudo ldconfig"
		say "programs fail with 'libevq.so.0: cannot open shared object file'"
	fi
else
	say "$libdir is not searched by the dynamic loader; to run programs"
	say "linked with libevq, either"
	say "  export LD_LIBRARY_PATH=$libdir\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
	say "or link them with -Wl,-rpath,$libdir"
fi
pcdir=$libdir/pkgconfig
if ! tr ':' '\n' <<<"$(pkg-config --variable pc_path pkg-config 2>/dev/null)" |
     grep -qxF "$pcdir"; then
	say "pkg-config does not look in $pcdir by default:"
	say "  export PKG_CONFIG_PATH=$pcdir\${PKG_CONFIG_PATH:+:\$PKG_CONFIG_PATH}"
fi
mandir=$prefix/share/man
if command -v manpath >/dev/null 2>&1 &&
   ! manpath 2>/dev/null | tr ':' '\n' | grep -qxF "$mandir"; then
	say "man does not look in $mandir by default:"
	say "  export MANPATH=$mandir:"
fi

# 5. The README's example, against what is installed.
bash "$root/scripts/check-install.sh" --installed "$prefix" "$libdir"
say "done: evq in $prefix; man evq for the API"
