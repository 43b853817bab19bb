#!/usr/bin/env bash
# Idempotent set-up for `npm run bench` on top of scripts/setup.sh: what the references need.
#   - the conventional VM: debootstrap (its Debian 12 root and the stock cloud kernel are built
#     by the bench itself, inside that root, and cached under ~/.unik/bench/conventional-vm/),
#     e2fsprogs (mkfs.ext4 -d), QEMU;
#   - the container: podman with runc (this host's cgroup v1/v2 hybrid defeats crun);
#   - the Go toolchain for the binary both of them run.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(debootstrap e2fsprogs qemu-system-x86 podman runc golang-go procps)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  echo "bench-setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# debootstrap and chroot need root
if [ "$(id -u)" != 0 ] && [ ! -e "${UNIK_BENCH_CACHE:-$HOME/.unik/bench}/conventional-vm" ]; then
  echo "bench-setup: note: building the conventional-VM reference needs root (debootstrap, chroot)" >&2
fi
