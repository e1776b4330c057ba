#!/usr/bin/env bash
# Installs what edgeglm needs to build and test on Debian 12 (run as root or with sudo).
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
PKGS=(cmake g++ make libgtest-dev libgmock-dev nlohmann-json3-dev libcli11-dev libsystemd-dev pkg-config libcpp-httplib-dev python3-yaml python3-jsonschema python3 python3-pip unzip ca-certificates)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
