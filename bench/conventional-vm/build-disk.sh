#!/usr/bin/env bash
# The conventional-VM reference, part 2: BASE/root plus the app binary as /usr/local/bin/app,
# written into a sparse raw ext4 disk image with `mkfs.ext4 -d` (no loop mount).
#
#   build-disk.sh BASEDIR BINARY OUTDIR [SIZE]   → OUTDIR/disk.img, OUTDIR/root-bytes, OUTDIR/done
set -euo pipefail
base=$1 bin=$2 out=$3 size=${4:-1G}
[ -e "$out/done" ] && exit 0
rm -rf "$out"
mkdir -p "$out"
stage=$out/stage
cp -a "$base/root" "$stage"
install -m 0755 "$bin" "$stage/usr/local/bin/app"
du -sb --apparent-size "$stage" | cut -f1 > "$out/root-bytes"
truncate -s "$size" "$out/disk.img"
mkfs.ext4 -q -F -L root -d "$stage" "$out/disk.img"
rm -rf "$stage"
touch "$out/done"
