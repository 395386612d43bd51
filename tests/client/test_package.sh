#!/bin/bash
# libmmtrust as a CSCF builds against it (make lib-check):
# - mmtrust.h compiles as C99 and as C++ with -Wall -Wextra -pedantic -Werror;
# - mmtrust.pc follows PREFIX (made again when it changes, not otherwise);
# - make install DESTDIR=... PREFIX=/usr installs libmmtrust.so.1 (soname
#   libmmtrust.so.1), the libmmtrust.so link, the static library, the
#   header and mmtrust.pc with the PREFIX asked for;
# - the shared library exports the calls of mmtrust.h and nothing else;
# - a program links against the installed copy through pkg-config alone,
#   shared (and runs against it) and fully static (--static: Requires.private
#   brings jansson), in C and in C++.
# Usage: bash tests/client/test_package.sh BUILD (from the source tree's top).
set -u
ROOT=$(realpath "$(dirname "$0")/../..")
cd "$ROOT" || exit 1
BUILD=${1:-build}
. tests/lib/common.sh
MM_TMP=$(mktemp -d /tmp/mmtrust-lib-check-XXXXXX)
trap 'rm -rf "$MM_TMP"' EXIT
CC=${CC:-cc}
CXX=${CXX:-c++}
STRICT="-Wall -Wextra -pedantic -Werror"
D=$MM_TMP/root

# --- the header ------------------------------------------------------------------
check "mmtrust.h compiles as C99 (-std=c99 $STRICT)" \
	"$CC" -std=c99 $STRICT -Iclient -c tests/client/header_c.c -o "$MM_TMP/header_c.o"
check "mmtrust.h compiles as C++ ($STRICT)" \
	"$CXX" $STRICT -Iclient -c tests/client/header_cc.cc -o "$MM_TMP/header_cc.o"
check "mmtrust.h compiles as C++11 ($STRICT)" \
	"$CXX" -std=c++11 $STRICT -Iclient -c tests/client/header_cc.cc -o "$MM_TMP/header_cc11.o"

# --- mmtrust.pc follows PREFIX ----------------------------------------------------
PC=$BUILD/mmtrust.pc
expect_exit 0 "make PREFIX=/opt/mmtrust-pc-test mmtrust.pc" \
	make --no-print-directory BUILD="$BUILD" PREFIX=/opt/mmtrust-pc-test "$PC"
check "mmtrust.pc has the new prefix" grep -qx 'prefix=/opt/mmtrust-pc-test' "$PC"
check "mmtrust.pc has the new libdir" grep -qx 'libdir=/opt/mmtrust-pc-test/lib' "$PC"
before=$(stat -c %Y.%s "$PC")
sleep 1.1
expect_exit 0 "make with the same PREFIX again" \
	make --no-print-directory BUILD="$BUILD" PREFIX=/opt/mmtrust-pc-test "$PC"
check "the same PREFIX: mmtrust.pc not made again" test "$(stat -c %Y.%s "$PC")" = "$before"
expect_exit 0 "make install DESTDIR=... PREFIX=/usr" \
	make --no-print-directory BUILD="$BUILD" install DESTDIR="$D" PREFIX=/usr
check "PREFIX changed: the installed mmtrust.pc says prefix=/usr" \
	grep -qx 'prefix=/usr' "$D/usr/lib/pkgconfig/mmtrust.pc"
check "the installed mmtrust.pc: libdir /usr/lib" grep -qx 'libdir=/usr/lib' "$D/usr/lib/pkgconfig/mmtrust.pc"
check "mmtrust.pc: Requires.private jansson" grep -qx 'Requires.private: jansson' "$PC"

