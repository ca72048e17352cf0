#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# `make test-vm`: the end-to-end scenarios against real BlueZ 5.66 in a QEMU VM.
#   tests/vm/run.sh [BUILD_DIR]      (default: build/, which must hold bluezscriptd
#                                     and bluezscript)
# Boots the Debian kernel that tests/vm/fetch-kernel.sh unpacked into
# BUILD_DIR/vm/kernel/root (make test-vm does that first; never installed on the host)
# with a tiny initramfs; the guest runs the host's files read-only over 9p
# (tests/vm/init, tests/vm/guest.sh), with that kernel's modules over /lib/modules, and
# writes its results and logs to a second, writable 9p share. Prints one PASS/FAIL line per scenario; exits 1 on any failure
# and keeps the console and logs under BUILD_DIR/vm-artifacts/.
# Environment: BZS_VM_TIMEOUT (hard limit of all QEMU runs together, s, default
# 900), BZS_VM_KERNEL_ROOT (where the guest kernel is: boot/vmlinuz-<version> and
# lib/modules/<version>; default BUILD_DIR/vm/kernel/root, "/" boots a kernel installed
# on the host), BZS_VM_KERNEL (the guest kernel's version, default the newest in that
# root with its modules), BZS_VM_ONLY (scenario names, comma-separated), BZS_VM_KEEP=1 (keep the logs
# of a passing run).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$src/build}" && pwd)
limit=${BZS_VM_TIMEOUT:-900}

die() { echo "test-vm: $*" >&2; exit 2; }
for bin in bluezscriptd bluezscript; do
  [ -x "$build/$bin" ] || die "$build/$bin missing: build it first (make build)"
done
for tool in qemu-system-x86_64 btvirt btmon /usr/libexec/bluetooth/bluetoothd; do
  command -v "$tool" >/dev/null || die "$tool missing: run scripts/install-deps.sh"
done

# The guest kernel: BZS_VM_KERNEL (a version, as in lib/modules) or else the newest
# kernel with its modules in the kernel root: the one fetch-kernel.sh downloaded from
# bookworm-backports, as bookworm's 6.1 oopses under these scenarios (docs/testing.md).
kroot=${BZS_VM_KERNEL_ROOT:-$build/vm/kernel/root}
[ -d "$kroot" ] || die "no guest kernel in $kroot: run tests/vm/fetch-kernel.sh $build/vm/kernel (make test-vm does)"
kroot=$(cd "$kroot" && pwd -P)
case "$src$build$kroot" in *[[:space:]]*) die "paths with spaces cannot go on the kernel command line" ;; esac
if [ -n "${BZS_VM_KERNEL:-}" ]; then
  kver=$BZS_VM_KERNEL
else
  kver=$(for k in "$kroot"/boot/vmlinuz-*; do
           v=${k#"$kroot"/boot/vmlinuz-}
           [ -r "$k" ] && [ -d "$kroot/lib/modules/$v" ] && echo "$v"
         done | sort -V | tail -n1)
  [ -n "$kver" ] || die "no kernel in $kroot/boot with its lib/modules: run tests/vm/fetch-kernel.sh"
fi
kernel=$kroot/boot/vmlinuz-$kver
modules=$(cd "$kroot/lib/modules" 2>/dev/null && pwd -P) || die "$kroot/lib/modules missing"
[ -r "$kernel" ] || die "$kernel missing"
[ -d "$modules/$kver" ] || die "$modules/$kver missing"
echo "test-vm: guest kernel $kver ($kernel)"

# Cached per kernel; rebuilt when the scripts or that kernel's modules changed.
initrd=$build/vm/initramfs-$kver.cpio.gz
if [ ! -s "$initrd" ] || [ "$here/init" -nt "$initrd" ] || [ "$here/build-initramfs.sh" -nt "$initrd" ] ||
   [ "$modules/$kver/modules.dep" -nt "$initrd" ]; then
  "$here/build-initramfs.sh" "$kver" "$initrd" "$kroot"
fi

artifacts=$build/vm-artifacts
rm -rf "$artifacts" "$build"/vm-run*
mapfile -t names < <(cd "$here" && PYTHONPATH="$here/../pylib" /usr/bin/python3 -c \
  'import scenarios; print("\n".join(n for n, _ in scenarios.SCENARIOS))')
if [ -n "${BZS_VM_ONLY:-}" ]; then IFS=, read -r -a names <<< "$BZS_VM_ONLY"; fi

# One boot running the scenarios named in $1 (comma-separated) with results in $2.
# KVM is not used: /dev/kvm exists on our CI machines but QEMU cannot run guests
# with it. Software emulation (TCG) is enough; the hard limit ($3 s) bounds a hang.
boot() {
  local only=$1 out=$2 limit=$3
  mkdir -p "$out"
  chmod 0777 "$out"
  set +e
  timeout --kill-after=10 "$limit" qemu-system-x86_64 \
    -accel tcg,thread=multi -smp 2 -m 1024 \
    -nographic -no-reboot -monitor none -serial stdio -nic none \
    -kernel "$kernel" -initrd "$initrd" \
    -append "console=ttyS0 loglevel=4 panic=-1 bzs_guest=$here/guest.sh bzs_src=$src bzs_build=$build bzs_modules=$modules bzs_only=$only" \
    -virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap" \
    -virtfs "local,path=$out,mount_tag=vmout,security_model=none,multidevs=remap" \
    < /dev/null > "$out/console.log" 2>&1
  qemu_status=$?
  set -e
  touch "$out/results"
}

# The Bluetooth stack of Debian's 6.1 kernel sometimes oopses under btvirt
# (list_del corruption in hci_chan_del when bluetoothd closes a socket of a link
# that just dropped), which kills bluetoothd and every scenario after it. Only
# then, and once, the scenarios without a PASS run again in a fresh VM; the oops
# is reported. Any other failure is final.
oops() { grep -qE 'BUG: |Oops: |list_del corruption' "$1/console.log"; }

start=$(date +%s)
out=$build/vm-run
boot "$(IFS=,; echo "${names[*]}")" "$out" "$limit"
runs=("$out")
# The scenarios to run again: the one running when the kernel oopsed (the guest's
# scenario clock and the kernel's log clock are both time since boot) and those
# after it, without a PASS. A failure before the oops stands.
pending=()
if oops "$out"; then
  t=$(grep -m1 -oE '^\[ *[0-9]+\.[0-9]+\] (BUG: |Oops: |list_del corruption)' "$out/console.log" |
      grep -oE '[0-9]+\.[0-9]+' | head -n1)
  first=$(awk -v t="$t" '/^\[ *[0-9.]+\] --- / {
             ts = $0; sub(/^\[ */, "", ts); sub(/\].*/, "", ts)
             n = $0; sub(/.*\] --- /, "", n)
             if (ts + 0 <= t + 0) name = n }
           END { print name }' "$out/scenarios.log" 2>/dev/null || true)
  hit=0
  [ -z "$first" ] && hit=1  # the oops came before the first scenario
  for name in "${names[@]}"; do
    [ "$name" = "$first" ] && hit=1
    [ "$hit" -eq 1 ] && ! grep -qE "^PASS $name\$" "$out/results" && pending+=("$name")
  done
