#!/usr/bin/env bash
# The VM test's parts (sourced by vm-e2e.sh): phases and their logs, the host's
# libvirt objects, the mirror, and cleanup. The checks on the booted cluster
# are in checks.sh.
set -euo pipefail

repo=${repo:?set by vm-e2e.sh: the checkout}
cache=${TINYKUBE_VM_CACHE:-/var/cache/tinykube-vm}
work=/var/tmp/tinykube-vm-e2e # fixed, so that --cleanup and the next run find what is left
started=$(date +%s)
phase_name="" phase_started=0

# What the Vagrantfile reads (vagrant/Vagrantfile's header explains each).
BOX=tinykube/debian12-test
PRIVATE_NET=tinykube-e2e-private
PRIVATE_BRIDGE=tk-e2e-priv
HOST_IP=192.168.56.1
MGMT_NET=tinykube-e2e-mgmt
MGMT_BRIDGE=tk-e2e-mgmt
MGMT_CIDR=192.168.123.0/24
POOL=tinykube-e2e
POOL_DIR=/var/lib/libvirt/images/tinykube-e2e
DOMAIN_PREFIX=tinykube-e2e-
export TINYKUBE_BOX=$BOX TINYKUBE_LIBVIRT_DRIVER=qemu TINYKUBE_CPU_MODEL=qemu64 \
  TINYKUBE_CPUS=1 TINYKUBE_MEMORY=1536 TINYKUBE_BOOT_TIMEOUT=900 TINYKUBE_SSH_INSERT_KEY=0 \
  TINYKUBE_LIBVIRT_POOL=$POOL TINYKUBE_LIBVIRT_NETWORK=$PRIVATE_NET \
  TINYKUBE_LIBVIRT_PREFIX=$DOMAIN_PREFIX \
  TINYKUBE_LIBVIRT_MGMT_NETWORK=$MGMT_NET=$MGMT_CIDR \
  TINYKUBE_APT_MIRROR=http://$HOST_IP:8080/apt/ \
  TINYKUBE_PIP_FIND_LINKS=http://$HOST_IP:8080/wheels/ \
  TINYKUBE_REGISTRY_MIRROR=$HOST_IP:5000
# Vagrant's state and boxes live with the test, not in the checkout or root's home.
export VAGRANT_CWD=$repo/vagrant VAGRANT_DOTFILE_PATH=$work/dotvagrant
export VAGRANT_HOME=$cache/vagrant.d VAGRANT_DEFAULT_PROVIDER=libvirt
export VAGRANT_CHECKPOINT_DISABLE=1 VAGRANT_NO_COLOR=1
export LIBVIRT_DEFAULT_URI=qemu:///system

# ---- phases and logs -------------------------------------------------------------------------

phase() {
  phase_name=$1
  phase_started=$(date +%s)
  echo "[vm-e2e $(elapsed)] $phase_name ..."
}

done_phase() {
  echo "[vm-e2e $(elapsed)] $phase_name done in $(($(date +%s) - phase_started)) s"
}

elapsed() {
  local s=$(($(date +%s) - started))
  printf '%02d:%02d' $((s / 60)) $((s % 60))
}

die() {
  echo "vm-e2e: FAIL in phase \"$phase_name\": $*" >&2
  exit 1
}

# run_logged NAME COMMAND...: the command's output to $work/NAME.log (and, indented, here);
# on failure the phase stops with the log's last lines.
run_logged() {
  local name=$1 rc=0
  shift
  mkdir -p "$work"
  echo "   \$ $*"
  "$@" 2>&1 | tee "$work/$name.log" | sed -u 's/^/   | /' || rc=${PIPESTATUS[0]}
  if ((rc != 0)); then
    echo "vm-e2e: \"$*\" failed (exit $rc); the last lines of $work/$name.log:" >&2
    tail -n 40 "$work/$name.log" | sed 's/^/   ! /' >&2
    die "$name failed"
  fi
}

