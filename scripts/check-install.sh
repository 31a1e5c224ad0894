#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# check-install.sh BUILD_DIR - install a built tree and use it the way a
# user would. Two installs:
#
# A temporary prefix (staged), checked in detail:
#   - the installed files, the SONAME, and the exported symbols (exactly
#     the EVQ_API functions of evq.h, nothing else);
#   - a man page for each EVQ_API function, which man finds there;
#   - evq.h compiled alone, as strict C11 and as C++11;
#   - each examples/*.c compiled against the installed header alone, as
#     strict C11 with -Wpedantic -Werror, linked with
#     `pkg-config --cflags --libs evq`, then run (LD_LIBRARY_PATH set: a
#     temporary prefix is no place the loader searches);
#   - the same examples linked against libevq.a, then run;
#   - README.md: names only what evq.h has; its C example builds with
#     -std=c11 -pedantic -Wall -Wextra -Werror and runs;
#   - examples/find_package/, a CMake project doing find_package(evq).
# The system prefix /usr/local, as `make install` does it (install.sh:
# cmake --install, ldconfig), in a private mount namespace where
# /usr/local and /etc are overlays on a temporary directory, so that the
# real ones are not touched: the README example, built with pkg-config's
# default search path, must run WITHOUT LD_LIBRARY_PATH, and man must
# find the pages. Needs root or unprivileged user namespaces, and a root
# directory that is a mount point (not so in a bare chroot); otherwise it
# is reported as skipped, with why (`make install` runs the same check).
#
# Prints one line per check and a count; exits 1 on the first failure.
#
# Also, for install.sh and for the namespace:
#   check-install.sh --installed PREFIX LIBDIR   the README example
#       against an installed evq: without LD_LIBRARY_PATH when LIBDIR is
#       one the loader searches and ldconfig has run;
#   check-install.sh --system BUILD_DIR TMP   the /usr/local install above
#       (inside the namespace; the overlays' changes go under TMP, which
#       the caller removes once the namespace is gone).

set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cc=${CC:-cc}
cmake=${CMAKE:-cmake}
checks=0

ok() { checks=$((checks + 1)); printf 'install-check: ok: %s\n' "$*"; }
fail() { printf 'install-check: FAILED: %s\n' "$*" >&2; exit 1; }
skip() { printf 'install-check: skipped: %s\n' "$*"; }
run() {	# run a program that must end by itself, with a time limit
	timeout 30 "$@" || fail "$* exited with status $?"
}

# shellcheck source=scripts/ldpath.sh
. "$root/scripts/ldpath.sh"

# The C block of README.md into $1, as a user would paste it.
readme_source() {
	awk '/^```c$/ { f = 1; next } f && /^```$/ { exit } f' "$root/README.md" >"$1"
	[ -s "$1" ] || fail "no \`\`\`c block in README.md"
}

# Strict C11 and every warning: the README promises a clean build.
readme_cflags=(-std=c11 -pedantic -Wall -Wextra -Werror)

# --installed PREFIX LIBDIR: the README example against an installed evq.
installed_check() {
	local prefix=$1 libdir=$2 tmp deps how
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/evq-readme.XXXXXX")
	# shellcheck disable=SC2064
	trap "rm -rf '$tmp'" EXIT
	# pkg-config's own search path if it finds this evq there; else ours.
	if [ "$(pkg-config --variable=libdir evq 2>/dev/null)" != "$libdir" ]; then
		export PKG_CONFIG_PATH="$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
	fi
	readme_source "$tmp/tick.c"
	# shellcheck disable=SC2046
	"$cc" "${readme_cflags[@]}" -o "$tmp/tick" "$tmp/tick.c" \
		$(pkg-config --cflags --libs evq) ||
		fail "README.md example: compile against evq in $prefix"
	ok "README.md example: cc ${readme_cflags[*]} \$(pkg-config --cflags --libs evq)"
	if ld_searched "$libdir" && ldconfig_knows "$libdir"; then
		deps=$(env -u LD_LIBRARY_PATH ldd "$tmp/tick")
		grep -q "libevq\.so\.0 => $libdir/" <<<"$deps" ||
			fail "README.md example: the loader does not find $libdir/libevq.so.0: $(grep libevq <<<"$deps")"
		run env -u LD_LIBRARY_PATH "$tmp/tick" >/dev/null
		how="without LD_LIBRARY_PATH"
	else
		LD_LIBRARY_PATH="$libdir" run "$tmp/tick" >/dev/null
		how="with LD_LIBRARY_PATH=$libdir (not in the loader's cache)"
	fi
	ok "README.md example: runs $how"
}

