#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine: apt packages, npm packages, the TypeScript
# build, the guest init and the kernel (built once from linux-source-6.1, cached by config hash).
#   scripts/setup.sh        everything: every language, provider and test peer (npm test)
#   scripts/setup.sh demo   only what building and running the Go example needs (npm run demo);
#                           other kernels are built when an image first needs one
set -euo pipefail
cd "$(dirname "$0")/.."
MODE="${1:-full}"

# the demo: QEMU for this host, the Go compiler, the guest init's compiler, one kernel build,
# the confinement of builds; nothing for other languages, providers or tests
case "$(dpkg --print-architecture)" in arm64) DEMO_QEMU=qemu-system-arm ;; *) DEMO_QEMU=qemu-system-x86 ;; esac
DEMO_PACKAGES=(
  "$DEMO_QEMU" musl-tools golang-go
  linux-source-6.1 build-essential flex bison bc libelf-dev libssl-dev cpio xz-utils lz4 zstd
  bubblewrap util-linux curl openssl procps
)

APT_PACKAGES=(
  qemu-system-x86 qemu-utils          # the QEMU provider
  qemu-system-arm gcc-aarch64-linux-gnu g++-aarch64-linux-gnu # arm64: QEMU virt, the cross compilers for its kernel, init, C and C++
  musl-tools                          # the guest init (static, musl)
  golang-go                           # the Go compiler
  python3.11 openjdk-17-jdk-headless  # the Python and Java compilers (Node.js is the daemon's own)
  linux-source-6.1 build-essential flex bison bc libelf-dev libssl-dev cpio xz-utils lz4 zstd  # kernel builds; zstd compresses image roots
  bubblewrap util-linux               # builds of uploaded code run confined (bwrap, setpriv, prlimit)
  e2fsprogs dosfstools mtools         # volumes: mkfs.ext4 -d, mkfs.fat + mcopy (no root, no loop devices)
  erofs-utils                         # large image roots: a read-only compressed erofs disk (mkfs.erofs, fsck.erofs in tests)
  fdisk syslinux syslinux-common systemd-boot-efi ovmf # unik export: the partition table, BIOS boot (syslinux), UEFI (systemd's EFI stub for a unified kernel image); OVMF boots UEFI disks in tests
  podman                              # tests: a reference Docker API server for the conformance test
  webfs                               # tests: a program from a Debian package for the elf compiler
  docker-registry skopeo apache2-utils # tests: a real OCI registry (with htpasswd auth) for the hub, and skopeo as a peer
  debootstrap postgresql-client redis-tools # tests: container images made here (a Debian root from debootstrap, podman build), and their servers' own clients (psql, redis-cli)
  containerd runc containernetworking-plugins iproute2 # Kubernetes: containerd calls unik-runc; CNI bridge for pods
  chromium                            # tests: cross-origin requests from a real browser page
  nftables                            # bridged networks: NAT and isolation rules
  libvirt-daemon-system libvirt-clients libxml2-utils # the libvirt provider (virsh; libvirtd is started by its test); xmllint for libvirt's schema check
  redis-server                        # the counter example's Redis, run as a unikernel through the elf language
  zip unzip                           # tests: the Cloud Foundry buildpack zipped as for cf create-buildpack, unzipped as CF's builder does
  curl openssl procps
)
[ "$MODE" = demo ] && APT_PACKAGES=("${DEMO_PACKAGES[@]}")
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# tests drive the Docker API with the docker client; Debian ships it in docker.io (its engine is
# never started)
[ "$MODE" = demo ] || command -v docker >/dev/null || missing+=(docker.io)
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  # redis-server is here only to be copied into images: its package must not start a host
  # service. A policy-rc.d of our own (only when the host has none: a host's own policy is kept)
  # denies starting redis while apt runs, and is removed afterwards, also on failure.
  policy=/usr/sbin/policy-rc.d
  own_policy=""
  if [[ " ${missing[*]} " == *" redis-server "* ]] && [ ! -e "$policy" ]; then
    own_policy=1
    trap '$SUDO rm -f "$policy"' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    printf '%s\n' '#!/bin/sh' '# temporary, from unik scripts/setup.sh: never start redis-server on the host' \
      'for a; do case "$a" in redis-server|redis-server.service) exit 101 ;; esac; done' 'exit 0' |
      $SUDO tee "$policy" >/dev/null
    $SUDO chmod 755 "$policy"
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ -n "$own_policy" ]; then
    $SUDO rm -f "$policy"
    trap - EXIT INT TERM
  fi
  if [[ " ${missing[*]} " == *" redis-server "* ]]; then
    # not at boot either (the package enables its unit), and stopped if a host policy let it start
    $SUDO systemctl disable redis-server.service >/dev/null 2>&1 || true
    $SUDO update-rc.d redis-server disable >/dev/null 2>&1 || true
    $SUDO service redis-server stop >/dev/null 2>&1 || true
  fi
fi

# unprivileged accounts: builds of uploaded code and QEMU never run as root
for u in unik-build unik-qemu; do
  id -u "$u" >/dev/null 2>&1 || { [ "$(id -u)" = 0 ] && useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$u"; } || true
done

if [ -L node_modules ]; then
  # a worktree sharing another checkout's packages: npm ci would empty that checkout's node_modules through the link
  echo "setup: node_modules is a link to $(readlink node_modules); not reinstalling it from here"
elif [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ] ||
     [ -e node_modules/.unik-rebuild-pending ] || [ ! -f node_modules/better-sqlite3/build/Release/better_sqlite3.node ]; then
  echo "setup: npm ci"
  # Packages are fetched without running their install scripts; the native addons (mostly
  # better-sqlite3's SQLite, about 75 s of one core: no prebuilt binary is reachable from here)
  # compile in the background while tsc and the kernel build run. The marker (and the addon's
  # absence) makes a run cut short, or a failed compile, start over; the compile runs in its own
  # process group, ended with this script if the script fails or is interrupted.
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
  touch node_modules/.unik-rebuild-pending
  setsid npm rebuild --no-audit --no-fund --loglevel=error >node_modules/.unik-rebuild.log 2>&1 &
  rebuild_pid=$!
  trap 'kill -- -"$rebuild_pid" 2>/dev/null || true' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
fi

npx tsc -p tsconfig.json
kernel_status=0
node dist/scripts/prepare-kernel.js "$MODE" || kernel_status=$?
if [ -n "${rebuild_pid:-}" ]; then
  if ! wait "$rebuild_pid"; then
    echo "setup: compiling the npm packages' native addons failed (npm rebuild); its last lines:" >&2
    tail -n 30 node_modules/.unik-rebuild.log >&2
    exit 1
  fi
  rm -f node_modules/.unik-rebuild-pending
  trap - EXIT INT TERM
fi
exit "$kernel_status"