on_exit() {
  local rc=$?
  ((rc == 0)) && return
  echo "vm-e2e: FAIL after $(elapsed) (phase \"$phase_name\")" >&2
  if [[ "${TINYKUBE_VM_KEEP:-}" == 1 ]]; then
    echo "vm-e2e: TINYKUBE_VM_KEEP=1: the VMs stay up; clean up with $0 --cleanup" >&2
    return
  fi
  cleanup loud
  check_nothing_left || true
}

# ---- can this host run the test? -------------------------------------------------------------

# cannot_run_vms: prints why not and fails; prints nothing and succeeds when it can.
cannot_run_vms() {
  local tool missing=()
  [[ $EUID -eq 0 ]] || {
    echo "it must run as root (libvirt's system instance, mmdebstrap)"
    return 1
  }
  [[ "$(uname -m)" == x86_64 ]] || {
    echo "the box is amd64 and this host is $(uname -m)"
    return 1
  }
  for tool in vagrant virsh libvirtd virtlogd qemu-system-x86_64 qemu-img mmdebstrap \
    dpkg-scanpackages sfdisk rsync dnsmasq docker-registry; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  if ((${#missing[@]})); then
    echo "missing ${missing[*]} (make vm-deps installs them)"
    return 1
  fi
  if ! vagrant plugin list 2>/dev/null | grep '^vagrant-libvirt ' >/dev/null; then
    echo "the vagrant-libvirt plugin is missing (make vm-deps installs it)"
    return 1
  fi
  local avail_kb
  avail_kb=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
  if ((avail_kb < 4 * 1024 * 1024)); then
    echo "$((avail_kb / 1024)) MiB of memory available; two VMs and the host need 4096"
    return 1
  fi
  mkdir -p "$cache"
  if (($(df --output=avail -k "$cache" | tail -n 1) < 8 * 1024 * 1024)); then
    echo "less than 8 GiB free under $cache"
    return 1
  fi
  if ip -o route show | grep -E '^(192\.168\.56|192\.168\.123)\.' >/dev/null; then
    echo "192.168.56.0/24 or 192.168.123.0/24 is already routed here: $(ip -o route | grep -E '^192\.168\.(56|123)\.')"
    return 1
  fi
}

# ---- libvirt ---------------------------------------------------------------------------------

# libvirtd and virtlogd, started by hand (no systemd on these hosts) when not running;
# their pid files tell cleanup to stop them again.
start_libvirt() {
  if virsh version >/dev/null 2>&1; then
    echo "   libvirtd is running already"
    return
  fi
  if [[ -L /etc/libvirt/qemu/networks/autostart/default.xml ]]; then
    die "libvirt's NAT network 'default' starts with libvirtd here (virsh net-autostart default --disable)"
  fi
  mkdir -p "$work/daemons"
  if ! pgrep -x virtlogd >/dev/null; then
    virtlogd -d -p "$work/daemons/virtlogd.pid"
  fi
  libvirtd -d -p "$work/daemons/libvirtd.pid"
  for _ in $(seq 1 60); do
    virsh version >/dev/null 2>&1 && break
    sleep 0.5
  done
  virsh version >/dev/null 2>&1 || die "libvirtd did not answer on qemu:///system"
  echo "   started libvirtd ($(cat "$work/daemons/libvirtd.pid")) and virtlogd"
}

# An isolated network (no <forward>: the host neither routes nor NATs it), optionally with DHCP.
define_network() {
  local name=$1 bridge=$2 ip=$3 dhcp=${4:-} xml=$work/$1.xml
  {
    echo "<network><name>$name</name><bridge name='$bridge' stp='off'/>"
    echo "<ip address='$ip' netmask='255.255.255.0'>"
    [[ -n "$dhcp" ]] && echo "<dhcp><range start='${dhcp%-*}' end='${dhcp#*-}'/></dhcp>"
    echo "</ip></network>"
  } >"$xml"
  virsh -q net-define "$xml" >/dev/null
  virsh -q net-start "$name" >/dev/null
  echo "   network $name: $bridge $ip/24${dhcp:+, DHCP $dhcp}, isolated"
}

define_pool_and_networks() {
  mkdir -p "$POOL_DIR"
  virsh -q pool-define-as "$POOL" dir --target "$POOL_DIR" >/dev/null
  virsh -q pool-start "$POOL" >/dev/null
  echo "   storage pool $POOL in $POOL_DIR"
  define_network "$MGMT_NET" "$MGMT_BRIDGE" 192.168.123.1 192.168.123.100-192.168.123.199
  define_network "$PRIVATE_NET" "$PRIVATE_BRIDGE" "$HOST_IP"
}

# ---- the mirror ------------------------------------------------------------------------------

start_mirror() {
  local dir=$1
  mkdir -p "$work"
  setsid "$repo/.venv/bin/python" -m localcluster.vmmirror serve --address "$HOST_IP" \
    --dir "$dir" >"$work/mirror.log" 2>&1 </dev/null &
  echo $! >"$work/mirror.pid"
  for _ in $(seq 1 600); do
    grep -q '^mirror ready' "$work/mirror.log" && break
    kill -0 "$(cat "$work/mirror.pid")" 2>/dev/null || break
    sleep 0.5
  done
  if ! grep -q '^mirror ready' "$work/mirror.log"; then
    tail -n 30 "$work/mirror.log" | sed 's/^/   ! /' >&2
    die "the mirror did not start (its log's last lines are above)"
  fi
  grep -v '^vmmirror http' "$work/mirror.log" | sed 's/^/   /'
}

# ---- cleanup ---------------------------------------------------------------------------------

# cleanup loud|quiet: everything the test may have made, whether or not it did.
cleanup() {
  local say=echo name
  [[ "${1:-}" == quiet ]] && say=:
  $say "   cleanup: VMs, networks, pool, mirror, daemons"
  if [[ -d "$VAGRANT_DOTFILE_PATH" ]] && command -v vagrant >/dev/null; then
    timeout 600 vagrant destroy -f >"$work/cleanup-destroy.log" 2>&1 || true
  fi
  if virsh version >/dev/null 2>&1; then
    for name in $(virsh list --all --name | grep "^$DOMAIN_PREFIX" || true); do
      virsh -q destroy "$name" >/dev/null 2>&1 || true
      virsh -q undefine "$name" --remove-all-storage >/dev/null 2>&1 || true
    done
    for name in "$PRIVATE_NET" "$MGMT_NET"; do
      virsh -q net-destroy "$name" >/dev/null 2>&1 || true
      virsh -q net-undefine "$name" >/dev/null 2>&1 || true
    done
    if virsh -q pool-info "$POOL" >/dev/null 2>&1; then
      for name in $(virsh -q vol-list "$POOL" 2>/dev/null | awk '{print $1}'); do
        virsh -q vol-delete "$name" --pool "$POOL" >/dev/null 2>&1 || true
      done
      virsh -q pool-destroy "$POOL" >/dev/null 2>&1 || true
      virsh -q pool-undefine "$POOL" >/dev/null 2>&1 || true
    fi
  fi
  rm -rf "$POOL_DIR"
  stop_pidfile "$work/mirror.pid"
  stop_pidfile "$work/daemons/libvirtd.pid"
  stop_pidfile "$work/daemons/virtlogd.pid"
  rm -rf "$repo/vagrant/.join" "$work"
}

stop_pidfile() {
  local pid
  [[ -f "$1" ]] || return 0
  pid=$(cat "$1")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.25
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$1"
}

check_nothing_left() {
  local left=()
  ip link show "$PRIVATE_BRIDGE" >/dev/null 2>&1 && left+=("bridge $PRIVATE_BRIDGE")
  ip link show "$MGMT_BRIDGE" >/dev/null 2>&1 && left+=("bridge $MGMT_BRIDGE")
  pgrep -f "localcluster.vmmirror serve" >/dev/null && left+=("the mirror")
  pgrep -f "qemu-system-x86_64.*$DOMAIN_PREFIX" >/dev/null && left+=("a qemu process")
  [[ -e "$POOL_DIR" ]] && left+=("$POOL_DIR")
  if ((${#left[@]})); then
    echo "vm-e2e: left behind: ${left[*]}" >&2
    return 1
  fi
  echo "   nothing left: no VM, network, pool, volume, mirror or daemon of the test"
}
