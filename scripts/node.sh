#!/usr/bin/env bash
# The node of the local cluster: containerd + runc, CNI bridge, kubelet, kube-proxy, kube-scheduler
# and a cluster DNS, so that pods really run. Called by scripts/cluster.sh; not meant to be run
# alone. Needs root (network namespaces, iptables, mounts).
#
#   scripts/node.sh prepare  bridge + certificates inputs (before the API server starts)
#   scripts/node.sh up       start the node against the API server in $KUBECONFIG_FILE
#   scripts/node.sh load     import the project's images (scripts/images.sh) into containerd
#   scripts/node.sh down     stop it and remove every trace (also after a run killed with -9)
#
# The node's addresses live only on this machine: the bridge $BRIDGE at $NODE_IP/24 carries
# the pods (10.244.0.0/24), Services get 10.96.0.0/16, the DNS answers at 10.96.0.10. Pods reach
# no other network: no masquerade, no upstream DNS. Host settings the node changes
# (ip_forward and the sysctls the kubelet and kube-proxy set) are recorded and put back by `down`.
set -euo pipefail
# What this starts creates files others read: the snapshots' directories become the pods' "/".
umask 022

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
K8S_VERSION=v1.20.2
CACHE=${CRYPTO_MINE_CACHE:-$HOME/.cache/crypto-mine}/kubernetes/$K8S_VERSION
STATE=${CLUSTER_DIR:-$ROOT/.local/cluster}
NODE=$STATE/node
# containerd's content and snapshots outlive a cluster, so an image already there is not
# imported again; its state (sockets, tasks, mounts) lives and dies with the node.
IMAGE_STORE=${CRYPTO_MINE_CACHE:-$HOME/.cache/crypto-mine}/node/containerd
KUBECONFIG_FILE=$STATE/kubeconfig
BRIDGE=cmbr0
NODE_IP=10.244.0.1
POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.96.0.0/16
DNS_IP=10.96.0.10
NODE_NAME=crypto-mine-node
# Where a node's leftovers are found, whichever state folder the run that left them used.
MARKER=/run/crypto-mine-node
SYSCTLS=(net.ipv4.ip_forward vm.overcommit_memory kernel.panic kernel.panic_on_oops
  net.ipv4.conf.all.route_localnet net.bridge.bridge-nf-call-iptables)

PROCESS_DIR=$NODE
WAIT_INTERVAL=0.3

