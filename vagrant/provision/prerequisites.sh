#!/usr/bin/env bash
# Kernel prerequisites and packages for a tinykube node (Ubuntu 22.04 or Debian 12).
#
#   prerequisites.sh RUNTIME        RUNTIME: containerd (default) or docker
#
# TINYKUBE_APT_MIRROR=URL (the offline test, vagrant/test/vm-e2e.sh): a flat
# apt repository (Packages.gz beside the .debs) becomes an apt source; the
# test's box has no other, so every package comes from it.
#
# Idempotent: a module already loaded, a sysctl file already right and a
# package already installed are left alone; apt runs only when a package is
# missing. Everything it changes persists across reboots (modules-load.d,
# sysctl.d).
set -euo pipefail

runtime=${1:-containerd}
case "$runtime" in
  containerd) runtime_packages=(containerd runc containernetworking-plugins) ;;
  docker) runtime_packages=(docker.io containerd runc containernetworking-plugins) ;;
  *)
    echo "prerequisites.sh: unknown runtime '$runtime' (containerd or docker)" >&2
    exit 2
    ;;
esac
# The same names on Ubuntu 22.04 (jammy; containerd, docker.io and
# containernetworking-plugins are in universe, which the Ubuntu boxes enable)
# and Debian 12 (bookworm, main).
packages=("${runtime_packages[@]}" nftables iproute2 ethtool kmod python3-venv iperf3 curl)

export STEP_SCRIPT=prerequisites.sh # named in a failed step\'s message (provision/steps.sh)
# shellcheck disable=SC1091 # beside this script, or (run by Vagrant from /tmp) in /vagrant
source "$(dirname "${BASH_SOURCE[0]}")/steps.sh" 2>/dev/null || source /vagrant/vagrant/provision/steps.sh

log() { echo "==> $*"; }

# write_if_changed PATH: stdin becomes PATH's content unless it already is; true if written.
write_if_changed() {
  local path=$1 tmp
  tmp=$(mktemp)
  cat >"$tmp"
  if [[ -f "$path" ]] && cmp -s "$tmp" "$path"; then
    rm -f "$tmp"
    return 1
  fi
  install -D -m 0644 "$tmp" "$path"
  rm -f "$tmp"
  log "wrote $path"
}

# --- kernel modules: overlayfs for the snapshotter, br_netfilter so bridged pod
# traffic meets the service proxy's nftables rules, vxlan for the overlay.
modules=(overlay br_netfilter vxlan)
printf '%s\n' "${modules[@]}" | write_if_changed /etc/modules-load.d/tinykube.conf || true
for module in "${modules[@]}"; do
  if [[ ! -d "/sys/module/$module" ]]; then  # loaded, or built into the kernel
    step "modprobe $module" modprobe "$module"
  fi
done

# --- sysctls: routing between pods, nodes and the overlay; bridged packets through nftables.
write_if_changed /etc/sysctl.d/90-tinykube.conf <<'SYSCTL' || true
net.ipv4.ip_forward = 1
net.bridge.bridge-nf-call-iptables = 1
net.bridge.bridge-nf-call-ip6tables = 1
SYSCTL
# applied every time: setting a value it already has changes nothing
sysctl -q -p /etc/sysctl.d/90-tinykube.conf

# --- the offline mirror, when given: unsigned (trusted=yes) as it is the test's own,
# served by the host on the private network only (localcluster/vmmirror.py)
if [[ -n "${TINYKUBE_APT_MIRROR:-}" ]]; then
  echo "deb [trusted=yes] ${TINYKUBE_APT_MIRROR%/}/ ./" |
    write_if_changed /etc/apt/sources.list.d/tinykube-mirror.list || true
fi

# --- packages: apt runs only when one is missing.
missing=()
for package in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$package")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  # a fresh Ubuntu box runs unattended-upgrades at first boot: wait for its dpkg lock;
  # a mirror that does not answer fails the step in a minute, not after apt's default
  apt_opts=(-o DPkg::Lock::Timeout=600 -o Acquire::http::Timeout=20 -o Acquire::Retries=2)
  step "apt-get update" apt-get "${apt_opts[@]}" update -q
  # --force-confold: a config file tinykube wrote stays ours on a later upgrade
  step "apt-get install ${missing[*]}" apt-get "${apt_opts[@]}" install -y -q \
    -o Dpkg::Options::=--force-confold "${missing[@]}"
fi

# Debian's containernetworking-plugins installs the plugins to /usr/lib/cni; the
# CNI bin dir (/opt/cni/bin) links the ones containerd runs itself (loopback).
if [[ ! -x /usr/lib/cni/loopback ]]; then
  echo "prerequisites.sh: /usr/lib/cni/loopback is missing after installing containernetworking-plugins" >&2
  echo "  (dpkg -L containernetworking-plugins shows where this release puts the plugins)" >&2
  exit 1
fi
log "prerequisites ready (runtime $runtime)"
