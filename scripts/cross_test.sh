#!/usr/bin/env bash
# Cross-builds edgeglm for aarch64 (deploy/toolchain-aarch64.cmake) and runs the kernel and golden
# tests under qemu-user twice: as a Cortex-A72 (Raspberry Pi 4: no dotprod, the "neon" kernels must
# be chosen) and as QEMU's "max" CPU (dotprod, fp16, i8mm: the "dotprod" kernels must be chosen).
# Exits non-zero on any failure. Correctness only: timings under emulation mean nothing.
#
#   scripts/cross_test.sh [BUILD_DIR]        default build-arm64; JOBS=n (default 2)
#
# The golden perplexity test (a full pass over a 1000-story file) takes minutes under emulation
# and is left out here; its numerics are those of the golden greedy tests, which run, and of
# FullProtocolScoresEveryToken, which runs the same perplexity code on 20 chunks.
# Tests that need ../shared skip when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD="${1:-build-arm64}"
JOBS="${JOBS:-2}"
SYSROOT=/usr/aarch64-linux-gnu
GOLDEN_FILTER="-Stories260K.PerplexityMatchesLlamaCppProtocol"
start=$(date +%s)
# The kernel choice is asserted below: nothing from the caller may force one.
unset EDGEGLM_ISA EDGEGLM_FLOAT_ACTS

# Cross toolchain, emulator, and the header-only / source packages the configure step needs.
PKGS=(cmake make g++-aarch64-linux-gnu qemu-user-static libgtest-dev nlohmann-json3-dev libcli11-dev)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "cross_test: missing packages ${missing[*]} (run as root to install them)" >&2
    exit 1
  fi
  echo "cross_test: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
QEMU="$(command -v qemu-aarch64 || command -v qemu-aarch64-static || true)"
[ -n "$QEMU" ] || { echo "cross_test: no qemu-aarch64 found" >&2; exit 1; }

if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD" -DCMAKE_TOOLCHAIN_FILE=deploy/toolchain-aarch64.cmake \
    -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$BUILD" -j"$JOBS" --target test_kernels test_golden edgeglm
built=$(date +%s)

fail=0
run() {  # run CPU BINARY ARGS...: one aarch64 binary as the given emulated core
  local cpu="$1"
  shift
  QEMU_CPU="$cpu" "$QEMU" -L "$SYSROOT" "$@"
}
for pair in cortex-a72:neon max:dotprod; do
  cpu="${pair%%:*}"
  want="${pair##*:}"
  echo "=== QEMU_CPU=$cpu (expect kernels: $want)"
  info="$(run "$cpu" "$BUILD/bin/edgeglm" info --cpu)" || { echo "$info"; fail=1; continue; }
  echo "$info"
  active="$(sed -n 's/^kernels: *\([a-z0-9]*\) .*/\1/p' <<<"$info")"
  if [ "$active" != "$want" ]; then
    echo "cross_test: QEMU_CPU=$cpu selected kernels '$active', expected '$want'" >&2
    fail=1
  fi
  run "$cpu" "$BUILD/bin/test_kernels" --gtest_brief=1 || fail=1
  run "$cpu" "$BUILD/bin/test_golden" --gtest_brief=1 --gtest_filter="$GOLDEN_FILTER" || fail=1
done

end=$(date +%s)
echo "cross_test: build $((built - start)) s, tests $((end - built)) s: $([ $fail -eq 0 ] && echo PASSED || echo FAILED)"
exit $fail
