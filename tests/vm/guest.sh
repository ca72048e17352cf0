#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# PID 1 inside the VM, after tests/vm/init switched to the host's files (read-only
# 9p under a tmpfs overlay). Sets up a minimal system (no systemd), runs the
# scenarios and powers the VM off; everything the host needs back goes to /vmout.
# The kernel command line carries bzs_src= (the source tree) and bzs_build=.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LANG=C.UTF-8 HOME=/root

mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=0755 tmpfs /run
echo 1 > /proc/sys/kernel/sysrq

off() {
  sync
  echo o > /proc/sysrq-trigger
  sleep 60
}
trap off EXIT

only=()
for word in $(cat /proc/cmdline); do
  case "$word" in
    bzs_src=*) src=${word#bzs_src=} ;;
    bzs_build=*) build=${word#bzs_build=} ;;
    bzs_modules=*) modules=${word#bzs_modules=} ;;
    bzs_only=?*) only=(--only "${word#bzs_only=}") ;;
  esac
done
# A fresh /tmp, unless the source or build tree lives under the host's /tmp (a CI
# clone there, say): a tmpfs would hide it. Writes land in the overlay either way,
# never on the host.
case "$src:$build" in
  /tmp/*|*:/tmp/*) ;;
  *) mount -t tmpfs -o mode=1777 tmpfs /tmp ;;
esac
echo "vm-guest: user space up after $(cut -d' ' -f1 /proc/uptime) s"
hostname bzs-vm
ip link set lo up 2>/dev/null

# This kernel's modules (unpacked in the build tree by fetch-kernel.sh) where modprobe
# and the kernel's module autoloading look for them.
if [ -n "${modules:-}" ] && [ "$modules" != /lib/modules ]; then
  mount --bind "$modules" /lib/modules || { echo "vm-guest: cannot mount $modules on /lib/modules" > /vmout/fatal; exit 1; }
fi
# Bluetooth in this kernel, the virtual controllers' driver.
modprobe hci_vhci || { echo "vm-guest: modprobe hci_vhci failed" > /vmout/fatal; exit 1; }

mkdir -p /run/dbus /var/lib/bluetooth
chmod 0700 /var/lib/bluetooth
dbus-daemon --system --fork --nopidfile || { echo "vm-guest: dbus-daemon failed" > /vmout/fatal; exit 1; }

# Read the programs once so that their start is not a 9p round trip per page: the
# kernel gives btvirt only one second to configure each controller.
cat /usr/bin/btvirt /usr/bin/btmon /usr/libexec/bluetooth/bluetoothd > /dev/null

cd "$src/tests/vm" || exit 1
# The test library (bzs_testlib) is found through PYTHONPATH, as in every suite.
PYTHONPATH="$src/tests/pylib" /usr/bin/python3 -u scenarios.py --build "$build" --out /vmout "${only[@]}" > /vmout/scenarios.log 2>&1
echo "$?" > /vmout/exit
echo "vm-guest: scenarios done after $(cut -d' ' -f1 /proc/uptime) s (exit $(cat /vmout/exit))"
