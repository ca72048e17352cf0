#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# `make test-vm`: the end-to-end scenarios against real BlueZ 5.66 in a QEMU VM.
#   tests/vm/run.sh [BUILD_DIR]      (default: build/, which must hold bluezscriptd
#                                     and bluezscript)
# Boots Debian's own kernel (the installed linux-image-amd64, so /lib/modules
# matches) with a tiny initramfs; the guest runs the host's files read-only over
# 9p (tests/vm/init, tests/vm/guest.sh) and writes its results and logs to a second,
# writable 9p share. Prints one PASS/FAIL line per scenario; exits 1 on any failure
# and keeps the console and logs under BUILD_DIR/vm-artifacts/.
# Environment: BZS_VM_TIMEOUT (hard limit of the QEMU run, s, default 540),
# BZS_VM_ONLY (one scenario name), BZS_VM_KEEP=1 (keep the logs of a passing run).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$src/build}" && pwd)
limit=${BZS_VM_TIMEOUT:-540}

die() { echo "test-vm: $*" >&2; exit 2; }
for bin in bluezscriptd bluezscript; do
  [ -x "$build/$bin" ] || die "$build/$bin missing: build it first (make build)"
done
for tool in qemu-system-x86_64 btvirt btmon /usr/libexec/bluetooth/bluetoothd; do
  command -v "$tool" >/dev/null || die "$tool missing: run scripts/install-deps.sh"
done
case "$src$build" in *[[:space:]]*) die "paths with spaces cannot go on the kernel command line" ;; esac

# The kernel of the installed linux-image-amd64 (not the host's running one, which
# may have no Bluetooth and no modules here).
kver=$(dpkg-query -W -f='${Depends}' linux-image-amd64 2>/dev/null |
       grep -o 'linux-image-[0-9][^ ,]*' | head -n1 | sed 's/^linux-image-//') || true
[ -n "$kver" ] || die "linux-image-amd64 is not installed: run scripts/install-deps.sh"
kernel=/boot/vmlinuz-$kver
[ -r "$kernel" ] || die "$kernel missing"
[ -d "/lib/modules/$kver" ] || die "/lib/modules/$kver missing"

initrd=$build/vm/initramfs-$kver.cpio.gz
if [ ! -s "$initrd" ] || [ "$here/init" -nt "$initrd" ] || [ "$here/build-initramfs.sh" -nt "$initrd" ]; then
  "$here/build-initramfs.sh" "$kver" "$initrd"
fi

out=$build/vm-run
artifacts=$build/vm-artifacts
rm -rf "$out"
mkdir -p "$out"
chmod 0777 "$out"

# KVM is not used: /dev/kvm exists on our CI machines but QEMU cannot run guests
# with it. Software emulation (TCG) is enough; the hard limit bounds a hang.
start=$(date +%s)
set +e
timeout --kill-after=10 "$limit" qemu-system-x86_64 \
  -accel tcg,thread=multi -smp 2 -m 1024 \
  -nographic -no-reboot -monitor none -serial stdio -nic none \
  -kernel "$kernel" -initrd "$initrd" \
  -append "console=ttyS0 loglevel=4 panic=-1 bzs_guest=$here/guest.sh bzs_src=$src bzs_build=$build${BZS_VM_ONLY:+ bzs_only=$BZS_VM_ONLY}" \
  -virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap" \
  -virtfs "local,path=$out,mount_tag=vmout,security_model=none,multidevs=remap" \
  < /dev/null > "$out/console.log" 2>&1
qemu_status=$?
set -e
elapsed=$(( $(date +%s) - start ))

failed=0
# One line per scenario, in the suite's order; a scenario without a result
# (the VM stopped early) is a failure too.
mapfile -t names < <(cd "$here" && /usr/bin/python3 -c \
  'import scenarios; print("\n".join(n for n, _ in scenarios.SCENARIOS))')
if [ -n "${BZS_VM_ONLY:-}" ]; then names=("$BZS_VM_ONLY"); fi
touch "$out/results"
if grep -q '^FAIL setup' "$out/results"; then
  grep '^FAIL setup' "$out/results"
  failed=1
fi
for name in "${names[@]}"; do
  line=$(grep -E "^(PASS|FAIL) $name(:|\$)" "$out/results" | head -n1 || true)
  if [ -z "$line" ]; then
    line="FAIL $name: no result (the VM stopped early; see console.log)"
  fi
  echo "$line"
  case "$line" in PASS*) ;; *) failed=1 ;; esac
done
grep -E '^FAIL (daemon-alive|daemon-clean-exit)' "$out/results" && failed=1
if [ "$qemu_status" -eq 124 ] || [ "$qemu_status" -eq 137 ]; then
  echo "FAIL vm: QEMU killed after the hard limit of $limit s"
  failed=1
elif [ "$(cat "$out/exit" 2>/dev/null)" != "0" ] && [ "$failed" -eq 0 ]; then
  echo "FAIL vm: the scenarios did not finish (exit '$(cat "$out/exit" 2>/dev/null)', QEMU $qemu_status)"
  failed=1
fi
echo "test-vm: ${elapsed} s from QEMU start to power-off"
if [ "$failed" -ne 0 ] || [ -n "${BZS_VM_KEEP:-}" ]; then
  rm -rf "$artifacts"
  mv "$out" "$artifacts"
  echo "test-vm: console, scenario, daemon, bluetoothd and btvirt logs and an HCI capture (btmon -r) in $artifacts"
else
  rm -rf "$out"
fi
exit "$failed"
