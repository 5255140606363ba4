#!/usr/bin/env bash
# Configure and start a node's daemons as systemd services, with the cluster's PKI.
#
#   node.sh --node-name NAME --node-ip IP --server HOST:PORT [--runtime containerd|docker]
#           [--control-plane --cluster-node NAME=IP...] [--cluster-dns]
#           [--registry-mirror HOST:PORT]
#
# Every argument but --cluster-node goes on to `tinykube node render-config`,
# which writes the runtime's config and the daemons' arguments
# (/etc/tinykube/*.env) -- the same rendering `tinykube up` gives its namespace
# nodes. This script adds the systemd units (vagrant/systemd/), the udev rule
# that turns VXLAN checksum offload off, and the credentials, as kubeadm's
# init and join make them:
#
#   control plane  `tinykube pki init --dir /etc/tinykube` with every
#                  --cluster-node (the CA, the API server's certificates, each
#                  node's kubelet serving certificate, admin.conf); then,
#                  once the API server answers, a bootstrap token (`tinykube
#                  token create`) and the CA's hash go to the join directory
#                  with each worker's serving certificate; the admin's
#                  kubeconfig becomes ~/.tinykube/config of root and vagrant.
#   worker         waits for its files in the join directory, installs them,
#                  and `tinykube join` (the CA pinned by its hash, then the
#                  token) writes /etc/tinykube/bootstrap-kubelet.conf; the
#                  kubelet (--tls-bootstrap) obtains its own certificate with
#                  it and writes /etc/tinykube/kubelet.conf.
#
# The join directory ($TINYKUBE_JOIN_DIR, default /vagrant/vagrant/.join) is
# in the folder both VMs share with the host; it holds a token and a private
# key, so it ignores itself in git (.gitignore `*`) and is for development
# clusters only.
#
# Idempotent: a file is replaced only when its content differs, a daemon
# restarts only when one of its files changed (else `systemctl start` leaves a
# running one alone), and the join directory's token is kept while the API
# server still knows it.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
units_src=${TINYKUBE_UNITS_DIR:-$here/../systemd}
if [[ ! -d "$units_src" ]]; then
  # Vagrant's shell provisioner runs a copy of this script from /tmp
  units_src=/vagrant/vagrant/systemd
fi
prefix=${TINYKUBE_PREFIX:-/opt/tinykube}
tinykube=$prefix/bin/tinykube

export STEP_SCRIPT=node.sh # named in a failed step\'s message (provision/steps.sh)
# shellcheck disable=SC1091 # beside this script, or (run by Vagrant from /tmp) in /vagrant
source "$(dirname "${BASH_SOURCE[0]}")/steps.sh" 2>/dev/null || source /vagrant/vagrant/provision/steps.sh

log() { echo "==> $*"; }
die() {
  echo "node.sh: $*" >&2
  exit 1
}

pki_dir=/etc/tinykube
join_dir=${TINYKUBE_JOIN_DIR:-/vagrant/vagrant/.join}
node_name="" node_ip="" server="" runtime=containerd control_plane=0
args=() cluster_nodes=()
while (($#)); do
  case "$1" in
    --node-name) node_name=${2:?--node-name needs a value}; args+=("$1" "$2"); shift 2 ;;
    --node-ip) node_ip=${2:?--node-ip needs a value}; args+=("$1" "$2"); shift 2 ;;
    --runtime) runtime=${2:?--runtime needs a value}; args+=("$1" "$2"); shift 2 ;;
    --control-plane) control_plane=1; args+=("$1"); shift ;;
    --cluster-dns) args+=("$1"); shift ;;
    --server) server=${2:?--server needs a value}; args+=("$1" "$2"); shift 2 ;;
    --registry-mirror) args+=("$1" "${2:?--registry-mirror needs HOST:PORT}"); shift 2 ;;
    --cluster-node) cluster_nodes+=(--node "${2:?--cluster-node needs NAME=IP}"); shift 2 ;;
    *) die "unknown argument '$1'" ;;
  esac
done
[[ -n "$node_name" ]] || die "--node-name is required"
[[ -n "$node_ip" ]] || die "--node-ip is required"
[[ -n "$server" ]] || die "--server is required (node1's HOST:PORT)"
((control_plane)) || args+=(--tls-bootstrap)

# --- the node IP: the private network's, on this machine
if [[ "$node_ip" == 10.0.2.15 ]]; then
  die "--node-ip 10.0.2.15 is VirtualBox's NAT address, the same on every VM: use the private network's"
fi
iface=$(ip -o -4 addr show | awk -v ip="$node_ip" '{split($4, a, "/"); if (a[1] == ip) {print $2; exit}}')
[[ -n "$iface" ]] || die "no interface holds $node_ip: is the Vagrantfile's private_network up? ($(ip -o -4 addr show | awk '{printf "%s=%s ", $2, $4}'))"
log "node $node_name: $node_ip on $iface"