fi
elapsed=$(( $(date +%s) - start ))
if [ ${#pending[@]} -gt 0 ] && [ "$qemu_status" -ne 124 ] && [ $(( limit - elapsed )) -gt 120 ]; then
  echo "test-vm: the guest kernel oopsed in its Bluetooth stack (vm-run/console.log); running ${pending[*]} again in a new VM"
  out2=$build/vm-run-2
  boot "$(IFS=,; echo "${pending[*]}")" "$out2" $(( limit - elapsed ))
  runs+=("$out2")
fi
elapsed=$(( $(date +%s) - start ))

failed=0
if grep -q '^FAIL setup' "${runs[-1]}/results"; then
  grep '^FAIL setup' "${runs[-1]}/results"
  failed=1
fi
# One line per scenario, in the suite's order, from the last boot that ran it; a
# scenario without a result (the VM stopped early) is a failure too.
for name in "${names[@]}"; do
  line=
  for run in "${runs[@]}"; do
    found=$(grep -E "^(PASS|FAIL) $name(:|\$)" "$run/results" | head -n1 || true)
    [ -n "$found" ] && line=$found
  done
  if [ -z "$line" ]; then
    line="FAIL $name: no result (the VM stopped early; see console.log)"
  fi
  echo "$line"
  case "$line" in PASS*) ;; *) failed=1 ;; esac
done
last=${runs[-1]}
grep -E '^FAIL (daemon-alive|daemon-clean-exit)' "$last/results" && failed=1
if [ "$qemu_status" -eq 124 ] || [ "$qemu_status" -eq 137 ]; then
  echo "FAIL vm: QEMU killed after the hard limit"
  failed=1
elif [ "$(cat "$last/exit" 2>/dev/null)" != "0" ] && [ "$failed" -eq 0 ]; then
  echo "FAIL vm: the scenarios did not finish (exit '$(cat "$last/exit" 2>/dev/null)', QEMU $qemu_status)"
  failed=1
fi
for run in "${runs[@]}"; do
  oops "$run" && echo "test-vm: kernel oops in $(basename "$run")/console.log"
done
echo "test-vm: ${elapsed} s from the first QEMU start to the last power-off (${#runs[@]} boot(s))"
if [ "$failed" -ne 0 ] || [ -n "${BZS_VM_KEEP:-}" ] || [ ${#runs[@]} -gt 1 ]; then
  mkdir -p "$artifacts"
  for run in "${runs[@]}"; do mv "$run" "$artifacts/"; done
  echo "test-vm: console, scenario, daemon, bluetoothd, btvirt and dbus-monitor logs and an HCI capture (btmon -r) in $artifacts"
fi
rm -rf "$build"/vm-run*
exit "$failed"
