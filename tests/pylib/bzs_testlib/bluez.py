# SPDX-License-Identifier: GPL-3.0-or-later
"""D-Bus names of BlueZ 5.66 (and of the fake's control interface) as the tests use
them, and a byte-array builder. Importing it makes GLib's main loop dbus-python's
default, the loop that wait.py runs: every module here that uses D-Bus imports it."""

import dbus
import dbus.mainloop.glib

dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)

BLUEZ = "org.bluez"
ERR = "org.bluez.Error."
PROPS = "org.freedesktop.DBus.Properties"
OM = "org.freedesktop.DBus.ObjectManager"
SERVICE = "org.bluez.GattService1"
CHRC = "org.bluez.GattCharacteristic1"
DESC = "org.bluez.GattDescriptor1"
DEVICE = "org.bluez.Device1"
ADAPTER = "org.bluez.Adapter1"
# The fake's test control object (not in BlueZ).
CONTROL = "org.bluez.test.Control1"
CONTROL_PATH = "/org/bluez/test"


def ay(data):
    """`data` as a D-Bus byte array (signature ay)."""
    return dbus.Array([dbus.Byte(b) for b in data], signature="y")
