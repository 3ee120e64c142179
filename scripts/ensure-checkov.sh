#!/usr/bin/env bash
# Install checkov once, in a virtual environment of its own (it has many dependencies that
# must not meet the workspace's), and print the path of its executable:
#   scripts/ensure-checkov.sh     -> ~/.cache/crypto-mine/checkov/<version>/bin/checkov
set -euo pipefail
CHECKOV_VERSION=3.3.30
VENV=${CRYPTO_MINE_CACHE:-$HOME/.cache/crypto-mine}/checkov/$CHECKOV_VERSION
CHECKOV=$VENV/bin/checkov

if [[ -x $CHECKOV && -f $VENV/.complete ]]; then
  echo "$CHECKOV"
  exit 0
fi
python=$(command -v python3.11 || command -v python3)
echo "ensure-checkov: installing checkov $CHECKOV_VERSION into $VENV (about a minute)" >&2
rm -rf "$VENV"
"$python" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION" >&2
"$CHECKOV" --version >/dev/null
touch "$VENV/.complete"
echo "$CHECKOV"
