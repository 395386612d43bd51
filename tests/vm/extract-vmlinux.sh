#!/bin/bash
# extract-vmlinux.sh VMLINUZ OUT: write the uncompressed ELF kernel inside a
# bzImage to OUT. Same approach as the kernel tree's scripts/extract-vmlinux:
# find each compressor's magic in the image, decompress from there, keep the
# first result that is an ELF file. Exit 1 when none is.
set -uo pipefail

img=$1
out=$2

is_elf() {
	[ "$(head -c 4 "$1" 2>/dev/null | od -An -tx1 | tr -d ' \n')" = 7f454c46 ]
}

# try MAGIC(grep -P bytes) TOOL...: decompress from every offset of MAGIC.
try() {
	local magic=$1 off
	shift
	command -v "$1" >/dev/null || return 1
	for off in $(LC_ALL=C grep -obUaP "$magic" "$img" | cut -d: -f1); do
		# Trailing data after the stream makes the tools complain; the
		# output is still complete, so judge it, not the exit code.
		tail -c +$((off + 1)) "$img" | "$@" >"$out" 2>/dev/null
		if is_elf "$out"; then return 0; fi
	done
	return 1
}

try '\x1f\x8b\x08' gzip -dc ||
	try '\xfd7zXZ\x00' xz -dc ||
	try '\x28\xb5\x2f\xfd' zstd -dc ||
	try 'BZh' bzip2 -dc ||
	try '\x5d\x00\x00\x00' xz -dc --format=lzma ||
	try '\x02\x21\x4c\x18' lz4 -dc ||
	try '\x89\x4c\x5a' lzop -dc || {
	rm -f "$out"
	exit 1
}
exit 0