# Mount an overlay on directory $1, its changes kept under $2. The upper
# directory must be on a file system that overlayfs accepts: try the
# temporary directory's, then a tmpfs; in a user namespace overlayfs may
# want "userxattr".
overlay_on() {
	local dir=$1 up=$2 opt
	mkdir -p "$up/upper" "$up/work"
	for opt in "" ",userxattr"; do
		mount -t overlay overlay \
			-o "lowerdir=$dir,upperdir=$up/upper,workdir=$up/work$opt" \
			"$dir" 2>/dev/null && return 0
	done
	return 1
}

# install_dir BUILD NAME: GNUInstallDirs' CMAKE_INSTALL_<NAME> of the
# build (an empty cache entry means its default, as GNUInstallDirs does).
install_dir() {
	local v
	v=$(sed -n "s/^CMAKE_INSTALL_$2:[A-Z]*=//p" "$1/CMakeCache.txt")
	if [ -z "$v" ]; then
		case $2 in
		MANDIR) v=$(install_dir "$1" DATAROOTDIR)/man ;;
		DATAROOTDIR) v=share ;;
		INCLUDEDIR) v=include ;;
		LIBDIR) v=lib ;;
		esac
	fi
	printf '%s\n' "$v"
}

# --system BUILD_DIR, as root in a private mount namespace: overlays on
# /etc (for ldconfig's cache) and on each directory the install writes
# into, so that the real ones stay as they are. Each such directory, or
# its nearest existing ancestor when it does not exist yet, is the root
# of an overlay of its own: in a user namespace, a directory of the lower
# layer owned by the real root cannot be copied up, so nothing may be
# written below an overlay's root into a directory that already exists.
system_check() {
	local build=$1 tmp=$2 d i=0 found var rel
	local -a dirs=()
	for var in INCLUDEDIR LIBDIR LIBDIR/pkgconfig LIBDIR/cmake/evq \
		   MANDIR/man3; do
		rel=$(install_dir "$build" "${var%%/*}")
		case $var in */*) rel=$rel/${var#*/} ;; esac
		d=/usr/local/$rel
		while [ ! -d "$d" ]; do
			d=$(dirname "$d")
		done
		dirs+=("$d")
	done
	mapfile -t dirs < <(printf '%s\n' /etc "${dirs[@]}" | sort -u)
	for d in "${dirs[@]}"; do
		i=$((i + 1))
		if ! overlay_on "$d" "$tmp/$i"; then
			mkdir -p "$tmp/tmpfs"
			mountpoint -q "$tmp/tmpfs" ||
				mount -t tmpfs tmpfs "$tmp/tmpfs" ||
				{ skip "system-prefix install: cannot mount a tmpfs"; return 0; }
			overlay_on "$d" "$tmp/tmpfs/$i" ||
				{ skip "system-prefix install: cannot mount an overlay on $d"; return 0; }
		fi
	done
	# What `make install` does after building: cmake --install, ldconfig,
	# and the README example (without LD_LIBRARY_PATH: install.sh fails
	# if ldconfig does not then list the library).
	env -u LD_LIBRARY_PATH -u PKG_CONFIG_PATH \
		bash "$root/scripts/install.sh" --no-build "$build" /usr/local \
		>"$tmp/install.log" 2>&1 ||
		{ cat "$tmp/install.log"; fail "make install to /usr/local (in a private mount namespace)"; }
	grep -v '^-- ' "$tmp/install.log"	# not cmake's list of files
	# install.sh ran --installed: count its "ok" lines here.
	checks=$((checks + $(grep -c '^install-check: ok:' "$tmp/install.log")))
	ldconfig_knows /usr/local/lib ||
		fail "/usr/local: ldconfig does not list libevq.so.0"
	ok "/usr/local: ldconfig lists libevq.so.0; the README example ran without LD_LIBRARY_PATH"
	if command -v man >/dev/null 2>&1; then
		found=$(env -u MANPATH MAN_DISABLE_SECCOMP=1 man -w evq_io_stop 2>/dev/null || true)
		# (man-db follows the .so page to the one it sources.)
		case $found in
		/usr/local/share/man/man3/evq_io_st*.3) ;;
		*) false ;;
		esac ||
			fail "/usr/local: man -w evq_io_stop gives '$found'"
		ok "/usr/local: man finds evq_io_stop(3) with its default path"
	fi
}

