#!/bin/sh
# Every kernel source that asks for software prefetches must have prefetch instructions in its
# object file. GCC 12 deleted all of qgemm_x8_avx2.cpp's once (fef6ba4): a helper that only
# prefetches looked const to its IPA pure-const pass, and the calls went. Decode from DRAM then
# ran 25% slower with every test still passing.
#   check_prefetch.sh SOURCE_DIR OBJECT_DIR   (src/kernels and its objects; exit 77 = skipped)
src=$1 objs=$2
command -v objdump >/dev/null 2>&1 || { echo "objdump not found: skipped"; exit 77; }
[ -d "$objs" ] || { echo "no object directory $objs (another CMake generator?): skipped"; exit 77; }
checked=0 failed=0
for f in "$src"/*/*.cpp; do
  rel=${f#"$src"/}
  obj=$objs/$rel.o
  [ -f "$obj" ] || continue  # not compiled for this target
  want=$(grep -c -E '_mm_prefetch|__builtin_prefetch' "$f")
  [ "$want" -gt 0 ] || continue
  have=$(objdump -d "$obj" | grep -c -E '\sprefetch(t0|t1|t2|nta|w)?\s|\sprfm\s')
  checked=$((checked + 1))
  if [ "$have" -eq 0 ]; then
    echo "FAIL $rel: $want prefetch call sites in the source, no prefetch instruction in $obj"
    failed=$((failed + 1))
  else
    echo "ok   $rel: $have prefetch instructions ($want call sites)"
  fi
done
[ "$checked" -gt 0 ] || { echo "FAIL: no object with prefetches in $objs"; exit 1; }
[ "$failed" -eq 0 ]
