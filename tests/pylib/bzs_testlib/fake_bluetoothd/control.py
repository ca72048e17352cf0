# SPDX-License-Identifier: GPL-3.0-or-later
"""The test control interface org.bluez.test.Control1 (not in BlueZ)."""

import json

import dbus
import dbus.service

from .constants import CONTROL_IFACE, CONTROL_PATH, MAX_MTU, MIN_MTU
from .helpers import err_already_exists, err_does_not_exist, err_invalid_args
from .objects import TracedObject


class Control(TracedObject):
    """/org/bluez/test: org.bluez.test.Control1 (not part of BlueZ)."""

    def __init__(self, fake):
        super().__init__(fake.bus, CONTROL_PATH)
        self.fake = fake

    @dbus.service.method(CONTROL_IFACE, in_signature="s", out_signature="o")
    def AddAdapter(self, name):
        name = str(name)
        if not (name.startswith("hci") and name[3:].isdigit() and len(name) <= 8):
            raise err_invalid_args("Adapter names look like hci0, hci1, ...")
        if name in self.fake.adapters:
            raise err_already_exists()
        return dbus.ObjectPath(self.fake.add_adapter(name).path)

    @dbus.service.method(CONTROL_IFACE, in_signature="s", out_signature="")
    def RemoveAdapter(self, name):
        adapter = self.fake.adapters.get(str(name))
        if adapter is None:
            raise err_does_not_exist()
        self.fake.remove_adapter(adapter)

    @dbus.service.method(CONTROL_IFACE, in_signature="sb", out_signature="")
    def SetPowered(self, name, on):
        adapter = self.fake.adapters.get(str(name))
        if adapter is None:
            raise err_does_not_exist()
        adapter.set_powered(bool(on))

    @dbus.service.method(CONTROL_IFACE, in_signature="", out_signature="")
    def DisconnectAll(self):
        for link in list(self.fake.links):
            self.fake.drop_link(link, "DisconnectAll()")

    @dbus.service.method(CONTROL_IFACE, in_signature="u", out_signature="")
    def SetMtu(self, mtu):
        if not MIN_MTU <= int(mtu) <= MAX_MTU:
            raise err_invalid_args("MTU must be within %d..%d" % (MIN_MTU, MAX_MTU))
        self.fake.mtu = int(mtu)  # used by the next connections (MTU is per link)

    @dbus.service.method(CONTROL_IFACE, in_signature="u", out_signature="")
    def SetSplitWrites(self, size):
        self.fake.split_writes = int(size)

    @dbus.service.method(CONTROL_IFACE, in_signature="", out_signature="s")
    def GetState(self):
        return json.dumps(self.fake.state(), indent=1, sort_keys=True)