log() { printf 'node: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
python_bin() { echo "$ROOT/.venv/bin/python"; }
# fail_with_log, pid_alive, free_ports, spawn, wait_for, stop_pidfile
# shellcheck source=scripts/lib/processes.sh
source "$ROOT/scripts/lib/processes.sh"

kubectl_() { "$ROOT/.venv/bin/kubectl" --kubeconfig "$KUBECONFIG_FILE" "$@"; }

# --- prepare: the bridge exists before the API server binds its address ---------------------

cmd_prepare() {
  "$ROOT/scripts/ensure-apt.sh" containerd runc containernetworking-plugins iptables conntrack \
    dnsmasq-base podman buildah
  [[ $(id -u) -eq 0 ]] || die "the node needs root (bridge, iptables, mounts)"
  cmd_down quiet
  mkdir -p "$NODE/logs" "$MARKER"
  echo "$STATE" >"$MARKER/state"
  local name
  for name in "${SYSCTLS[@]}"; do
    sysctl -n "$name" 2>/dev/null | sed "s|^|$name=|" >>"$MARKER/sysctls" || true
  done
  # Network namespaces that exist already are someone else's: down removes only the pods'.
  ip netns list 2>/dev/null | awk '{print $1}' >"$MARKER/netns-before"
  ip link add "$BRIDGE" type bridge
  ip addr add "$NODE_IP/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  # Pod -> Service -> pod on one bridge is routed by this host, and replies must pass iptables.
  sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1
}

# --- up -------------------------------------------------------------------------------------

write_containerd_config() {
  local pause=$1
  mkdir -p "$NODE/cni/net.d" "$NODE/containerd"
  cat >"$NODE/containerd/config.toml" <<EOF
version = 2
root = "$IMAGE_STORE"
state = "$NODE/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$NODE/containerd/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause"
  # Without it every pod fails with "can't get final child's PID from pipe": root here lacks
  # CAP_SYS_RESOURCE, so a container may not lower its OOM score below the shim's.
  restrict_oom_score_adj = true
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$NODE/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$NODE/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$NODE/containerd/registries"
EOF
  # The node runs the images loaded into it (scripts/node.sh load) and pulls nothing: every
  # registry, named or not, resolves to a closed port on loopback, so a missing image fails at
  # once and no pull leaves this machine.
  local registry
  for registry in _default docker.io ghcr.io quay.io registry.k8s.io k8s.gcr.io gcr.io localhost; do
    mkdir -p "$NODE/containerd/registries/$registry"
    cat >"$NODE/containerd/registries/$registry/hosts.toml" <<EOF
server = "http://127.0.0.1:9"
[host."http://127.0.0.1:9"]
  capabilities = ["pull", "resolve"]
EOF
  done
  cat >"$NODE/cni/net.d/10-crypto-mine.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "crypto-mine",
  "plugins": [
    {
      "type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local", "dataDir": "$NODE/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

ctr_() { ctr --address "$NODE/containerd/containerd.sock" -n k8s.io "$@"; }

start_containerd() {
  spawn containerd containerd --config "$NODE/containerd/config.toml"
  wait_for containerd 30 containerd ctr_ version
}

cmd_load() {
  local images image id loaded=0
  mapfile -t images < <("$ROOT/scripts/images.sh" list | awk '{print $1}')
  [[ ${#images[@]} -gt 0 ]] || die "no images: run 'make images' first"
  eval "$("$ROOT/scripts/images.sh" env)"
  local started=$SECONDS
  for image in "${images[@]}"; do
    id=$(podman image inspect --format '{{.Id}}' "$image")
    # The podman image id it was made from, as a label: the same id is not imported again.
    if ctr_ images ls "name==$image" 2>/dev/null | grep -q "crypto-mine.id=$id"; then continue; fi
    podman save "$image" 2>/dev/null | ctr_ images import - >/dev/null \
      || die "importing $image into the node's containerd failed"
    ctr_ images label "$image" "crypto-mine.id=$id" >/dev/null
    loaded=$((loaded + 1))
  done
  log "$loaded of ${#images[@]} images imported (the others unchanged) in $((SECONDS - started)) s"
}

write_node_configs() {
  local kubelet_port=$1 kubelet_healthz=$2 proxy_healthz=$3 proxy_metrics=$4
  cat >"$NODE/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: $kubelet_port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $kubelet_healthz
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $STATE/certs/ca.crt}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
failSwapOn: false
clusterDNS: [$DNS_IP]
clusterDomain: cluster.local
resolvConf: $NODE/resolv.conf
# A test machine's disk and memory run fuller than a node's: evict only when nearly out.
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, nodefs.inodesFree: 1%, imagefs.available: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
maxPods: 110
EOF
  # Pods with dnsPolicy Default get no upstream: the node's addresses end on this machine.
  printf 'nameserver %s\n' "$NODE_IP" >"$NODE/resolv.conf"
  cat >"$NODE/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $NODE/kube-proxy.kubeconfig}
mode: iptables
bindAddress: $NODE_IP
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE_NAME
healthzBindAddress: 127.0.0.1:$proxy_healthz
metricsBindAddress: 127.0.0.1:$proxy_metrics
# Leave the host's conntrack sysctls alone.
conntrack: {maxPerCore: 0, min: 0}
EOF
}

# A kubeconfig for one of the node's components, authenticated by a token of the API server's
# token file (written by scripts/cluster.sh from $STATE/node-tokens).
component_kubeconfig() {
  local name=$1 token=$2 server
  server=$(sed -nE 's/^ *server: (.*)$/\1/p' "$KUBECONFIG_FILE")
  install -m 0600 /dev/null "$NODE/$name.kubeconfig"
  cat >"$NODE/$name.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {server: "$server", certificate-authority: $STATE/certs/ca.crt}
users:
- name: $name
  user: {token: $token}
contexts:
- name: local
  context: {cluster: local, user: $name}
current-context: local
EOF
}

start_dns() {
  mkdir -p "$NODE/dns/hosts"
  : >"$NODE/dns/hosts/services"
  spawn dnsmasq dnsmasq --keep-in-foreground --no-resolv --no-hosts --no-poll \
    --hostsdir="$NODE/dns/hosts" --listen-address="$NODE_IP" --bind-interfaces \
    --local=/cluster.local/ --domain-needed --log-facility=- --user=root
  # Service names follow the API: one line a Service, refreshed as Services come and go.
  spawn dns-sync env PYTHONPATH="$ROOT" "$ROOT/.venv/bin/python" -m devstack.cluster_dns \
    --kubeconfig "$KUBECONFIG_FILE" --hosts "$NODE/dns/hosts/services"
  kubectl_ apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns}
spec:
  clusterIP: $DNS_IP
  ports:
    - {name: dns, port: 53, protocol: UDP}
    - {name: dns-tcp, port: 53, protocol: TCP}
---
apiVersion: v1
kind: Endpoints
metadata:
  name: kube-dns
  namespace: kube-system
subsets:
  - addresses: [{ip: $NODE_IP}]
    ports:
      - {name: dns, port: 53, protocol: UDP}
      - {name: dns-tcp, port: 53, protocol: TCP}
EOF
}

cmd_up() {
  local started=$SECONDS
  local pause
  pause=$("$ROOT/scripts/images.sh" list | awk '/crypto-mine-pause:/ {print $1}')
  [[ -n $pause ]] || pause=$("$ROOT/scripts/images.sh" build pause)
  write_containerd_config "$pause"
  start_containerd
  cmd_load

  local kubelet_port kubelet_healthz proxy_healthz proxy_metrics
  read -r kubelet_port kubelet_healthz proxy_healthz proxy_metrics < <(free_ports 4)
  write_node_configs "$kubelet_port" "$kubelet_healthz" "$proxy_healthz" "$proxy_metrics"
  local line
  while read -r line; do
    component_kubeconfig "${line%%,*}" "${line#*,}"
  done <"$STATE/node-tokens"

  spawn kube-scheduler "$CACHE/kube-scheduler" --kubeconfig "$NODE/kube-scheduler.kubeconfig" \
    --leader-elect=false --port=0 --secure-port=0
  spawn kubelet "$CACHE/kubelet" --config "$NODE/kubelet.yaml" \
    --kubeconfig "$NODE/kubelet.kubeconfig" --root-dir "$NODE/kubelet" --cert-dir "$NODE/kubelet-pki" \
    --container-runtime=remote --container-runtime-endpoint "unix://$NODE/containerd/containerd.sock" \
    --node-ip "$NODE_IP" --hostname-override "$NODE_NAME" --v=1
  spawn kube-proxy "$CACHE/kube-proxy" --config "$NODE/kube-proxy.yaml"
  start_dns
  wait_for "the node" 120 kubelet node_ready
  wait_for kube-proxy 30 kube-proxy curl -fsS "http://127.0.0.1:$proxy_healthz/healthz"
  log "node $NODE_NAME Ready in $((SECONDS - started)) s"
}

node_ready() {
  kubectl_ get node "$NODE_NAME" \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null | grep -qx True
}

# --- down: stop, then remove the traces in order -------------------------------------------

# Jumps into the chains named PREFIX* from other chains, then the chains themselves.
remove_chains() {
  local table=$1 prefix=$2 rules chains rule chain
  rules=$(iptables-save -t "$table" 2>/dev/null | grep -E "^-A " | grep -E -- "-j $prefix" \
    | grep -vE "^-A $prefix" || true)
  chains=$(iptables-save -t "$table" 2>/dev/null | sed -nE "s/^:($prefix[^ ]+) .*/\1/p")
  while read -r rule; do
    [[ -n $rule ]] && eval "iptables -t $table ${rule/#-A/-D}" 2>/dev/null || true
  done <<<"$rules"
  for chain in $chains; do iptables -t "$table" -F "$chain" 2>/dev/null || true; done
  for chain in $chains; do iptables -t "$table" -X "$chain" 2>/dev/null || true; done
}

remove_iptables_rules() {
  local table
  # kube-proxy's and the kubelet's chains; the CNI plugins' (portmap, bridge).
  for table in filter nat mangle; do remove_chains "$table" KUBE-; done
  for table in filter nat; do remove_chains "$table" CNI-; done
}

remove_cgroups() {
  local mount dir
  for mount in /sys/fs/cgroup/*/ /sys/fs/cgroup/unified/; do
    [[ -d $mount/kubepods ]] || continue
    find "$mount/kubepods" -depth -type d 2>/dev/null | while read -r dir; do
      rmdir "$dir" 2>/dev/null || true
    done
  done
}

cmd_down() {
  local quiet=${1:-}
  local state=$STATE
  [[ -f $MARKER/state ]] && state=$(cat "$MARKER/state")
  local node=$state/node
  # Pods' processes first (the shims outlive containerd), then the node's own processes.
  local name
  for name in kubelet kube-proxy kube-scheduler dns-sync dnsmasq; do stop_pidfile "$node/$name.pid"; done
  if [[ -S $node/containerd/containerd.sock ]] && pid_alive "$node/containerd.pid"; then
    local task
    for task in $(ctr --address "$node/containerd/containerd.sock" -n k8s.io tasks ls -q 2>/dev/null); do
      ctr --address "$node/containerd/containerd.sock" -n k8s.io tasks kill -s SIGKILL "$task" >/dev/null 2>&1 || true
    done
  fi
  stop_pidfile "$node/containerd.pid"
  pkill -9 -f "containerd-shim-runc-v2 .*-address $node/containerd" 2>/dev/null || true
  remove_iptables_rules
  local mount
  for mount in $(awk -v dir="$node/" 'index($2, dir) == 1 {print $2}' /proc/mounts | sort -r); do
    umount -l "$mount" 2>/dev/null || true
  done
  remove_cgroups
  local veth
  for veth in $(ip -o link show master "$BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
    ip link delete "$veth" 2>/dev/null || true
  done
  ip link delete "$BRIDGE" 2>/dev/null || true
  if [[ -f $MARKER/netns-before ]]; then
    local netns
    for netns in $(ip netns list 2>/dev/null | awk '$1 ~ /^cni-/ {print $1}'); do
      grep -qx "$netns" "$MARKER/netns-before" || ip netns delete "$netns" 2>/dev/null || true
    done
  fi
  if [[ -f $MARKER/sysctls ]]; then
    local setting
    while read -r setting; do sysctl -qw "$setting" 2>/dev/null || true; done <"$MARKER/sysctls"
  fi
  rm -rf "$MARKER"
  [[ -d $node ]] && rm -rf --one-file-system "$node" 2>/dev/null || true
  [[ -n $quiet ]] || log "down"
}

case "${1:-}" in
  prepare) cmd_prepare ;;
  up) cmd_up ;;
  load) cmd_load ;;
  down) cmd_down ;;
  *) echo "usage: $0 prepare|up|load|down" >&2; exit 2 ;;
esac
