#!/usr/bin/env bash
# Install the named Debian packages that are missing (apt-get update only when needed).
#   scripts/ensure-apt.sh redis-server prometheus
set -euo pipefail
missing=()
for package in "$@"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
run() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }
echo "installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
if ! run apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
  run apt-get update -qq >/dev/null
  run apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
