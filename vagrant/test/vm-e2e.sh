#!/usr/bin/env bash
# `make vm-e2e`: the Vagrant path on two real booted VMs, offline, from box to cleanup.
#
#   vm-e2e.sh                     as root, from any directory
#
# Phases (each prints its time):
#   preflight   can this host run VMs? (if not: why, and exit 1 -- or 0 with
#               TINYKUBE_SKIP_VM=1)
#   box         vagrant/box/build.sh (cached under $TINYKUBE_VM_CACHE by the
#               hash of the box scripts), `vagrant box add`
#   libvirt     libvirtd and virtlogd (started here when not running), a
#               storage pool and two isolated networks: the management
#               network (eth0, DHCP, Vagrant's SSH) and the private network
#               192.168.56.0/24 (eth1); neither forwards anywhere
#   mirror      localcluster/vmmirror.py on 192.168.56.1: apt, wheels, images
#   up          `vagrant up node1`, then node2 (it joins with a bootstrap token)
#   verify      verify.sh on node1 prints PASS; then checks of our own:
#               vxlan.sh (the overlay rides eth1 between the two kernels) and
#               the NodePort from this host reaching both replicas
#   reboot      `vagrant reload node2`: NotReady, then Ready with nothing
#               started by hand, pods serving, nothing running twice
#   reprovision `vagrant provision` again changes nothing and breaks nothing
#   destroy     `vagrant destroy -f`; then no VM, network, pool, volume or
#               daemon of the test is left (also after a failure: the EXIT trap)
#
# Environment: TINYKUBE_VM_CACHE (default /var/cache/tinykube-vm),
# TINYKUBE_VM_KEEP=1 leaves the VMs up after a failure for a look (cleanup then
# by hand: vagrant/test/vm-e2e.sh --cleanup).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"
# shellcheck source=checks.sh
source "$here/checks.sh"

if [[ "${1:-}" == --cleanup ]]; then
  cleanup loud
  exit 0
fi

# ---------------------------------------------------------------------------------------------
phase preflight
if ! why=$(cannot_run_vms); then
  if [[ "${TINYKUBE_SKIP_VM:-}" == 1 ]]; then
    echo "vm-e2e: SKIPPED (TINYKUBE_SKIP_VM=1): $why"
    exit 0
  fi
  echo "vm-e2e: this host cannot run the VM test: $why" >&2
  echo "vm-e2e: (TINYKUBE_SKIP_VM=1 skips it)" >&2
  exit 1
fi
trap on_exit EXIT
cleanup quiet # what an earlier run that was killed may have left
mkdir -p "$work"
done_phase

# ---------------------------------------------------------------------------------------------
phase box
key=$(cat "$repo/vagrant/box/build.sh" "$repo/vagrant/box/customize.sh" | sha256sum | cut -c1-12)
box_dir=$cache/box-$key
if [[ ! -f "$box_dir/debian12.box" || ! -f "$box_dir/apt/Packages.gz" ]]; then
  run_logged box-build bash "$repo/vagrant/box/build.sh" "$box_dir"
else
  echo "   reusing $box_dir/debian12.box"
fi
run_logged box-add vagrant box add --force --name "$BOX" "$box_dir/debian12.box"
done_phase

# ---------------------------------------------------------------------------------------------
phase libvirt
start_libvirt
define_pool_and_networks
done_phase

# ---------------------------------------------------------------------------------------------
phase mirror
start_mirror "$box_dir"
done_phase

# ---------------------------------------------------------------------------------------------
phase "up node1"
run_logged up-node1 vagrant up node1 --provider=libvirt
done_phase
phase "up node2"
run_logged up-node2 vagrant up node2 --provider=libvirt
done_phase

# ---------------------------------------------------------------------------------------------
phase verify
verify_pass first
check_nodes_ready
check_overlay_on_eth1
check_nodeport_from_host
done_phase

# ---------------------------------------------------------------------------------------------
phase "reboot node2"
check_reboot node2
verify_pass "after the reboot"
done_phase

# ---------------------------------------------------------------------------------------------
phase reprovision
before=$(cluster_fingerprint)
run_logged reprovision vagrant provision
after=$(cluster_fingerprint)
if [[ "$before" != "$after" ]]; then
  diff <(echo "$before") <(echo "$after") | sed 's/^/   /' >&2
  die "the second provisioning changed what runs (above: < before, > after)"
fi
echo "   same daemons (same start times), same pods (same UIDs and restarts)"
verify_pass "after the second provisioning"
done_phase

# ---------------------------------------------------------------------------------------------
phase destroy
run_logged destroy vagrant destroy -f
cleanup loud
check_nothing_left
done_phase
trap - EXIT
echo "vm-e2e: PASS in $(($(date +%s) - started)) s"
