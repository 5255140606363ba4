#!/usr/bin/env bash
# mmdebstrap's customize hook for the test box (build.sh): Vagrant's
# conventions and a first-boot script, written into the root filesystem ROOT.
#
#   customize.sh ROOT VAGRANT_PUBLIC_KEY
set -euo pipefail

root=${1:?usage: customize.sh ROOT VAGRANT_PUBLIC_KEY}
key=${2:?usage: customize.sh ROOT VAGRANT_PUBLIC_KEY}

# --- the vagrant user: the insecure key Vagrant knows, passwordless sudo
chroot "$root" useradd --create-home --shell /bin/bash vagrant
echo 'vagrant:vagrant' | chroot "$root" chpasswd
install -d -m 0700 "$root/home/vagrant/.ssh"
install -m 0600 "$key" "$root/home/vagrant/.ssh/authorized_keys"
chroot "$root" chown -R vagrant:vagrant /home/vagrant/.ssh
echo 'vagrant ALL=(ALL) NOPASSWD:ALL' >"$root/etc/sudoers.d/vagrant"
chmod 0440 "$root/etc/sudoers.d/vagrant"
# no reverse lookup of the host at each login (the test network has no DNS)
echo 'UseDNS no' >"$root/etc/ssh/sshd_config.d/vagrant.conf"

# --- the network: eth0 by DHCP (Vagrant's management network); Vagrant adds eth1
cat >"$root/etc/network/interfaces" <<'IFACES'
# eth0: Vagrant's management network (DHCP). Vagrant writes eth1, the
# private network, into this file itself when the VM comes up.
source /etc/network/interfaces.d/*

auto lo
iface lo inet loopback

allow-hotplug eth0
iface eth0 inet dhcp
IFACES
echo debian12 >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tdebian12\n' >"$root/etc/hosts"

# --- each VM its own identity: systemd makes a machine-id at first boot
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"

# --- no apt sources: the VMs of the test have no internet; the provisioning
# adds the host's mirror (TINYKUBE_APT_MIRROR) as the only one
rm -f "$root/etc/apt/sources.list.d/"*
cat >"$root/etc/apt/sources.list" <<'SOURCES'
# The tinykube test box is built offline and has no apt source of its own:
# vagrant/provision/prerequisites.sh adds the mirror it is given.
SOURCES

# --- the disk: root by UUID, eth0/eth1 names, a serial console, no menu wait
uuid=$(cat /proc/sys/kernel/random/uuid)
echo "$uuid" >"$root/etc/tinykube-box-root-uuid" # read (and removed) by build.sh
echo "UUID=$uuid / ext4 errors=remount-ro 0 1" >"$root/etc/fstab"
cat >"$root/etc/default/grub" <<'GRUB'
GRUB_DEFAULT=0
GRUB_TIMEOUT=0
GRUB_DISTRIBUTOR=Debian
GRUB_CMDLINE_LINUX_DEFAULT=""
GRUB_CMDLINE_LINUX="net.ifnames=0 biosdevname=0 console=tty0 console=ttyS0,115200n8"
GRUB_TERMINAL="console serial"
GRUB_SERIAL_COMMAND="serial --speed=115200"
GRUB_DISABLE_OS_PROBER=true
GRUB

# --- the first boot (build.sh boots it once with init= this script)
cat >"$root/usr/local/sbin/box-firstboot" <<'FIRSTBOOT'
#!/bin/sh
# Runs once, as init, in the box's first boot under QEMU: GRUB into the
# disk's boot sector, then this script removes itself and powers off.
mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
mount -o remount,rw /
if grub-install --target=i386-pc /dev/vda && update-grub; then
  rm -f /usr/local/sbin/box-firstboot
  echo BOX-FIRSTBOOT-OK
fi
sync
echo o >/proc/sysrq-trigger
FIRSTBOOT
chmod 0755 "$root/usr/local/sbin/box-firstboot"