# --- the credentials: the PKI on the control plane, the join on a worker
if ((control_plane)); then
  [[ ${#cluster_nodes[@]} -gt 0 ]] || die "--control-plane needs --cluster-node NAME=IP for every node"
  pki_out=$("$tinykube" pki init --dir "$pki_dir" --apiserver-address "$node_ip" "${cluster_nodes[@]}")
  grep -v '\] kept ' <<<"$pki_out" || true # what was written, and the CA hash
  ca_hash=$(sed -n 's/^CA hash: //p' <<<"$pki_out")
else
  for _ in $(seq 1 "${TINYKUBE_JOIN_WAIT:-600}"); do
    [[ -f "$join_dir/join.env" && -f "$join_dir/$node_name/ca.crt" ]] && break
    sleep 1
  done
  [[ -f "$join_dir/join.env" ]] || die "no $join_dir/join.env: provision the control-plane node first (vagrant provision node1)"
  install -d -m 0700 "$pki_dir" "$pki_dir/pki"
  install -m 0644 "$join_dir/$node_name/ca.crt" "$pki_dir/pki/ca.crt"
  install -m 0644 "$join_dir/$node_name/kubelet-$node_name.crt" "$pki_dir/pki/kubelet-$node_name.crt"
  install -m 0600 "$join_dir/$node_name/kubelet-$node_name.key" "$pki_dir/pki/kubelet-$node_name.key"
  if [[ ! -f "$pki_dir/kubelet.conf" ]]; then
    # shellcheck source=/dev/null
    source "$join_dir/join.env"
    step "tinykube join ${JOIN_SERVER:?}" "$tinykube" join "$JOIN_SERVER" --token "${JOIN_TOKEN:?}" \
      --discovery-token-ca-cert-hash "${JOIN_CA_HASH:?}" --node-name "$node_name" \
      --timeout "${TINYKUBE_JOIN_TIMEOUT:-60}" --out "$pki_dir/bootstrap-kubelet.conf"
    log "joined: $pki_dir/bootstrap-kubelet.conf"
  fi
fi

# --- the rendered configuration
changed=$("$tinykube" node render-config "${args[@]}" --iface "$iface" --pki-dir "$pki_dir")
echo "$changed"
was_written() { grep -q "^wrote .*$1\$" <<<"$changed"; }

# install_file SRC DEST: copy when different; true if copied.
install_file() {
  if [[ -f "$2" ]] && cmp -s "$1" "$2"; then
    return 1
  fi
  install -D -m 0644 "$1" "$2"
  log "installed $2"
}

# --- the container runtime (the package's own unit, our config)
case "$runtime" in
  containerd)
    if was_written /etc/containerd/config.toml || ! systemctl is-active -q containerd; then
      systemctl enable -q containerd
      systemctl restart containerd
      log "containerd (re)started"
    fi
    ;;
  docker)
    if was_written /etc/docker/daemon.json || ! systemctl is-active -q docker; then
      systemctl enable -q docker
      systemctl restart docker
      log "docker (re)started"
    fi
    # started once before daemon.json said bridge=none: its docker0 stays until removed
    if ip link show docker0 >/dev/null 2>&1; then
      ip link delete docker0
      log "deleted docker0"
    fi
    ;;
  *) die "unknown runtime '$runtime'" ;;
esac

# --- VXLAN checksum offload off as the device appears (flannel's VirtualBox issue:
# checksums of encapsulated packets come out wrong and the peer drops them)
vxlan_device=$("$prefix/bin/python" -c 'from netplugin.constants import VXLAN_DEVICE; print(VXLAN_DEVICE)')
rule=$(mktemp)
printf 'ACTION=="add", SUBSYSTEM=="net", KERNEL=="%s", RUN+="/sbin/ethtool -K %s tx-checksum-ip-generic off"\n' \
  "$vxlan_device" "$vxlan_device" >"$rule"
if install_file "$rule" /etc/udev/rules.d/90-tinykube-vxlan.rules; then
  udevadm control --reload
fi
rm -f "$rule"
if ip link show "$vxlan_device" >/dev/null 2>&1; then
  ethtool -K "$vxlan_device" tx-checksum-ip-generic off
fi

# --- systemd units (the network agent runs inside the kubelet's process: --network-agent)
if [[ -f /etc/systemd/system/tinykube-netplugin.service ]]; then
  # an older provisioning ran the agent as a unit of its own: two agents must not run
  systemctl disable --now -q tinykube-netplugin.service || true
  rm -f /etc/systemd/system/tinykube-netplugin.service /etc/tinykube/netplugin.env
  systemctl daemon-reload
  log "removed tinykube-netplugin.service (the kubelet runs the agent now)"
