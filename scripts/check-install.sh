#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# check-install.sh BUILD_DIR - install a built tree into a temporary prefix
# and use it the way a user would:
#   - the installed files, the SONAME, and the exported symbols (exactly
#     the EVQ_API functions of evq.h, nothing else);
#   - evq.h compiled alone, as strict C11 and as C++11;
#   - each examples/*.c compiled against the installed header alone, as
#     strict C11 with -Wpedantic -Werror, linked with
#     `pkg-config --cflags --libs evq`, then run (LD_LIBRARY_PATH set);
#   - the same examples linked against libevq.a, then run;
#   - README.md: names only what evq.h has; its C example builds and runs;
#   - examples/find_package/, a CMake project doing find_package(evq).
# Prints one line per check and a count; exits 1 on the first failure.

set -euo pipefail

build=${1:?usage: check-install.sh BUILD_DIR}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(cd "$build" && pwd)
cc=${CC:-cc}
cmake=${CMAKE:-cmake}
checks=0

prefix=$(mktemp -d "${TMPDIR:-/tmp}/evq-install.XXXXXX")
trap 'rm -rf "$prefix"' EXIT

ok() { checks=$((checks + 1)); printf 'install-check: ok: %s\n' "$*"; }
fail() { printf 'install-check: FAILED: %s\n' "$*" >&2; exit 1; }
run() {	# run a program that must end by itself, with a time limit
	timeout 30 "$@" || fail "$* exited with status $?"
}

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

# The example in README.md, as a user would paste it: default C dialect.
readme="$prefix/readme_example.c"
awk '/^```c$/ { f = 1; next } f && /^```$/ { exit } f' "$root/README.md" >"$readme"
[ -s "$readme" ] || fail "no \`\`\`c block in README.md"
# shellcheck disable=SC2046
"$cc" -Wall -Wextra -Werror -o "$prefix/bin/readme_example" "$readme" \
	$(pkg-config --cflags --libs evq) ||
	fail "README.md example: compile against the installed evq"
LD_LIBRARY_PATH="$libdir" run "$prefix/bin/readme_example" >/dev/null
ok "README.md example: builds and runs"

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

printf 'install-check: %d checks passed\n' "$checks"
