#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# Builds the VM's tiny initramfs: busybox, the modules that reach the host's files
# (virtio-pci, 9p, overlay, with their dependencies) and tests/vm/init. Nothing else
# is copied: the guest runs the host's own files, mounted read-only over 9p.
#   build-initramfs.sh KERNEL_VERSION OUTPUT.cpio.gz [KERNEL_ROOT]
# KERNEL_ROOT holds lib/modules/KERNEL_VERSION (default /; tests/vm/run.sh passes the
# kernel that fetch-kernel.sh unpacked).
set -euo pipefail
kver=$1
out=$2
kroot=${3:-/}
here=$(cd "$(dirname "$0")" && pwd)

busybox=/bin/busybox
[ -x "$busybox" ] || { echo "build-initramfs: $busybox missing (apt-get install busybox-static)" >&2; exit 2; }
# The initramfs has no libraries: only a static busybox works there.
if ldd "$busybox" >/dev/null 2>&1; then
  echo "build-initramfs: $busybox is dynamically linked; install busybox-static" >&2
  exit 2
fi
[ -d "$kroot/lib/modules/$kver" ] || { echo "build-initramfs: $kroot/lib/modules/$kver missing" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work"/{bin,dev,proc,sys,mnt,lower,upper,newroot,modules}
cp "$busybox" "$work/bin/busybox"
for applet in sh mount umount mkdir insmod switch_root echo cat sleep poweroff; do
  ln -s busybox "$work/bin/$applet"
done

# The modules in load order, dependencies first, each once (modprobe resolves them
# against this kernel's modules.dep). The list goes to the init script.
: > "$work/modules/order"
for m in virtio_pci 9pnet_virtio 9p overlay; do
  modprobe -d "$kroot" -S "$kver" --show-depends "$m" | while read -r cmd path _; do
    [ "$cmd" = builtin ] && continue  # built into this kernel (virtio_pci in 6.12)
    [ "$cmd" = insmod ] || { echo "build-initramfs: $m: unexpected '$cmd $path'" >&2; exit 2; }
    # Newer Debian kernels (bookworm-backports) ship compressed modules; busybox's
    # insmod takes plain ones, so they go in decompressed.
    name=$(basename "$path")
    case "$name" in
      *.ko) decompress=(cat) ;;
      *.ko.xz) decompress=(xz -dc); name=${name%.xz} ;;
      *.ko.zst) decompress=(zstd -qdc); name=${name%.zst} ;;
      *) echo "build-initramfs: $name: unknown module format" >&2; exit 2 ;;
    esac
    grep -qx "$name" "$work/modules/order" && continue
    "${decompress[@]}" "$path" > "$work/modules/$name"
    echo "$name" >> "$work/modules/order"
  done
done

install -m 0755 "$here/init" "$work/init"
mkdir -p "$(dirname "$out")"
(cd "$work" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 > "$out.tmp"
mv "$out.tmp" "$out"
