#!/usr/bin/env bash
# Installs the Debian packages slimlm builds against (see README "Dependencies").
# Idempotent: does nothing when everything is already there.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libopenblas-openmp-dev liblapacke-dev libpcre2-dev
      libcjson-dev libutf8proc-dev zlib1g-dev libbz2-dev python3 python3-pip unzip)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "slimlm: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
