# SPDX-License-Identifier: GPL-3.0-or-later
"""BlueZscript's Python test library (tests/pylib, found through PYTHONPATH).

Modules, each for one thing the suites share:
- bus: a private dbus-daemon and the fake org.bluez on it (also a command).
- fake_bluetoothd: the fake org.bluez itself (BlueZ 5.66 D-Bus API), a package run
  as `python3 -m bzs_testlib.fake_bluetoothd`.
- bluez: D-Bus names of BlueZ as the tests use them.
- wait: bounded waits that run the GLib main loop, and calls that keep it running.
- mirror: the one mirror of org.bluez's objects kept by ObjectManager signals.
- protocol: the BlueZscript protocol version 2 in Python, both sides
  (docs/design/protocol-v2.md), checked against spec/vectors.
- phone: a phone's half of version 2 (pairing, commands, catalogue) over a central.
- central: a raw GATT central in the test's process.
- daemon: the real bluezscriptd and bluezscript CLI with their state folder.
- asserts: unittest assertions about D-Bus errors.

Run with Debian's /usr/bin/python3 (python3-dbus, python3-gi, python3-cryptography).
Importing the package loads none of its modules.
"""
