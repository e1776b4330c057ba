#!/usr/bin/env bash
# One command on a fresh Debian machine: dependencies, Release build (with tests), default model.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"
scripts/fetch_model.sh
echo "ready: build/bin/edgeglm chat -m models/smollm2-135m-instruct-q4_1.gguf"
