# SPDX-License-Identifier: GPL-3.0-or-later
"""The command line: options, the bus, the main loop."""

import argparse
import os
import signal
import sys

import dbus
import dbus.mainloop.glib
from gi.repository import GLib

from . import helpers
from .constants import BLUEZ, MAX_MTU, MIN_MTU, SYSTEM_BUS_PATHS
from .helpers import log
from .fake import Fake


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="fake_bluetoothd.py",
        description="Fake org.bluez (BlueZ 5.66 D-Bus API) for tests on a private bus.")
    parser.add_argument("--address", help="bus address (default: $DBUS_SYSTEM_BUS_ADDRESS)")
    parser.add_argument("--adapters", type=int, default=2,
                        help="adapters created at start, hci0..hciN-1 (default 2)")
    parser.add_argument("--mtu", type=int, default=MAX_MTU,
                        help="ATT MTU of new connections, %d..%d (default %d)" % (
                            MIN_MTU, MAX_MTU, MAX_MTU))
    parser.add_argument("--split-writes", type=int, default=0, metavar="N",
                        help="deliver each central write to the application in N-byte "
                             "pieces with increasing offsets (default 0: off, as BlueZ)")
    parser.add_argument("--gatt-cache", choices=("always", "yes", "no"), default="always",
                        help="main.conf [GATT] Cache: keep remote GATT objects after a "
                             "disconnection (always, the BlueZ default), only when paired "
                             "(yes) or never (no)")
    parser.add_argument("--temporary-timeout", type=float, default=30.0, metavar="S",
                        help="main.conf TemporaryTimeout: seconds before an unpaired, "
                             "disconnected or no longer seen device is removed "
                             "(default 30; 0 removes it at once)")
    parser.add_argument("--max-adv-len", type=int, default=31,
                        help="advertising data bytes the controller takes (default 31)")
    parser.add_argument("--adv-instances", type=int, default=5,
                        help="advertising instances per adapter (default 5)")
    parser.add_argument("--call-timeout", type=float, default=25.0, metavar="S",
                        help="timeout of calls into applications (default 25)")
    parser.add_argument("--agent-timeout", type=float, default=60.0, metavar="S",
                        help="timeout of agent requests (default 60)")
    parser.add_argument("--quiet", action="store_true", help="no trace on stderr")
    args = parser.parse_args(argv)
    if not 0 <= args.adapters <= 16:
        parser.error("--adapters must be within 0..16")
    if not MIN_MTU <= args.mtu <= MAX_MTU:
        parser.error("--mtu must be within %d..%d" % (MIN_MTU, MAX_MTU))
    if args.split_writes < 0:
        parser.error("--split-writes must be 0 or more")
    if not 0 < args.adv_instances < 256:
        parser.error("--adv-instances must be within 1..255")
    if not 20 <= args.max_adv_len <= 251:
        parser.error("--max-adv-len must be within 20..251")
    return args


def main(argv):
    args = parse_args(argv)
    helpers.QUIET = args.quiet
    address = args.address or os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")
    if not address:
        sys.stderr.write("fake-bluetoothd: no bus: pass --address or set "
                         "DBUS_SYSTEM_BUS_ADDRESS to a PRIVATE bus (see bus_harness.py)\n")
        return 2
    if any(p in address for p in SYSTEM_BUS_PATHS):
        sys.stderr.write("fake-bluetoothd: refusing to run on the real system bus (%s)\n"
                         % address)
        return 2

    dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
    try:
        bus = dbus.bus.BusConnection(address)
    except dbus.DBusException as exc:
        sys.stderr.write("fake-bluetoothd: cannot connect to %s: %s\n" % (address, exc))
        return 1
    fake = Fake(bus, args)
    result = bus.request_name(BLUEZ, dbus.bus.NAME_FLAG_DO_NOT_QUEUE)
    if result not in (dbus.bus.REQUEST_NAME_REPLY_PRIMARY_OWNER,
                      dbus.bus.REQUEST_NAME_REPLY_ALREADY_OWNER):
        sys.stderr.write("fake-bluetoothd: %s is already owned on %s\n" % (BLUEZ, address))
        return 1
    loop = GLib.MainLoop()

    def stop(signame):
        log("%s: exiting" % signame)
        loop.quit()
        return GLib.SOURCE_REMOVE

    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGTERM, stop, "SIGTERM")
    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGINT, stop, "SIGINT")
    log("owning %s on %s as %s with adapters %s" % (BLUEZ, address, fake.unique_name,
                                                      list(fake.adapters)))
    sys.stdout.write("fake-bluetoothd ready\n")
    sys.stdout.flush()
    loop.run()
    bus.close()
    return 0
