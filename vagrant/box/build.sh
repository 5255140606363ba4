#!/usr/bin/env bash
# Build the Debian 12 (bookworm) Vagrant box that `make vm-e2e` boots, offline,
# and the apt repository its provisioning installs from.
#
#   build.sh OUT_DIR
#
# writes, into OUT_DIR:
#   debian12.box      a libvirt box: metadata.json, a Vagrantfile and box.img
#                     (qcow2, compressed), ~350 MB
#   apt/              a flat apt repository (Packages.gz beside the .debs):
#                     exactly the packages vagrant/provision/prerequisites.sh
#                     installs, with what they need beyond the box
#
# Ubuntu 22.04 images cannot be downloaded on the machines this test runs on,
# and a VM has no internet there; Debian's packages can be, from the host. So
# the box is made the way a distribution's cloud image is, from packages:
#
#   1. mmdebstrap (with the host's apt sources) installs a minimal bookworm
#      into a directory: systemd, udev, the kernel, GRUB, OpenSSH, sudo,
#      ifupdown + DHCP for eth0, Python 3, rsync (Vagrant's synced folder).
#      Inside it, `apt-get install --download-only` of the provisioning's
#      packages fills the apt repository with the .debs the box lacks.
#   2. Vagrant's conventions: user `vagrant` (password `vagrant`), its
#      well-known insecure public key (shipped in the vagrant gem's keys/),
#      passwordless sudo; interfaces named eth0, eth1 (net.ifnames=0), a
#      serial console, an empty machine-id (each VM makes its own at first
#      boot, so the two VMs do not ask DHCP for the same address) and no apt
#      sources (the test's provisioning names its own mirror).
#   3. `mkfs.ext4 -d` turns the directory into a filesystem, written at 1 MiB
#      into a partitioned raw disk: no loop device or mount is needed.
#   4. One boot under QEMU with the box's own kernel and initrd given on the
#      command line and init=/usr/local/sbin/box-firstboot, which installs
#      GRUB to the disk's boot sector from inside (grub-install needs the
#      disk as a device, which it now is), deletes itself and powers off.
#   5. qemu-img converts the raw disk to compressed qcow2; tar makes the box.
#
# Needs root, mmdebstrap, qemu-system-x86, qemu-utils, dpkg-dev, fdisk (sfdisk),
# e2fsprogs and the vagrant package (for the key). About 3 minutes.
set -euo pipefail

out=${1:?usage: build.sh OUT_DIR}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
suite=bookworm
disk_gib=8
# what prerequisites.sh installs on Debian, for either runtime
provision_packages=(containerd runc containernetworking-plugins docker.io nftables iproute2
  ethtool kmod python3-venv iperf3 curl)
box_packages=(systemd-sysv udev dbus openssh-server sudo ifupdown isc-dhcp-client
  linux-image-amd64 grub-pc initramfs-tools python3 rsync iproute2 iputils-ping kmod
  procps ca-certificates netbase less)
keys=(/usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub)
vagrant_key=${keys[-1]}

log() { echo "==> box: $*"; }
die() {
  echo "box: $*" >&2
  exit 1
}

[[ $EUID -eq 0 ]] || die "must run as root (mmdebstrap's root mode, mkfs as root)"
for tool in mmdebstrap qemu-system-x86_64 qemu-img dpkg-scanpackages sfdisk mkfs.ext4; do
  command -v "$tool" >/dev/null || die "$tool is missing (make vm-deps installs it)"
done
[[ -f "$vagrant_key" ]] || die "no vagrant.pub under the vagrant gem's keys/ (is vagrant installed?)"

work=$(mktemp -d /var/tmp/tinykube-box.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
mkdir -p "$out"
rm -rf "$out/apt.new"
mkdir -p "$out/apt.new"

# --- 1. the root filesystem, and the provisioning's packages beside it
log "mmdebstrap $suite (${#box_packages[@]} packages and their dependencies)"
mmdebstrap --mode=root --variant=minbase --include="$(
  IFS=,
  echo "${box_packages[*]}"
)" \
  --customize-hook="chroot \"\$1\" apt-get install -y -q --download-only ${provision_packages[*]}" \
  --customize-hook="cp \"\$1\"/var/cache/apt/archives/*.deb '$out/apt.new/'" \
  --customize-hook="$here/customize.sh \"\$1\" '$vagrant_key'" \
  "$suite" "$root" >"$work/mmdebstrap.log" 2>&1 ||
  {
    tail -n 30 "$work/mmdebstrap.log" >&2
    die "mmdebstrap failed (the last lines of its log are above)"
  }

log "apt repository: $(find "$out/apt.new" -name '*.deb' | wc -l) packages"
(cd "$out/apt.new" && dpkg-scanpackages --multiversion . /dev/null 2>/dev/null | gzip -9 >Packages.gz)
rm -rf "$out/apt"
mv "$out/apt.new" "$out/apt"

# --- 3. a partitioned raw disk with the filesystem at 1 MiB
uuid=$(cat "$root/etc/tinykube-box-root-uuid")
rm -f "$root/etc/tinykube-box-root-uuid"
kernels=("$root"/boot/vmlinuz-*)
initrds=("$root"/boot/initrd.img-*)
cp "${kernels[-1]}" "$work/vmlinuz"
cp "${initrds[-1]}" "$work/initrd.img"
log "filesystem (ext4, UUID $uuid) and disk (${disk_gib} GiB, sparse)"
truncate -s "${disk_gib}G" "$work/disk.raw"
echo 'start=2048, type=83, bootable' | sfdisk -q "$work/disk.raw"
truncate -s $((disk_gib * 1024 - 1))M "$work/root.ext4"
mkfs.ext4 -q -F -U "$uuid" -L root -d "$root" "$work/root.ext4"
dd if="$work/root.ext4" of="$work/disk.raw" bs=1M seek=1 conv=notrunc,sparse status=none
rm -f "$work/root.ext4"

# --- 4. the first boot: GRUB installs itself from inside
log "first boot under QEMU (TCG): grub-install"
timeout 900 qemu-system-x86_64 -machine accel=tcg -cpu qemu64 -m 1024 -smp 1 \
  -nographic -no-reboot -nic none \
  -drive "file=$work/disk.raw,format=raw,if=virtio" \
  -kernel "$work/vmlinuz" -initrd "$work/initrd.img" \
  -append "root=UUID=$uuid rw console=ttyS0 init=/usr/local/sbin/box-firstboot" \
  </dev/null >"$work/firstboot.log" 2>&1 || true
if ! grep -q 'BOX-FIRSTBOOT-OK' "$work/firstboot.log"; then
  tail -n 40 "$work/firstboot.log" >&2
  die "the first boot did not install GRUB (the console's last lines are above)"
fi

# --- 5. the box
log "qemu-img convert -O qcow2 -c"
qemu-img convert -O qcow2 -c "$work/disk.raw" "$work/box.img"
rm -f "$work/disk.raw"
printf '{"provider": "libvirt", "format": "qcow2", "virtual_size": %d}\n' "$disk_gib" \
  >"$work/metadata.json"
cat >"$work/Vagrantfile" <<'BOXFILE'
# The tinykube test box: Debian 12, made offline by vagrant/box/build.sh.
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |lv|
    lv.disk_bus = "virtio"
  end
end
BOXFILE
tar -C "$work" -cf "$out/debian12.box.new" metadata.json Vagrantfile box.img
mv "$out/debian12.box.new" "$out/debian12.box"
log "wrote $out/debian12.box ($(du -h "$out/debian12.box" | cut -f1))"
