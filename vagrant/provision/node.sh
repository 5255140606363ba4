#!/usr/bin/env bash
# Configure and start a node's daemons as systemd services.
#
#   node.sh --node-name NAME --node-ip IP --server HOST:PORT [--runtime containerd|docker]
#           [--control-plane] [--cluster-dns]
#
# Every argument goes on to `tinykube node render-config`, which writes the
# runtime's config and the daemons' arguments (/etc/tinykube/*.env) -- the same
# rendering `tinykube up` gives its namespace nodes. This script adds the
# systemd units (vagrant/systemd/), the udev rule that turns VXLAN checksum
# offload off, and the CLI's config for the vagrant user.
#
# Idempotent: a file is replaced only when its content differs, and a daemon
# restarts only when one of its files changed (else `systemctl start` leaves a
# running one alone).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
units_src=${TINYKUBE_UNITS_DIR:-$here/../systemd}
if [[ ! -d "$units_src" ]]; then
  # Vagrant's shell provisioner runs a copy of this script from /tmp
  units_src=/vagrant/vagrant/systemd
fi
prefix=${TINYKUBE_PREFIX:-/opt/tinykube}
tinykube=$prefix/bin/tinykube

log() { echo "==> $*"; }
die() {
  echo "node.sh: $*" >&2
  exit 1
}

node_name="" node_ip="" server="" runtime=containerd control_plane=0
args=("$@")
while (($#)); do
  case "$1" in
    --node-name) node_name=${2:?--node-name needs a value}; shift 2 ;;
    --node-ip) node_ip=${2:?--node-ip needs a value}; shift 2 ;;
    --runtime) runtime=${2:?--runtime needs a value}; shift 2 ;;
    --control-plane) control_plane=1; shift ;;
    --cluster-dns) shift ;;
    --server) server=${2:?--server needs a value}; shift 2 ;;
    *) die "unknown argument '$1'" ;;
  esac
done
[[ -n "$node_name" ]] || die "--node-name is required"
[[ -n "$node_ip" ]] || die "--node-ip is required"
[[ -n "$server" ]] || die "--server is required (node1's HOST:PORT)"

# --- the node IP: the private network's, on this machine
if [[ "$node_ip" == 10.0.2.15 ]]; then
  die "--node-ip 10.0.2.15 is VirtualBox's NAT address, the same on every VM: use the private network's"
fi
iface=$(ip -o -4 addr show | awk -v ip="$node_ip" '{split($4, a, "/"); if (a[1] == ip) {print $2; exit}}')
[[ -n "$iface" ]] || die "no interface holds $node_ip: is the Vagrantfile's private_network up? ($(ip -o -4 addr show | awk '{printf "%s=%s ", $2, $4}'))"
log "node $node_name: $node_ip on $iface"

# --- the rendered configuration
changed=$("$tinykube" node render-config "${args[@]}" --iface "$iface")
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

# --- the CLI finds the API server through the rendered config, for root and vagrant
for home in /root /home/vagrant; do
  [[ -d "$home" ]] || continue
  if [[ "$(readlink "$home/.tinykube/config" || true)" != /etc/tinykube/config ]]; then
    mkdir -p "$home/.tinykube"
    ln -sfn /etc/tinykube/config "$home/.tinykube/config"
    chown -h --reference="$home" "$home/.tinykube" "$home/.tinykube/config"
    log "linked $home/.tinykube/config"
  fi
done

# --- wait (not fail) for the Node to register and turn Ready: on libvirt the
# VMs come up in parallel and node1's API server may not answer yet
ready_wait=${TINYKUBE_READY_WAIT:-120}
for _ in $(seq 1 $((ready_wait / 2))); do
  if "$tinykube" --server "$server" get node "$node_name" 2>/dev/null | grep -qw Ready; then
    log "node $node_name is Ready"
    exit 0
  fi
  sleep 2
done
echo "node.sh: warning: node $node_name is not Ready yet; see journalctl -u tinykube-kubelet" >&2
