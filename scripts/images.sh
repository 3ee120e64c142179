#!/usr/bin/env bash
# Build and inspect the project's container images with podman (no Docker engine needed).
#
#   scripts/images.sh build [NAME...]   build the images (default: all); prints their names
#   scripts/images.sh base              make sure the base image exists; prints its name
#   scripts/images.sh list              the images of this version, with their sizes
#   scripts/images.sh env               print `export CONTAINERS_CONF=...` for podman by hand
#
# Products: api, worker, id-allocator, operator (targets of ./Dockerfile). Local helpers for the
# dev stack (compose, the chart's in-cluster Redis and MongoDB, the node's pause image): redis,
# mongodb, pause (targets of devstack/images/Dockerfile).
#
# The base is python:3.11-slim when a registry answers. Where none does, it is made here:
# Debian bookworm (debootstrap, minbase + python3) imported as crypto-mine-base:<recipe hash>,
# its root tarball cached under ~/.cache/crypto-mine/base/ and made again only when the recipe
# below changes. PYTHON_IMAGE=<image> skips both and uses that image.
#
# Settings: IMAGE_REGISTRY (default localhost), IMAGE_TAG (default: the chart's appVersion),
# PYTHON_IMAGE, NO_CACHE=1 (build every step again; the same sources give the same image id).
# Podman runs with a containers.conf of the project's own (runc; ulimits no higher
# than this host's hard limits), so nothing machine-wide is changed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${CRYPTO_MINE_CACHE:-$HOME/.cache/crypto-mine}/base
STATE=$ROOT/.local/images
REGISTRY=${IMAGE_REGISTRY:-localhost}
TAG=${IMAGE_TAG:-$(sed -nE 's/^appVersion: *"?([^"]+)"?/\1/p' "$ROOT/charts/crypto-mine/Chart.yaml")}
SLIM=docker.io/library/python:3.11-slim
PRODUCTS=(api worker id-allocator operator)
HELPERS=(redis mongodb pause)

# The local base's recipe: any change here makes a new base (its hash names the cache entry).
BASE_SUITE=bookworm
BASE_MIRROR=http://deb.debian.org/debian
BASE_PACKAGES=python3,python3-venv,python-is-python3,ca-certificates
# The image's configuration, as python:3.11-slim has it (a PATH of its own: runtimes add none).
BASE_CONFIG=('ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
  'ENV LANG=C.UTF-8' 'CMD ["python3"]')
BASE_TRIM=(usr/share/doc usr/share/man usr/share/info usr/share/locale usr/share/lintian
  var/lib/apt/lists var/cache/apt var/log/apt var/log/dpkg.log var/cache/debconf/templates.dat-old)

