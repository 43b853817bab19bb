#!/usr/bin/env bash
# The conventional-VM reference, part 1 (the recipe; its hash keys the cache): a minimal
# Debian 12 root made by debootstrap with a normal init system (systemd), udev, Debian's stock
# cloud kernel installed the Debian way (so initramfs-tools makes its initrd inside the root),
# networking by systemd-networkd (DHCP against QEMU's slirp), and a systemd unit for the app
# at /usr/local/bin/app. The app binary itself is added per disk image (build-disk.sh).
#
#   build-base.sh OUTDIR [MIRROR]   → OUTDIR/root/, OUTDIR/vmlinuz, OUTDIR/initrd.img, OUTDIR/done
set -euo pipefail
out=$1
mirror=${2:-http://deb.debian.org/debian}
[ -e "$out/done" ] && exit 0
[ "$(id -u)" = 0 ] || { echo "build-base.sh: needs root (debootstrap, chroot)" >&2; exit 1; }
rm -rf "$out"
mkdir -p "$out"
root=$out/root

# systemd-sysv: systemd as PID 1 (minbase has no init); udev: module autoloading and the
# links networkd waits for; linux-image-cloud-amd64 pulls initramfs-tools and runs it.
debootstrap --variant=minbase --include=systemd-sysv,udev,linux-image-cloud-amd64 \
  bookworm "$root" "$mirror"

echo debian-vm > "$root/etc/hostname"
printf '/dev/vda / ext4 errors=remount-ro 0 1\n' > "$root/etc/fstab"
mkdir -p "$root/etc/systemd/network"
cat > "$root/etc/systemd/network/80-dhcp.network" <<'NET'
[Match]
Name=en* eth*

[Network]
DHCP=yes
NET
cat > "$root/etc/systemd/system/app.service" <<'UNIT'
[Unit]
Description=the benchmarked app (examples/go-http)

[Service]
ExecStart=/usr/local/bin/app
Environment=PORT=8080
Restart=always

[Install]
WantedBy=multi-user.target
UNIT
chroot "$root" systemctl enable systemd-networkd.service app.service
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/log/*.log "$root"/var/cache/debconf/*-old

# the kernel and initrd the Debian way; QEMU loads them directly (-kernel/-initrd), as the
# copies in the root's /boot stay where a bootloader would find them
cp "$(ls "$root"/boot/vmlinuz-*-cloud-amd64 | head -1)" "$out/vmlinuz"
cp "$(ls "$root"/boot/initrd.img-*-cloud-amd64 | head -1)" "$out/initrd.img"
basename "$(ls "$root"/boot/vmlinuz-*-cloud-amd64 | head -1)" > "$out/kernel-version"
touch "$out/done"