# --- the installed files --------------------------------------------------------
check "installed: libmmtrust.so.1, a file" test -f "$D/usr/lib/libmmtrust.so.1" -a ! -L "$D/usr/lib/libmmtrust.so.1"
check "installed: libmmtrust.so -> libmmtrust.so.1" test "$(readlink "$D/usr/lib/libmmtrust.so")" = libmmtrust.so.1
check "build: libmmtrust.so -> libmmtrust.so.1" test "$(readlink "$BUILD/libmmtrust.so")" = libmmtrust.so.1
check "installed: libmmtrust.a" test -f "$D/usr/lib/libmmtrust.a"
check "installed: mmtrust.h, the source's" cmp -s client/mmtrust.h "$D/usr/include/mmtrust.h"
SO=$D/usr/lib/libmmtrust.so.1
check "soname libmmtrust.so.1" sh -c "readelf -d '$SO' | grep -q 'SONAME.*\[libmmtrust.so.1\]'"
check "the library names jansson (NEEDED)" sh -c "readelf -d '$SO' | grep -q 'NEEDED.*\[libjansson'"

# --- exported symbols: the calls of mmtrust.h, nothing else ---------------------------
want=$(grep -oE '^(int|void|const char \*) ?mmtrust_[a-z_]+\(' client/mmtrust.h |
	grep -oE 'mmtrust_[a-z_]+' | sort -u)
have=$(nm -D --defined-only "$SO" | awk '$2 ~ /^[TWDBRV]$/ { sub(/@.*/, "", $3); print $3 }' | sort -u)
if [ -n "$want" ] && [ "$want" = "$have" ]; then
	pass "exported: exactly the $(wc -l <<<"$want") calls of mmtrust.h"
else
	fail "exported symbols differ from mmtrust.h: $(diff <(echo "$want") <(echo "$have") | grep '^[<>]' | tr '\n' ' ')"
fi
check "exported symbols are versioned MMTRUST_1" sh -c "nm -D --defined-only '$SO' | grep -q 'mmtrust_inbound@@MMTRUST_1'"

# --- linking through pkg-config ---------------------------------------------------
export PKG_CONFIG_PATH=$D/usr/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$D
expect_exit 0 "pkg-config finds the installed mmtrust" pkg-config --exists mmtrust
LIBS=$(pkg-config --libs mmtrust)
SLIBS=$(pkg-config --static --libs mmtrust)
CFL=$(pkg-config --cflags mmtrust)
contains "$LIBS" "-L$D/usr/lib" "pkg-config --libs points into the installed tree"
contains "$SLIBS" "-ljansson" "pkg-config --static --libs brings -ljansson"
case " $LIBS " in *" -ljansson "*) fail "pkg-config --libs (shared) lists -ljansson: $LIBS" ;;
*) pass "pkg-config --libs (shared) needs only -lmmtrust" ;; esac

# shellcheck disable=SC2086
expect_exit 0 "shared link of a C program through pkg-config" \
	"$CC" -std=c99 $STRICT $CFL -o "$MM_TMP/shared" tests/client/linkcheck.c $LIBS
check "the program needs libmmtrust.so.1" sh -c "readelf -d '$MM_TMP/shared' | grep -q 'NEEDED.*\[libmmtrust.so.1\]'"
expect_exit 0 "it runs against the installed library" env LD_LIBRARY_PATH="$D/usr/lib" "$MM_TMP/shared" /nonexistent/x.sock
contains "$(LD_LIBRARY_PATH="$D/usr/lib" ldd "$MM_TMP/shared")" "$D/usr/lib/libmmtrust.so.1" "it loaded the installed copy"
# shellcheck disable=SC2086
expect_exit 0 "shared link of a C++ program through pkg-config" \
	"$CXX" $STRICT $CFL -o "$MM_TMP/shared_cc" tests/client/header_cc.cc $LIBS
expect_exit 0 "the C++ program runs" env LD_LIBRARY_PATH="$D/usr/lib" "$MM_TMP/shared_cc"
# shellcheck disable=SC2086
expect_exit 0 "static link (-static) through pkg-config --static" \
	"$CC" -static -std=c99 $STRICT $CFL -o "$MM_TMP/static" tests/client/linkcheck.c $SLIBS
check "the static program has no dynamic section" sh -c "! readelf -d '$MM_TMP/static' | grep -q NEEDED"
expect_exit 0 "the static program runs" "$MM_TMP/static" /nonexistent/x.sock

summary lib-check