fi
units=(tinykube-kubelet.service)
((control_plane)) && units=(tinykube-apiserver.service "${units[@]}")
reload=0
declare -A restart=()
for unit in "${units[@]}"; do
  if install_file "$units_src/$unit" "/etc/systemd/system/$unit"; then
    reload=1
    restart[$unit]=1
  fi
done
((reload)) && systemctl daemon-reload
was_written /etc/tinykube/apiserver.env && restart[tinykube-apiserver.service]=1
was_written /etc/tinykube/kubelet.env && restart[tinykube-kubelet.service]=1
for unit in "${units[@]}"; do
  systemctl enable -q "$unit"
  if [[ -n "${restart[$unit]:-}" ]]; then
    systemctl restart "$unit"
    log "$unit (re)started"
  else
    systemctl start "$unit"
  fi
done

# --- the control plane: the admin's kubeconfig for the CLI of root and vagrant (0600,
# owned by each), and what a worker needs to join, once the API server answers
if ((control_plane)); then
  for home in /root /home/vagrant; do
    [[ -d "$home" ]] || continue
    if ! cmp -s "$pki_dir/admin.conf" "$home/.tinykube/config"; then
      install -d -m 0700 -o "$(stat -c %u "$home")" -g "$(stat -c %g "$home")" "$home/.tinykube"
      rm -f "$home/.tinykube/config" # an older provisioning's symlink
      install -m 0600 -o "$(stat -c %u "$home")" -g "$(stat -c %g "$home")" \
        "$pki_dir/admin.conf" "$home/.tinykube/config"
      log "installed $home/.tinykube/config (the cluster admin's kubeconfig)"
    fi
  done
  admin=(--kubeconfig "$pki_dir/admin.conf")
  for _ in $(seq 1 90); do
    "$tinykube" "${admin[@]}" get namespace default >/dev/null 2>&1 && break
    sleep 2
  done
  step "the API server answers" "$tinykube" "${admin[@]}" get namespace default
  # the token of an earlier provisioning, while the API server still has it (a
  # re-provision changes nothing); else a new one
  token=""
  if [[ -f "$join_dir/join.env" ]]; then
    old=$(sed -n 's/^JOIN_TOKEN=//p' "$join_dir/join.env")
    if "$tinykube" "${admin[@]}" token list | awk 'NR > 1 && $2 != "<invalid>" {print $1}' | grep -xF -- "$old" >/dev/null; then
      token=$old
      log "kept the bootstrap token ${old%%.*} of $join_dir/join.env"
    fi
  fi
  [[ -n "$token" ]] || token=$("$tinykube" "${admin[@]}" token create | tail -n 1)
  [[ -n "$token" ]] || die "tinykube token create printed no token"
  install -d -m 0700 "$join_dir"
  echo '*' >"$join_dir/.gitignore"
  for spec in "${cluster_nodes[@]}"; do
    [[ "$spec" == --node ]] && continue
    worker=${spec%%=*}
    [[ "$worker" == "$node_name" ]] && continue
    install -d -m 0700 "$join_dir/$worker"
    install -m 0644 "$pki_dir/pki/ca.crt" "$pki_dir/pki/kubelet-$worker.crt" "$join_dir/$worker/"
    install -m 0600 "$pki_dir/pki/kubelet-$worker.key" "$join_dir/$worker/"
  done
  printf 'JOIN_SERVER=%s:%s\nJOIN_TOKEN=%s\nJOIN_CA_HASH=%s\n' \
    "$node_ip" "${TINYKUBE_TOKEN_PORT:-6444}" "$token" "$ca_hash" >"$join_dir/join.env.tmp"
  chmod 0600 "$join_dir/join.env.tmp"
  if cmp -s "$join_dir/join.env.tmp" "$join_dir/join.env"; then
    rm -f "$join_dir/join.env.tmp"
  else
    mv "$join_dir/join.env.tmp" "$join_dir/join.env"
    log "wrote $join_dir/join.env (a bootstrap token for the workers)"
  fi
  kubeconfig=$pki_dir/admin.conf
else
  kubeconfig=$pki_dir/kubelet.conf # written by the kubelet once its certificate is signed
fi

# --- wait (not fail) for the Node to register and turn Ready: on libvirt the
# VMs come up in parallel and node1's API server may not answer yet
ready_wait=${TINYKUBE_READY_WAIT:-120}
for _ in $(seq 1 $((ready_wait / 2))); do
  if "$tinykube" --kubeconfig "$kubeconfig" get node "$node_name" 2>/dev/null | grep -qw Ready; then
    log "node $node_name is Ready"
    exit 0
  fi
  sleep 2
done
echo "node.sh: warning: node $node_name is not Ready yet; see journalctl -u tinykube-kubelet" >&2