case ${1:-} in
--installed)
	[ $# -eq 3 ] || fail "usage: check-install.sh --installed PREFIX LIBDIR"
	installed_check "$2" "$3"
	exit 0
	;;
--system)
	[ $# -eq 3 ] || fail "usage: check-install.sh --system BUILD_DIR TMP"
	system_check "$(cd "$2" && pwd)" "$3"
	printf 'install-check: system prefix: %d checks passed\n' "$checks"
	exit 0
	;;
esac

build=${1:?usage: check-install.sh BUILD_DIR}
build=$(cd "$build" && pwd)

prefix=$(mktemp -d "${TMPDIR:-/tmp}/evq-install.XXXXXX")
trap 'rm -rf "$prefix"' EXIT

"$cmake" --install "$build" --prefix "$prefix" >/dev/null ||
	fail "cmake --install $build --prefix $prefix"
ok "cmake --install into $prefix"

# Where GNUInstallDirs put the libraries: lib, lib64 or lib/<multiarch>.
pc=$(find "$prefix" -path '*/pkgconfig/evq.pc' -print -quit)
[ -n "$pc" ] || fail "no evq.pc installed"
libdir=$(dirname "$(dirname "$pc")")
for f in "$prefix/include/evq.h" "$libdir/libevq.so" "$libdir/libevq.so.0" \
	 "$libdir/libevq.so.0.1.0" "$libdir/libevq.a" \
	 "$libdir/cmake/evq/evqConfig.cmake" \
	 "$libdir/cmake/evq/evqConfigVersion.cmake" \
	 "$libdir/cmake/evq/evqTargets.cmake"; do
	[ -e "$f" ] || fail "not installed: ${f#"$prefix"/}"
done
ok "installed files (${libdir#"$prefix"/})"

soname=$(objdump -p "$libdir/libevq.so.0.1.0" | sed -n 's/^ *SONAME *//p')
[ "$soname" = libevq.so.0 ] || fail "SONAME is '$soname', not libevq.so.0"
ok "SONAME libevq.so.0"

# Exported symbols must be exactly the functions evq.h marks EVQ_API.
api=$(sed -nE 's/^EVQ_API[^(]*[^A-Za-z0-9_(]([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*\(.*/\1/p' \
	"$root/include/evq.h" | sort -u)
exported=$(nm -D --defined-only "$libdir/libevq.so.0.1.0" |
	awk '$2 ~ /^[TDBRVWi]$/ { print $3 }' | sort -u)
extra=$(comm -13 <(printf '%s\n' "$api") <(printf '%s\n' "$exported"))
absent=$(comm -23 <(printf '%s\n' "$api") <(printf '%s\n' "$exported"))
[ -z "$extra" ] || fail "exported but not EVQ_API in evq.h: ${extra//$'\n'/ }"
[ -z "$absent" ] || fail "EVQ_API in evq.h but not exported: ${absent//$'\n'/ }"
ok "exports exactly the $(printf '%s\n' "$api" | wc -l) EVQ_API functions"

# A man page for each function (gen.sh makes .so pages for the names that
# share a page), and man finds them under the prefix.
mandir=$prefix/share/man
[ -f "$mandir/man3/evq.3" ] || fail "not installed: share/man/man3/evq.3"
for f in $api; do
	[ -f "$mandir/man3/$f.3" ] || fail "no man page installed for $f"
done
if command -v man >/dev/null 2>&1; then
	page=$(MANWIDTH=80 MAN_DISABLE_SECCOMP=1 man -M "$mandir" evq_io_stop 2>&1) ||
		fail "man -M $mandir evq_io_stop: $page"
	grep -q 'evq_io_stop(struct evq_io' <<<"$page" ||
		fail "man -M $mandir evq_io_stop: not the page of evq_io_stop"
	ok "man pages: one for each EVQ_API function; man -M reads them"
else
	ok "man pages: one for each EVQ_API function (man not installed)"
fi

export PKG_CONFIG_PATH="$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
version=$(pkg-config --modversion evq) || fail "pkg-config does not find evq"
[ "$version" = 0.1.0 ] || fail "pkg-config says version '$version'"
ok "pkg-config evq $version: $(pkg-config --cflags --libs evq)"

# The installed header alone, with no feature macros: strict C11, and C++.
printf '#include <evq.h>\nint main(void) { return EVQ_VERSION_MAJOR; }\n' \
	>"$prefix/header_only.c"
"$cc" -std=c11 -Wall -Wextra -Wpedantic -Werror -fsyntax-only \
	-I"$prefix/include" "$prefix/header_only.c" ||
	fail "evq.h alone does not compile as strict C11"
if command -v "${CXX:-c++}" >/dev/null 2>&1; then
	"${CXX:-c++}" -std=c++11 -Wall -Wextra -Werror -fsyntax-only -x c++ \
		-I"$prefix/include" "$prefix/header_only.c" ||
		fail "evq.h does not compile as C++11"
	ok "evq.h compiles alone as C11 (-Wpedantic) and as C++11"
else
	ok "evq.h compiles alone as C11 (-Wpedantic); no C++ compiler to try"
fi

# Strict C11 for the public header (-std=c11 -Wpedantic); the examples
# ask for POSIX themselves. -pthread because cross_thread.c makes a thread.
cflags=(-std=c11 -Wall -Wextra -Wpedantic -Werror -O2 -pthread)
mkdir -p "$prefix/bin"
shopt -s nullglob
examples=("$root"/examples/*.c)
[ ${#examples[@]} -gt 0 ] || fail "no examples/*.c"
for src in "${examples[@]}"; do
	name=$(basename "$src" .c)
	# shellcheck disable=SC2046
	"$cc" "${cflags[@]}" $(pkg-config --cflags evq) "$src" \
		-o "$prefix/bin/$name" $(pkg-config --libs evq) ||
		fail "$name: compile against the installed evq (pkg-config)"
	# (ldd into a variable: `ldd | grep -q` can die of SIGPIPE.)
	deps=$(LD_LIBRARY_PATH="$libdir" ldd "$prefix/bin/$name")
	grep -q "libevq\.so\.0 => $libdir/" <<<"$deps" ||
		fail "$name: not linked to the installed libevq.so.0"
	LD_LIBRARY_PATH="$libdir" run "$prefix/bin/$name" >/dev/null
	ok "$name: pkg-config build, runs against libevq.so"

	# shellcheck disable=SC2046
	"$cc" "${cflags[@]}" $(pkg-config --cflags evq) "$src" \
		-o "$prefix/bin/$name-static" "$libdir/libevq.a" \
		$(pkg-config --static --libs-only-other --libs-only-l evq |
		  sed 's/-levq//') ||
		fail "$name: link against libevq.a"
	deps=$(ldd "$prefix/bin/$name-static")
	if grep -q libevq <<<"$deps"; then
		fail "$name-static: still needs libevq.so"
	fi
	run "$prefix/bin/$name-static" >/dev/null
	ok "$name: static build, runs"
done

# README.md may name only what evq.h has (build options aside).
unknown=
while read -r name; do
	grep -qw -- "$name" "$prefix/include/evq.h" || unknown="$unknown $name"
done < <(grep -oE '\<(evq_[a-z0-9_]+|EVQ_[A-Z0-9_]+)\>' "$root/README.md" |
	 sort -u |
	 grep -vxE 'evq_static|EVQ_(BUILD_[A-Z]+|SANITIZE|WERROR|SKIP_DEPS)')
[ -z "$unknown" ] || fail "README.md names what evq.h lacks:$unknown"
ok "README.md names only functions and macros evq.h has"

# The example in README.md, as a user would paste it, with the flags the
# README promises it is clean under.
readme="$prefix/readme_example.c"
readme_source "$readme"
# shellcheck disable=SC2046
"$cc" "${readme_cflags[@]}" -o "$prefix/bin/readme_example" "$readme" \
	$(pkg-config --cflags --libs evq) ||
	fail "README.md example: compile (${readme_cflags[*]}) against the installed evq"
LD_LIBRARY_PATH="$libdir" run "$prefix/bin/readme_example" >/dev/null
ok "README.md example: builds with ${readme_cflags[*]}, and runs"

# A CMake consumer: find_package(evq) and evq::evq / evq::evq_static.
consumer="$prefix/consumer"
"$cmake" -S "$root/examples/find_package" -B "$consumer" \
	-DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release \
	>"$prefix/consumer.log" 2>&1 ||
	{ cat "$prefix/consumer.log"; fail "find_package(evq) consumer: configure"; }
"$cmake" --build "$consumer" >>"$prefix/consumer.log" 2>&1 ||
	{ cat "$prefix/consumer.log"; fail "find_package(evq) consumer: build"; }
# No LD_LIBRARY_PATH: CMake's build RPATH must point at the installed lib.
run "$consumer/consumer" >/dev/null
run "$consumer/consumer_static" >/dev/null
ok "find_package(evq) consumer: evq::evq and evq::evq_static build and run"

# The system prefix, in a private mount namespace (see the top). The
# namespace is a new process: its checks come back as its output.
if [ "$(id -u)" -eq 0 ]; then
	ns=(unshare --mount --propagation private)
else
	ns=(unshare --map-root-user --mount --propagation private)
fi
# In a chroot whose root is no mount point (a bare debootstrap tree), the
# namespace's mounts cannot be made private (unshare fails), and made
# without that they could propagate to the host: skip.
why=
if ! mountpoint -q /; then
	why="/ is not a mount point: a chroot; bind-mount its root on itself to have this check"
elif why=$("${ns[@]}" true 2>&1); then
	why=
else
	why=${why:-unshare failed}
fi
if [ -z "$why" ]; then
	log="$prefix/system.log"
	mkdir "$prefix/system"
	"${ns[@]}" bash "$0" --system "$build" "$prefix/system" 2>&1 | tee "$log" ||
		fail "system-prefix install check"
	n=$(sed -n 's/^install-check: system prefix: \([0-9]*\) checks passed$/\1/p' "$log")
	[ -n "$n" ] || fail "system-prefix install check: no result"
	checks=$((checks + n))
else
	skip "system-prefix install (/usr/local, ldconfig, no LD_LIBRARY_PATH): no private mount namespace here ($why); \`make install\` runs the same check"
fi

printf 'install-check: %d checks passed\n' "$checks"