log() { printf 'images: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

setup_podman() {
  mkdir -p "$STATE"
  # dnsname: containers of one Compose network find each other by service name.
  scripts_apt podman buildah runc debootstrap golang-github-containernetworking-plugin-dnsname
  local conf=$STATE/containers.conf nofile nproc
  nofile=$(ulimit -Hn)
  nproc=$(ulimit -Hu)
  [[ $nproc == unlimited || $nproc -gt 32768 ]] && nproc=32768
  [[ $nofile == unlimited || $nofile -gt 1048576 ]] && nofile=1048576
  # crun refuses hybrid cgroups on some hosts; runc runs everywhere podman does.
  cat >"$conf.tmp" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
runtime = "runc"
EOF
  mv "$conf.tmp" "$conf"
  export CONTAINERS_CONF=$conf
}

scripts_apt() { "$ROOT/scripts/ensure-apt.sh" "$@"; }

recipe_hash() {
  { declare -f make_base_root; echo "$BASE_SUITE $BASE_MIRROR $BASE_PACKAGES ${BASE_TRIM[*]}"; } \
    | sha256sum | cut -c1-12
}

# Debian minbase with Python, trimmed, as a root directory in $1.
make_base_root() {
  local dir=$1
  debootstrap --variant=minbase --include="$BASE_PACKAGES" "$BASE_SUITE" "$dir" "$BASE_MIRROR" \
    >"$STATE/debootstrap.log" 2>&1 || { tail -n 30 "$STATE/debootstrap.log" >&2; die "debootstrap failed"; }
  local path
  for path in "${BASE_TRIM[@]}"; do rm -rf "${dir:?}/$path"; done
  # mktemp made the root 0700: as the image's "/", no other user could enter it.
  chmod 0755 "$dir"
}

unmount_below() {
  local mount
  for mount in $(awk -v dir="$1" 'index($2, dir) == 1 {print $2}' /proc/mounts | sort -r); do
    umount -l "$mount" 2>/dev/null || true
  done
}

# The base image's name, building or importing it when needed.
base_image() {
  if [[ -n ${PYTHON_IMAGE:-} ]]; then echo "$PYTHON_IMAGE"; return; fi
  if podman image exists "$SLIM" 2>/dev/null \
    || timeout 30 podman pull --quiet "$SLIM" >/dev/null 2>&1; then
    echo "$SLIM"
    return
  fi
  local key name tarball change changes=()
  key=$(recipe_hash)
  name=localhost/crypto-mine-base:$(echo "$key ${BASE_CONFIG[*]}" | sha256sum | cut -c1-12)
  if podman image exists "$name"; then echo "$name"; return; fi
  tarball=$CACHE/$key.tar
  if [[ ! -f $tarball ]]; then
    log "no registry answers for $SLIM: making a Debian $BASE_SUITE base (about 90 s, cached in $CACHE)"
    mkdir -p "$CACHE"
    local dir started=$SECONDS
    dir=$(mktemp -d "$CACHE/root.XXXXXX")
    # debootstrap mounts /proc and /sys inside the root: never delete through a mount.
    trap 'unmount_below "$dir"; rm -rf --one-file-system "$dir"' EXIT
    make_base_root "$dir"
    unmount_below "$dir"
    tar --numeric-owner -C "$dir" -cf "$tarball.tmp" .
    rm -rf --one-file-system "$dir"
    trap - EXIT
    mv "$tarball.tmp" "$tarball"
    log "base root made in $((SECONDS - started)) s: $tarball"
  fi
  for change in "${BASE_CONFIG[@]}"; do changes+=(--change "$change"); done
  podman import --quiet "${changes[@]}" \
    --message "Debian $BASE_SUITE minbase + Python (crypto-mine base, recipe $key)" \
    "$tarball" "$name" >/dev/null
  echo "$name"
}

service_dir() {
  case $1 in
    operator) echo operator ;;
    *) echo "services/$1" ;;
  esac
}

build_one() {
  local name=$1 base=$2 file target=$1 args=()
  case " ${PRODUCTS[*]} " in
    *" $name "*)
      file=$ROOT/Dockerfile
      args+=(--build-arg "SERVICE_DIR=$(service_dir "$name")") ;;
    *)
      case " ${HELPERS[*]} " in *" $name "*) ;; *) die "unknown image $name (${PRODUCTS[*]} ${HELPERS[*]})" ;; esac
      file=$ROOT/devstack/images/Dockerfile ;;
  esac
  local ca=/etc/ssl/certs/ca-certificates.crt
  [[ -s $ca ]] && args+=(--secret "id=pip-ca,src=$ca")
  local started=$SECONDS image=$REGISTRY/crypto-mine-$name:$TAG
  [[ ${NO_CACHE:-0} == 1 ]] && args+=(--no-cache)
  podman build --quiet --network=host --layers --target "$target" -f "$file" \
    --build-arg "PYTHON_IMAGE=$base" --build-arg "VERSION=$TAG" \
    --build-arg "REVISION=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)" \
    --timestamp "$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || echo 0)" \
    "${args[@]}" -t "$image" "$ROOT" >"$STATE/build-$name.log" 2>&1 \
    || { tail -n 40 "$STATE/build-$name.log" >&2; die "building $image failed (log: $STATE/build-$name.log)"; }
  log "built $image in $((SECONDS - started)) s"
  echo "$image"
}

cmd_build() {
  local names=("$@") base name
  [[ ${#names[@]} -gt 0 ]] || names=("${PRODUCTS[@]}" "${HELPERS[@]}")
  base=$(base_image)
  log "base: $base"
  for name in "${names[@]}"; do build_one "$name" "$base"; done
}

cmd_list() {
  podman images --filter "reference=$REGISTRY/crypto-mine-*:$TAG" \
    --format '{{.Repository}}:{{.Tag}} {{.Size}} {{.ID}}'
}

setup_podman
case "${1:-}" in
  build) shift; cmd_build "$@" ;;
  base) base_image ;;
  list) cmd_list ;;
  env) echo "export CONTAINERS_CONF=$CONTAINERS_CONF" ;;
  *) echo "usage: $0 build [NAME...]|base|list|env" >&2; exit 2 ;;
esac
