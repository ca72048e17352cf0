# SPDX-License-Identifier: GPL-3.0-or-later
"""fake-bluetoothd: a fake `org.bluez` service for tests on a PRIVATE D-Bus.

It speaks the BlueZ 5.66 D-Bus API (doc/*-api.txt of that release) and acts as
a "virtual radio" between adapters: a GATT application + LE advertisement
registered on one adapter (the peripheral, hci0 by default) is seen, on every
OTHER adapter (hci1 by default), as a remote device that a central can
discover, connect, pair, read, write and subscribe to. Calls made by the
central are forwarded to the application the way bluetoothd's ATT server
would forward them, with the same option dictionaries and error mappings.

Where the behaviour of real BlueZ was checked in its 5.66 sources, comments
name the file; tests/pylib/README.md lists what is simplified or missing.

Usage (never against the real system bus):
  python3 -m bzs_testlib.fake_bluetoothd [--address ADDR] [--adapters N] [--mtu N]
                                          [--split-writes N] [--gatt-cache always|yes|no]
                                          [--temporary-timeout S] [--max-adv-len N]
                                          [--adv-instances N] [--call-timeout S]
                                          [--agent-timeout S] [--quiet]

The bus is --address, else $DBUS_SYSTEM_BUS_ADDRESS. It prints
"fake-bluetoothd ready" on stdout once it owns org.bluez, logs every call on
stderr, and exits 0 on SIGTERM or SIGINT.

Test control: object /org/bluez/test, interface org.bluez.test.Control1
(AddAdapter, RemoveAdapter, SetPowered, DisconnectAll, SetMtu,
SetSplitWrites, GetState).

The sections of the former single file are its modules, each importing only from
the ones before it: constants, helpers, objects, agent, local_gatt, adapter,
device, remote_gatt, control, fake (the Fake class), main (the command line).
"""
