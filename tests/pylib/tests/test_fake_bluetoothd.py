# SPDX-License-Identifier: GPL-3.0-or-later
"""Self-tests of the fake org.bluez (bzs_testlib.fake_bluetoothd).

Run with Debian's interpreter (it has python3-dbus and python3-gi):
    cd tests/pylib/tests && PYTHONPATH=.. /usr/bin/python3 -m unittest -v test_fake_bluetoothd

Each test starts a fresh fake on a private bus (bzs_testlib.bus). The GATT
application ("peripheral") and the client ("central") live in this process on
two separate bus connections, so they have distinct unique names exactly as
two programs would; closing the peripheral's connection is its death. Every
wait spins the GLib main loop until an event arrives, bounded by a timeout:
there are no sleeps.
"""

import json
import os
import subprocess
import sys
import unittest

import dbus
import dbus.service

from bzs_testlib import bus as bus_harness
from bzs_testlib import protocol, wait
from bzs_testlib.asserts import DBusAssertions
from bzs_testlib.bluez import (
    ADAPTER, BLUEZ, CHRC, CONTROL, DESC, DEVICE, ERR, OM, PROPS, SERVICE, ay)
from bzs_testlib.central import RawCentral
from bzs_testlib.mirror import ObjectMirror
from bzs_testlib.phone import Phone

TIMEOUT = 5.0  # bound of one wait here (the library's default is 15 s)

SVC_UUID = "12345678-1234-5678-1234-56789abcdef0"
CMD_UUID = "12345678-1234-5678-1234-56789abcdef1"
AUTH_UUID = "12345678-1234-5678-1234-56789abcdef2"
ENC_UUID = "12345678-1234-5678-1234-56789abcdef3"
ERR_UUID = "12345678-1234-5678-1234-56789abcdef4"
USER_DESC_UUID = "00002901-0000-1000-8000-00805f9b34fb"

HCI0_ADDR = "02:BD:5C:00:00:10"
HCI1_ADDR = "02:BD:5C:00:00:11"
CENTRAL_DEV = "/org/bluez/hci1/dev_02_BD_5C_00_00_10"  # hci0 as seen from hci1
PERIPH_DEV = "/org/bluez/hci0/dev_02_BD_5C_00_00_11"  # hci1 as seen from hci0
# BlueZ numbering: GAP, GATT and DIS take handles 1..0x14, the app starts at 0x15.
SVC = CENTRAL_DEV + "/service0015"
CMD = SVC + "/char0016"
AUTH = SVC + "/char001a"
ENC = SVC + "/char001c"
ERRC = SVC + "/char001e"


def spin_until(predicate, timeout=TIMEOUT, what="an event"):
    wait.spin_until(predicate, timeout, what)


def call(conn, dest, path, iface, method, signature="", args=(), timeout=TIMEOUT):
    return wait.call(conn, dest, path, iface, method, signature, args, timeout)


# --------------------------------------------------------------------------
# A GATT peripheral application
# --------------------------------------------------------------------------


class AppObject(dbus.service.Object):
    """An object of the application, with org.freedesktop.DBus.Properties."""

    def __init__(self, peripheral, path, iface, props):
        super().__init__(peripheral.conn, path)
        self.peripheral = peripheral
        self.path = path
        self.iface = iface
        self.props = props

    @dbus.service.method(PROPS, in_signature="s", out_signature="a{sv}")
    def GetAll(self, iface):
        if iface != self.iface:
            raise dbus.DBusException("no such interface", name="org.freedesktop.DBus.Error"
                                                                ".InvalidArgs")
        return dbus.Dictionary(self.props, signature="sv")

    @dbus.service.method(PROPS, in_signature="ss", out_signature="v")
    def Get(self, iface, name):
        return self.props[name]

    @dbus.service.method(PROPS, in_signature="ssv", out_signature="")
    def Set(self, iface, name, value):
        self.props[name] = value
        self.peripheral.record("Set", self.path, name=str(name), value=value)

    @dbus.service.signal(PROPS, signature="sa{sv}as")
    def PropertiesChanged(self, iface, changed, invalidated):
        pass


class AppAttribute(AppObject):
    """Common ReadValue/WriteValue of an application characteristic or
    descriptor: a value honouring 'offset', and an optional error to return."""

    def __init__(self, peripheral, path, iface, props, value):
        super().__init__(peripheral, path, iface, props)
        self.value = value
        self.error = None  # (D-Bus error name, message) returned by calls

    def _read(self, options):
        self.peripheral.record("ReadValue", self.path, options=dict(options))
        if self.error:
            raise dbus.DBusException(self.error[1], name=self.error[0])
        return ay(self.value[int(options.get("offset", 0)):])

    def _write(self, value, options):
        self.peripheral.record("WriteValue", self.path, options=dict(options),
                               value=bytes(value))
        if self.error:
            raise dbus.DBusException(self.error[1], name=self.error[0])
        offset = int(options.get("offset", 0))
        if offset > len(self.value):
            raise dbus.DBusException("offset", name=ERR + "InvalidOffset")
        self.value = self.value[:offset] + bytes(value)


class AppChrc(AppAttribute):
    def __init__(self, peripheral, path, service, uuid, flags, value=b"", handle=False):
        props = {"UUID": dbus.String(uuid), "Service": dbus.ObjectPath(service),
                 "Flags": dbus.Array(flags, signature="s")}
        if handle:
            props["Handle"] = dbus.UInt16(0)
        super().__init__(peripheral, path, CHRC, props, value)

    @dbus.service.method(CHRC, in_signature="a{sv}", out_signature="ay")
    def ReadValue(self, options):
        return self._read(options)

    @dbus.service.method(CHRC, in_signature="aya{sv}", out_signature="", byte_arrays=True)
    def WriteValue(self, value, options):
        self._write(value, options)

    @dbus.service.method(CHRC, in_signature="", out_signature="")
    def StartNotify(self):
        self.peripheral.record("StartNotify", self.path)

    @dbus.service.method(CHRC, in_signature="", out_signature="")
    def StopNotify(self):
        self.peripheral.record("StopNotify", self.path)

    def notify(self, data):
        self.value = data
        self.PropertiesChanged(CHRC, {"Value": ay(data)}, dbus.Array([], signature="s"))


class AppDesc(AppAttribute):
    def __init__(self, peripheral, path, chrc, uuid, flags, value=b""):
        props = {"UUID": dbus.String(uuid), "Characteristic": dbus.ObjectPath(chrc),
                 "Flags": dbus.Array(flags, signature="s")}
        super().__init__(peripheral, path, DESC, props, value)

    @dbus.service.method(DESC, in_signature="a{sv}", out_signature="ay")
    def ReadValue(self, options):
        return self._read(options)

    @dbus.service.method(DESC, in_signature="aya{sv}", out_signature="", byte_arrays=True)
    def WriteValue(self, value, options):
        self._write(value, options)


class AppRoot(dbus.service.Object):
    def __init__(self, peripheral, path):
        super().__init__(peripheral.conn, path)
        self.peripheral = peripheral
        self.objects = None  # overrides what GetManagedObjects returns

    @dbus.service.method(OM, in_signature="", out_signature="a{oa{sa{sv}}}")
    def GetManagedObjects(self):
        if self.objects is not None:
            return self.objects
        return {dbus.ObjectPath(o.path): {o.iface: dbus.Dictionary(o.props, signature="sv")}
                for o in self.peripheral.gatt_objects}

    @dbus.service.signal(OM, signature="oas")
    def InterfacesRemoved(self, path, interfaces):
        pass


class AppAdvert(AppObject):
    @dbus.service.method("org.bluez.LEAdvertisement1", in_signature="", out_signature="")
    def Release(self):
        self.peripheral.record("Release", self.path)


class PasskeyBoard:
    """What a user would read on one display and type on the other device."""

    def __init__(self):
        self.shown = None
        self.readers = []

    def show(self, passkey):
        self.shown = passkey
        for reader in self.readers:
            reader(passkey)
        self.readers = []

    def read(self, reader):
        if self.shown is None:
            self.readers.append(reader)
        else:
            reader(self.shown)


class AppAgent(dbus.service.Object):
    """org.bluez.Agent1 that accepts, rejects (org.bluez.Error.Rejected) or
    holds its answer ("hold": a user who does not answer)."""

    def __init__(self, owner, path, accept=True, board=None):
        super().__init__(owner.conn, path)
        self.owner = owner
        self.path = path
        self.accept = accept
        self.board = board or PasskeyBoard()
        self.held = []

    def _answer(self, method, args, ok, err):
        self.owner.record(method, self.path, args=list(args))
        if self.accept == "hold":
            self.held.append((ok, err))
        elif self.accept:
            ok()
        else:
            err(dbus.DBusException("rejected by the test", name=ERR + "Rejected"))

    @dbus.service.method("org.bluez.Agent1", in_signature="ou", out_signature="",
                         async_callbacks=("ok", "err"))
    def RequestConfirmation(self, device, passkey, ok, err):
        self._answer("RequestConfirmation", (str(device), int(passkey)), ok, err)

    @dbus.service.method("org.bluez.Agent1", in_signature="o", out_signature="",
                         async_callbacks=("ok", "err"))
    def RequestAuthorization(self, device, ok, err):
        self._answer("RequestAuthorization", (str(device),), ok, err)

    @dbus.service.method("org.bluez.Agent1", in_signature="ouq", out_signature="")
    def DisplayPasskey(self, device, passkey, entered):
        self.owner.record("DisplayPasskey", self.path, args=[str(device), int(passkey)])
        self.board.show(int(passkey))

    @dbus.service.method("org.bluez.Agent1", in_signature="o", out_signature="u",
                         async_callbacks=("ok", "err"))
    def RequestPasskey(self, device, ok, err):
        self.owner.record("RequestPasskey", self.path, args=[str(device)])
        self.board.read(lambda passkey: ok(dbus.UInt32(passkey if self.accept else
                                                       (passkey + 1) % 1000000)))

    @dbus.service.method("org.bluez.Agent1", in_signature="", out_signature="")
    def Cancel(self):
        self.owner.record("Cancel", self.path)

    @dbus.service.method("org.bluez.Agent1", in_signature="", out_signature="")
    def Release(self):
        self.owner.record("Release", self.path)


class Client:
    """A bus connection of this process, recording the calls it receives."""

    def __init__(self, address):
        self.conn = dbus.bus.BusConnection(address)
        self.name = self.conn.get_unique_name()
        self.calls = []

    def record(self, method, path, **details):
        self.calls.append(dict(details, method=method, path=path))

    def calls_of(self, method, path=None):
        return [c for c in self.calls if c["method"] == method and
                (path is None or c["path"] == path)]

    def call(self, path, iface, method, signature="", args=(), dest=BLUEZ, timeout=TIMEOUT):
        return call(self.conn, dest, path, iface, method, signature, args, timeout)

    def close(self):
        self.conn.close()


class Peripheral(Client):
    """The GATT server side: an application with one service, an
    advertisement and (optionally) a default agent, all on adapter hci0."""

    def __init__(self, address):
        super().__init__(address)
        self.root = AppRoot(self, "/app")
        svc = "/app/service0"
        self.service = AppObject(self, svc, SERVICE, {"UUID": dbus.String(SVC_UUID),
                                                     "Primary": dbus.Boolean(True)})
        self.cmd = AppChrc(self, svc + "/cmd", svc, CMD_UUID, ["read", "write", "notify"],
                           b"hello", handle=True)
        self.user_desc = AppDesc(self, svc + "/cmd/desc0", svc + "/cmd", USER_DESC_UUID,
                                 ["read"], b"command")
        self.auth = AppChrc(self, svc + "/auth", svc, AUTH_UUID,
                            ["read", "encrypt-authenticated-write"], b"auth")
        self.enc = AppChrc(self, svc + "/enc", svc, ENC_UUID, ["read", "encrypt-write"], b"enc")
        self.err = AppChrc(self, svc + "/err", svc, ERR_UUID, ["read", "write"], b"err")
        self.gatt_objects = [self.service, self.cmd, self.user_desc, self.auth, self.enc,
                             self.err]
        self.advert = AppAdvert(self, "/app/adv", "org.bluez.LEAdvertisement1", {
            "Type": dbus.String("peripheral"),
            "ServiceUUIDs": dbus.Array([SVC_UUID], signature="s"),
            "LocalName": dbus.String("bluezscript-test"),
        })
        self.agent = None

    def register(self, adapter="/org/bluez/hci0", agent="DisplayYesNo", accept=True,
                 default=True, board=None):
        self.call(adapter, "org.bluez.GattManager1", "RegisterApplication", "oa{sv}",
                  (dbus.ObjectPath("/app"), {}))
        self.call(adapter, "org.bluez.LEAdvertisingManager1", "RegisterAdvertisement",
                  "oa{sv}", (dbus.ObjectPath("/app/adv"), {}))
        if agent:
            self.agent = AppAgent(self, "/app/agent", accept, board)
            self.call("/org/bluez", "org.bluez.AgentManager1", "RegisterAgent", "os",
                      (dbus.ObjectPath("/app/agent"), agent))
            if default:
                self.call("/org/bluez", "org.bluez.AgentManager1", "RequestDefaultAgent", "o",
                          (dbus.ObjectPath("/app/agent"),))


class Central(Client, ObjectMirror):
    """The GATT client side: mirrors org.bluez's objects from the signals."""

    def __init__(self, address):
        Client.__init__(self, address)
        self.changes = []  # (path, iface, name, value) of every PropertiesChanged
        self.removed = []
        ObjectMirror.__init__(self, self.conn)
        self.load(self.call("/", OM, "GetManagedObjects"))

    def on_removed(self, path):
        self.removed.append(path)

    def on_changed(self, path, iface, name, value):
        self.changes.append((path, iface, name, value))

    def wait_prop(self, path, iface, name, value, what=None):
        spin_until(lambda: self.prop(path, iface, name) == value,
                   what=what or "%s %s = %r" % (path, name, value))

    def agent(self, capability="DisplayYesNo", accept=True, board=None):
        agent = AppAgent(self, "/central/agent", accept, board)
        self.call("/org/bluez", "org.bluez.AgentManager1", "RegisterAgent", "os",
                  (dbus.ObjectPath("/central/agent"), capability))
        return agent

    def discover_and_connect(self, adapter="/org/bluez/hci1"):
        self.call(adapter, ADAPTER, "StartDiscovery")
        spin_until(lambda: DEVICE in self.objects.get(CENTRAL_DEV, {}),
                   what="the peripheral to be discovered")
        self.call(adapter, ADAPTER, "StopDiscovery")
        self.call(CENTRAL_DEV, DEVICE, "Connect")

    def read(self, path, options=None, iface=CHRC):
        return bytes(self.call(path, iface, "ReadValue", "a{sv}", (options or {},)))

    def write(self, path, data, options=None, iface=CHRC):
        self.call(path, iface, "WriteValue", "aya{sv}", (ay(data), options or {}))

    def state(self):
        return json.loads(self.call("/org/bluez/test", CONTROL, "GetState"))


# --------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------


class FakeBluezTest(DBusAssertions, unittest.TestCase):
    """Base: a private bus for the class, a fresh fake for each test."""

    fake_args = ["--temporary-timeout", "0"]

    @classmethod
    def setUpClass(cls):
        cls.bus = bus_harness.start_bus()

    @classmethod
    def tearDownClass(cls):
        cls.bus.stop()

    def setUp(self):
        self.log_path = os.path.join(self.bus.tmpdir, self.id().rsplit(".", 1)[-1] + ".log")
        self.fake = bus_harness.start_fake(self.bus.address, self.fake_args, self.log_path)
        self.clients = []

    def tearDown(self):
        for client in self.clients:
            client.close()
        status = bus_harness.stop_process(self.fake)
        with open(self.log_path, encoding="utf-8", errors="replace") as log:
            trace = log.read()
        # An exception in one of the fake's signal handlers or callbacks only
        # shows in its trace: it fails the test too.
        crashed = "Traceback" in trace
        failed = any(test is self for test, _ in
                     self._outcome.result.failures + self._outcome.result.errors)
        if failed or crashed:
            sys.stderr.write("\n--- fake-bluetoothd trace of %s (last 80 lines) ---\n"
                             % self.id())
            sys.stderr.write("".join(trace.splitlines(True)[-80:]))
        self.assertFalse(crashed, "fake-bluetoothd raised an exception (trace above)")
        self.assertEqual(status, 0, "fake-bluetoothd must exit 0 on SIGTERM")

    def peripheral(self):
        client = Peripheral(self.bus.address)
        self.clients.append(client)
        return client

    def central(self):
        client = Central(self.bus.address)
        self.clients.append(client)
        return client

    def connected_pair(self, central_agent=None, **register):
        app = self.peripheral()
        app.register(**register)
        central = self.central()
        if central_agent:
            central.agent(central_agent)
        central.discover_and_connect()
        return app, central


class AdapterTest(FakeBluezTest):
    def test_object_manager_lists_adapters_and_agent_manager(self):
        central = self.central()
        self.assertIn("org.bluez.AgentManager1", central.objects["/org/bluez"])
        for name, address in (("hci0", HCI0_ADDR), ("hci1", HCI1_ADDR)):
            ifaces = central.objects["/org/bluez/" + name]
            self.assertEqual(ifaces[ADAPTER]["Address"], address)
            self.assertTrue(ifaces[ADAPTER]["Powered"])
            self.assertFalse(ifaces[ADAPTER]["Discovering"])
            self.assertIn("org.bluez.GattManager1", ifaces)
            self.assertEqual(ifaces["org.bluez.LEAdvertisingManager1"]["SupportedInstances"], 5)
        self.assertNotIn("/org/bluez/test", central.objects)

    def test_powered_is_writable_and_signalled(self):
        central = self.central()
        central.call("/org/bluez/hci1", PROPS, "Set", "ssv", (ADAPTER, "Powered",
                                                              dbus.Boolean(False)))
        central.wait_prop("/org/bluez/hci1", ADAPTER, "Powered", False)
        self.assertDBusError(ERR + "NotReady", "Resource Not Ready",
                             central.call, "/org/bluez/hci1", ADAPTER, "StartDiscovery")
        central.call("/org/bluez/test", CONTROL, "SetPowered", "sb", ("hci1", True))
        central.wait_prop("/org/bluez/hci1", ADAPTER, "Powered", True)
        self.assertDBusError("org.freedesktop.DBus.Error.PropertyReadOnly", None,
                             central.call, "/org/bluez/hci1", PROPS, "Set", "ssv",
                             (ADAPTER, "Address", "00:00:00:00:00:00"))
        self.assertDBusError("org.freedesktop.DBus.Error.InvalidArgs", None,
                             central.call, "/org/bluez/hci1", PROPS, "Set", "ssv",
                             (ADAPTER, "Powered", "yes"))

    def test_discovery_sessions_and_bad_signature(self):
        central = self.central()
        central.call("/org/bluez/hci1", ADAPTER, "StartDiscovery")
        central.wait_prop("/org/bluez/hci1", ADAPTER, "Discovering", True)
        self.assertDBusError(ERR + "InProgress", "Operation already in progress",
                             central.call, "/org/bluez/hci1", ADAPTER, "StartDiscovery")
        central.call("/org/bluez/hci1", ADAPTER, "StopDiscovery")
        central.wait_prop("/org/bluez/hci1", ADAPTER, "Discovering", False)
        self.assertDBusError(ERR + "Failed", "No discovery started",
                             central.call, "/org/bluez/hci1", ADAPTER, "StopDiscovery")
        self.assertDBusError(ERR + "InvalidArguments", None, central.call, "/org/bluez/hci1",
                             ADAPTER, "SetDiscoveryFilter", "a{sv}", ({"Colour": "red"},))
        self.assertDBusError(ERR + "InvalidArguments", None, central.call, "/org/bluez/hci1",
                             ADAPTER, "RemoveDevice", "s", ("/not/an/object/path",))


class RegistrationTest(FakeBluezTest):
    def test_registration_is_recorded_with_bluez_handles(self):
        app = self.peripheral()
        app.register()
        state = self.central().state()
        [registered] = state["applications"]
        self.assertEqual((registered["owner"], registered["path"]), (app.name, "/app"))
        [service] = registered["services"]
        self.assertEqual((service["uuid"], service["handle"]), (SVC_UUID, 0x15))
        self.assertEqual([c["value_handle"] for c in service["characteristics"]],
                         [0x17, 0x1B, 0x1D, 0x1F])
        [advert] = state["advertisements"]
        self.assertEqual((advert["local_name"], advert["service_uuids"], advert["type"]),
                         ("bluezscript-test", [SVC_UUID], "peripheral"))
        self.assertEqual(state["agents"], [{"owner": app.name, "path": "/app/agent",
                                            "capability": "DisplayYesNo", "default": True}])
        # BlueZ writes the value handle back into a characteristic's Handle.
        spin_until(lambda: app.calls_of("Set", app.cmd.path), what="Handle to be set")
        self.assertEqual(app.cmd.props["Handle"], 0x17)
        adapter = self.central().objects["/org/bluez/hci0"][ADAPTER]
        self.assertIn(SVC_UUID, adapter["UUIDs"])

    def test_registration_errors_are_bluez_errors(self):
        app = self.peripheral()
        hci0 = "/org/bluez/hci0"
        register = lambda: app.call(hci0, "org.bluez.GattManager1", "RegisterApplication",
                                    "oa{sv}", (dbus.ObjectPath("/app"), {}))
        app.root.objects = {}
        self.assertDBusError(ERR + "Failed", "No object received", register)
        bad_flags = {"/app/s": {SERVICE: {"UUID": SVC_UUID, "Primary": True}},
                     "/app/s/c": {CHRC: {"UUID": CMD_UUID, "Service": dbus.ObjectPath("/app/s"),
                                         "Flags": dbus.Array(["read", "fly"], signature="s")}}}
        app.root.objects = bad_flags
        self.assertDBusError(ERR + "Failed", "No valid service object found", register)
        orphan = {"/app/s": {SERVICE: {"UUID": SVC_UUID, "Primary": True}},
                  "/app/s/c": {CHRC: {"UUID": CMD_UUID, "Service": dbus.ObjectPath("/other"),
                                      "Flags": dbus.Array(["read"], signature="s")}}}
        app.root.objects = orphan
        self.assertDBusError(ERR + "Failed", "No valid service object found", register)
        app.root.objects = {"/app/s": {SERVICE: {"UUID": "not-a-uuid", "Primary": True}}}
        self.assertDBusError(ERR + "Failed", "Failed to create entry in database", register)
        app.root.objects = {"/app/s": {SERVICE: {"UUID": SVC_UUID}}}
        self.assertDBusError(ERR + "Failed", "Failed to create entry in database", register)
        app.root.objects = {"/app/s": {SERVICE: {"UUID": "1801", "Primary": True}}}
        self.assertDBusError(ERR + "Failed", "Failed to create entry in database", register)
        app.root.objects = None
        register()
        self.assertDBusError(ERR + "AlreadyExists", "Already Exists", register)
        self.assertDBusError(ERR + "DoesNotExist", None, app.call, hci0,
                             "org.bluez.GattManager1", "UnregisterApplication", "o",
                             (dbus.ObjectPath("/elsewhere"),))
        self.assertDBusError(ERR + "InvalidArguments", "Invalid arguments in method call",
                             app.call, hci0, "org.bluez.GattManager1", "RegisterApplication",
                             "sa{sv}", ("/app", {}))

    def test_advertisement_and_agent_errors(self):
        app = self.peripheral()
        hci0 = "/org/bluez/hci0"
        register = lambda: app.call(hci0, "org.bluez.LEAdvertisingManager1",
                                    "RegisterAdvertisement", "oa{sv}",
                                    (dbus.ObjectPath("/app/adv"), {}))
        app.advert.props["Type"] = dbus.String("loud")
        self.assertDBusError(ERR + "Failed", "Failed to parse advertisement.", register)
        app.advert.props["Type"] = dbus.String("peripheral")
        # Two 128-bit UUIDs and 10 bytes of manufacturer data exceed 31 bytes.
        app.advert.props["ServiceUUIDs"] = dbus.Array([SVC_UUID, CMD_UUID], signature="s")
        self.assertDBusError(ERR + "Failed", "Failed to parse advertisement.", register)
        app.advert.props["ServiceUUIDs"] = dbus.Array([SVC_UUID], signature="s")
        register()
        self.assertDBusError(ERR + "AlreadyExists", "Already Exists", register)
        manager = self.central().objects[hci0]["org.bluez.LEAdvertisingManager1"]
        self.assertEqual(manager["ActiveInstances"], 1)
        agents = "org.bluez.AgentManager1"
        self.assertDBusError(ERR + "InvalidArguments", None, app.call, "/org/bluez", agents,
                             "RegisterAgent", "os", (dbus.ObjectPath("/a"), "Telepathic"))
        app.call("/org/bluez", agents, "RegisterAgent", "os", (dbus.ObjectPath("/a"), ""))
        self.assertDBusError(ERR + "AlreadyExists", None, app.call, "/org/bluez", agents,
                             "RegisterAgent", "os", (dbus.ObjectPath("/a"), "DisplayYesNo"))
        self.assertDBusError(ERR + "DoesNotExist", None, app.call, "/org/bluez", agents,
                             "RequestDefaultAgent", "o", (dbus.ObjectPath("/b"),))
        self.assertEqual(self.central().state()["agents"][0]["capability"], "KeyboardDisplay")


class CentralTest(FakeBluezTest):
    def test_discovery_connect_and_service_mirror(self):
        app = self.peripheral()
        app.register()
        central = self.central()
        self.assertNotIn(CENTRAL_DEV, central.objects, "not seen before discovery")
        central.call("/org/bluez/hci1", ADAPTER, "StartDiscovery")
        spin_until(lambda: DEVICE in central.objects.get(CENTRAL_DEV, {}), what="discovery")
        device = central.objects[CENTRAL_DEV][DEVICE]
        self.assertEqual(device["Address"], HCI0_ADDR)
        self.assertEqual(device["Name"], "bluezscript-test")
        self.assertEqual(device["Alias"], "bluezscript-test")
        self.assertEqual(list(device["UUIDs"]), [SVC_UUID])
        self.assertEqual(device["Adapter"], "/org/bluez/hci1")
        self.assertFalse(device["Connected"])
        self.assertNotIn("/org/bluez/hci0/dev_02_BD_5C_00_00_10", central.objects,
                         "an adapter does not see itself")
        central.call(CENTRAL_DEV, DEVICE, "Connect")
        self.assertTrue(central.prop(CENTRAL_DEV, DEVICE, "Connected"))
        self.assertTrue(central.prop(CENTRAL_DEV, DEVICE, "ServicesResolved"))
        gatt = sorted(p for p in central.objects if p.startswith(CENTRAL_DEV + "/"))
        self.assertEqual(gatt, [
            CENTRAL_DEV + "/service0008",  # Generic Attribute, exported like BlueZ does
            CENTRAL_DEV + "/service0008/char0009",
            CENTRAL_DEV + "/service0008/char0009/desc000b",
            CENTRAL_DEV + "/service0008/char000c",
            CENTRAL_DEV + "/service0008/char000e",
            SVC, CMD, CMD + "/desc0018", CMD + "/desc0019", AUTH, ENC, ERRC])
        self.assertEqual(central.prop(SVC, SERVICE, "UUID"), SVC_UUID)
        self.assertEqual(central.prop(CMD, CHRC, "UUID"), CMD_UUID)
        self.assertEqual(list(central.prop(CMD, CHRC, "Flags")), ["read", "write", "notify"])
        self.assertEqual(list(central.prop(AUTH, CHRC, "Flags")), ["read", "write"],
                         "security flags are permissions, not visible to a central")
        self.assertEqual(central.prop(CMD, CHRC, "MTU"), 517)
        self.assertEqual(central.prop(CMD + "/desc0018", DESC, "UUID"),
                         "00002902-0000-1000-8000-00805f9b34fb")
        self.assertEqual(central.prop(CMD + "/desc0019", DESC, "UUID"), USER_DESC_UUID)
        peer = central.objects[PERIPH_DEV][DEVICE]
        self.assertEqual((peer["Address"], peer["Connected"], peer["Paired"]),
                         (HCI1_ADDR, True, False))

    def test_read_and_write_reach_the_application(self):
        app, central = self.connected_pair()
        self.assertEqual(central.read(CMD), b"hello")
        self.assertEqual(central.prop(CMD, CHRC, "Value"), b"hello")
        [read] = app.calls_of("ReadValue", app.cmd.path)
        self.assertEqual(read["options"], {"device": PERIPH_DEV, "link": "LE", "mtu": 517})
        central.write(CMD, b"run hello")
        [write] = app.calls_of("WriteValue", app.cmd.path)
        self.assertEqual(write["value"], b"run hello")
        self.assertEqual(write["options"], {"device": PERIPH_DEV, "link": "LE", "mtu": 517},
                         "BlueZ 5.66 sends no 'type' and no zero 'offset'")
        self.assertEqual(central.read(CMD + "/desc0019", iface=DESC), b"command")
        self.assertEqual(central.read(CMD + "/desc0018", iface=DESC), b"\x00\x00")
        self.assertDBusError(ERR + "NotPermitted", "Write not permitted",
                             central.write, CMD + "/desc0018", b"\x01\x00", iface=DESC)
        self.assertDBusError(ERR + "InvalidArguments", "Invalid Length",
                             central.write, CMD, bytes(513))
        # An explicit Write Command is sent whatever the flags (gatt-client.c)
        # and answered at once; an unknown type is not supported.
        central.write(CMD, b"cmd", {"type": "command"})
        spin_until(lambda: len(app.calls_of("WriteValue", app.cmd.path)) == 2,
                   what="the Write Command to reach the application")
        self.assertDBusError(ERR + "NotSupported", None,
                             central.write, CMD, b"x", {"type": "shout"})
        self.assertDBusError(ERR + "Failed", "Failed to initiate write",
                             central.write, CMD, bytes(515), {"type": "command"})
        counters = central.state()["counters"]
        self.assertEqual((counters["ReadValue"], counters["WriteValue"]), (2, 2))

    def test_long_read_and_write_with_small_mtu(self):
        app = self.peripheral()
        app.register()
        central = self.central()
        central.call("/org/bluez/test", CONTROL, "SetMtu", "u", (23,))
        central.discover_and_connect()
        app.cmd.value = bytes(range(50))
        self.assertEqual(central.read(CMD), bytes(range(50)))
        offsets = [c["options"].get("offset", 0) for c in app.calls_of("ReadValue")]
        self.assertEqual(offsets, [0, 22, 44], "Read, then Read Blob while responses are full")
        data = bytes(range(100))
        central.write(CMD, data)
        [write] = app.calls_of("WriteValue", app.cmd.path)
        self.assertEqual(write["value"], data, "prepared writes arrive as one WriteValue")
        self.assertNotIn("offset", write["options"])
        self.assertEqual(write["options"]["mtu"], 23)
        central.write(CMD, b"XY", {"offset": dbus.UInt16(4)})
        last = app.calls_of("WriteValue", app.cmd.path)[-1]
        self.assertEqual((last["value"], last["options"]["offset"]), (b"XY", 4))
        self.assertEqual(app.cmd.value[:6], bytes([0, 1, 2, 3]) + b"XY")
        self.assertDBusError(ERR + "InvalidArguments", None,
                             central.write, CMD, b"x", {"offset": dbus.Int32(1)})

    def test_split_writes_deliver_offsets(self):
        app, central = self.connected_pair()
        central.call("/org/bluez/test", CONTROL, "SetSplitWrites", "u", (8,))
        data = b"0123456789abcdefXYZ"
        central.write(CMD, data)
        writes = app.calls_of("WriteValue", app.cmd.path)
        self.assertEqual([(w["options"].get("offset", 0), w["value"]) for w in writes],
                         [(0, data[:8]), (8, data[8:16]), (16, data[16:])])
        self.assertEqual(app.cmd.value, data)

    def test_application_errors_are_mapped_like_att(self):
        app, central = self.connected_pair()
        for error, message, expected in (
                (ERR + "NotAuthorized", "", (ERR + "NotAuthorized", "Operation Not Authorized")),
                (ERR + "Failed", "0x81", (ERR + "Failed", "Operation failed with ATT error: 0x81")),
                (ERR + "NotPermitted", "", (ERR + "NotPermitted", "Write not permitted")),
                (ERR + "InvalidValueLength", "", (ERR + "InvalidArguments", "Invalid Length")),
                (ERR + "NotSupported", "", (ERR + "NotSupported", "Operation is not supported")),
                ("com.example.Error.Oops", "", (ERR + "Failed",
                                                "Operation failed with ATT error: 0x0e"))):
            app.err.error = (error, message)
            self.assertDBusError(expected[0], expected[1], central.write, ERRC, b"x")
        app.err.error = (ERR + "NotPermitted", "")
        self.assertDBusError(ERR + "NotPermitted", "Read not permitted", central.read, ERRC)

    def test_notifications_are_forwarded_and_truncated(self):
        app = self.peripheral()
        app.register()
        central = self.central()
        central.call("/org/bluez/test", CONTROL, "SetMtu", "u", (23,))
        central.discover_and_connect()
        central.call(CMD, CHRC, "StartNotify")
        spin_until(lambda: app.calls_of("StartNotify"), what="StartNotify on the application")
        self.assertTrue(central.prop(CMD, CHRC, "Notifying"))
        app.cmd.notify(bytes(range(30)))
        central.wait_prop(CMD, CHRC, "Value", bytes(range(20)), "a notification cut to MTU-3")
        app.cmd.notify(b"short")
        central.wait_prop(CMD, CHRC, "Value", b"short")
        central.call(CMD, CHRC, "StartNotify")  # a second session of the same client: no-op
        central.call(CMD, CHRC, "StopNotify")
        spin_until(lambda: app.calls_of("StopNotify"), what="StopNotify on the application")
        self.assertFalse(central.prop(CMD, CHRC, "Notifying"))
        self.assertDBusError(ERR + "Failed", "No notify session started",
                             central.call, CMD, CHRC, "StopNotify")
        self.assertDBusError(ERR + "NotSupported", None, central.call, AUTH, CHRC, "StartNotify")
        self.assertEqual(len(app.calls_of("StartNotify")), 1)
        self.assertEqual(central.state()["counters"]["Notifications"], 2)

    def test_invalidated_value_notifies_nothing(self):
        # An application that invalidates Value instead of sending it makes
        # BlueZ notify zero bytes; the fake does the same.
        app, central = self.connected_pair()
        self.assertEqual(central.prop(CMD, CHRC, "Value"), b"", "Value exists, empty")
        central.call(CMD, CHRC, "StartNotify")
        app.cmd.notify(b"data")
        central.wait_prop(CMD, CHRC, "Value", b"data")
        app.cmd.PropertiesChanged(CHRC, {}, dbus.Array(["Value"], signature="s"))
        central.wait_prop(CMD, CHRC, "Value", b"", "an empty notification")


class PairingTest(FakeBluezTest):
    def test_numeric_comparison_accepted_unlocks_authenticated_write(self):
        app, central = self.connected_pair(central_agent="DisplayYesNo")
        self.assertDBusError(ERR + "NotPermitted", "Not paired", central.write, AUTH, b"a")
        self.assertDBusError(ERR + "NotPermitted", "Not paired", central.write, ENC, b"e")
        self.assertEqual(app.calls_of("WriteValue"), [], "refused by ATT, not by the app")
        central.call(CENTRAL_DEV, DEVICE, "Pair")
        [periph_ask] = app.calls_of("RequestConfirmation")
        [central_ask] = central.calls_of("RequestConfirmation")
        self.assertEqual(periph_ask["args"][0], PERIPH_DEV)
        self.assertEqual(central_ask["args"][0], CENTRAL_DEV)
        self.assertEqual(periph_ask["args"][1], central_ask["args"][1], "the same passkey")
        self.assertTrue(0 <= periph_ask["args"][1] <= 999999)
        central.wait_prop(CENTRAL_DEV, DEVICE, "Paired", True)
        self.assertTrue(central.prop(CENTRAL_DEV, DEVICE, "Bonded"))
        central.wait_prop(PERIPH_DEV, DEVICE, "Paired", True)
        central.write(AUTH, b"a")
        central.write(ENC, b"e")
        self.assertEqual([c["value"] for c in app.calls_of("WriteValue")], [b"a", b"e"])
        self.assertDBusError(ERR + "AlreadyExists", None, central.call, CENTRAL_DEV, DEVICE,
                             "Pair")

    def test_peripheral_removes_the_bond_of_a_connected_central(self):
        # What bluezscriptd does for a revoked phone: Adapter1.RemoveDevice on the
        # peripheral's adapter with the central's object.
        app, central = self.connected_pair(central_agent="DisplayYesNo")
        central.call(CENTRAL_DEV, DEVICE, "Pair")
        central.wait_prop(PERIPH_DEV, DEVICE, "Bonded", True)
        central.write(AUTH, b"a")
        central.call("/org/bluez/hci0", ADAPTER, "RemoveDevice", "o",
                     (dbus.ObjectPath(PERIPH_DEV),))
        spin_until(lambda: PERIPH_DEV not in central.objects, what="the central's object to go")
        central.wait_prop(CENTRAL_DEV, DEVICE, "Connected", False)
        self.assertNotIn(PERIPH_DEV, [d["path"] for d in central.state()["devices"]])
        self.assertDBusError(ERR + "DoesNotExist", None, central.call, "/org/bluez/hci0",
                             ADAPTER, "RemoveDevice", "o", (dbus.ObjectPath(PERIPH_DEV),))
        # The central kept its half of the bond, but a link needs both halves: it
        # connects again unencrypted, as with a real Pi that forgot the keys.
        self.assertTrue(central.prop(CENTRAL_DEV, DEVICE, "Paired"))
        central.call(CENTRAL_DEV, DEVICE, "Connect")
        spin_until(lambda: PERIPH_DEV in central.objects, what="the central to reappear")
        self.assertFalse(central.prop(PERIPH_DEV, DEVICE, "Paired"))
        self.assertDBusError(ERR + "NotPermitted", "Not paired", central.write, AUTH, b"b")
        self.assertEqual([c["value"] for c in app.calls_of("WriteValue")], [b"a"])

    def test_rejected_by_the_peripheral_agent(self):
        app, central = self.connected_pair(central_agent="DisplayYesNo", accept=False)
        self.assertDBusError(ERR + "AuthenticationRejected", "Authentication Rejected",
                             central.call, CENTRAL_DEV, DEVICE, "Pair")
        self.assertEqual(len(app.calls_of("RequestConfirmation")), 1)
        self.assertFalse(central.prop(CENTRAL_DEV, DEVICE, "Paired"))
        self.assertDBusError(ERR + "NotPermitted", "Not paired", central.write, AUTH, b"a")

    def test_no_default_agent_means_failure(self):
        app, central = self.connected_pair(central_agent="DisplayYesNo", default=False)
        self.assertDBusError(ERR + "AuthenticationFailed", "Authentication Failed",
                             central.call, CENTRAL_DEV, DEVICE, "Pair")
        self.assertEqual(app.calls_of("RequestConfirmation"), [])
        self.assertDBusError(ERR + "DoesNotExist", None, central.call, CENTRAL_DEV, DEVICE,
                             "CancelPairing")

    def test_just_works_is_not_authenticated(self):
        # A central without an agent pairs as NoInputNoOutput: Just Works.
        app, central = self.connected_pair()
        central.call(CENTRAL_DEV, DEVICE, "Pair")
        self.assertEqual([c["args"] for c in app.calls_of("RequestAuthorization")],
                         [[PERIPH_DEV]])
        self.assertEqual(app.calls_of("RequestConfirmation"), [])
        central.write(ENC, b"e")
        self.assertDBusError(ERR + "NotPermitted", "Not paired", central.write, AUTH, b"a")
        self.assertEqual([c["value"] for c in app.calls_of("WriteValue")], [b"e"])


    def test_central_without_agent_uses_its_default_agent(self):
        # A caller with no agent of its own (busctl, say) pairs with the
        # default agent of "its machine": here one that is not the
        # peripheral's, e.g. a desktop's agent.
        app, central = self.connected_pair()
        desktop = Client(self.bus.address)
        self.clients.append(desktop)
        AppAgent(desktop, "/desktop/agent")
        for method, args in (("RegisterAgent", (dbus.ObjectPath("/desktop/agent"),
                                                "KeyboardDisplay")),
                             ("RequestDefaultAgent", (dbus.ObjectPath("/desktop/agent"),))):
            desktop.call("/org/bluez", "org.bluez.AgentManager1", method,
                         "os" if len(args) == 2 else "o", args)
        central.call(CENTRAL_DEV, DEVICE, "Pair")
        self.assertEqual([c["args"][0] for c in desktop.calls_of("RequestConfirmation")],
                         [CENTRAL_DEV])
        self.assertEqual([c["args"][0] for c in app.calls_of("RequestConfirmation")],
                         [PERIPH_DEV], "the peripheral keeps its own default agent")
        central.write(AUTH, b"a")

    def test_passkey_entry_typed_on_the_central(self):
        board = PasskeyBoard()
        app, central = self.connected_pair(agent="DisplayOnly", board=board)
        central.agent("KeyboardOnly", board=board)
        central.call(CENTRAL_DEV, DEVICE, "Pair")
        [shown] = app.calls_of("DisplayPasskey")
        self.assertEqual(shown["args"], [PERIPH_DEV, board.shown])
        self.assertEqual([c["args"] for c in central.calls_of("RequestPasskey")], [[CENTRAL_DEV]])
        central.wait_prop(CENTRAL_DEV, DEVICE, "Paired", True)
        central.write(AUTH, b"a")  # passkey entry is authenticated

    def test_wrong_passkey_fails(self):
        board = PasskeyBoard()
        app, central = self.connected_pair(agent="DisplayOnly", board=board)
        central.agent("KeyboardOnly", accept=False, board=board)  # types a wrong number
        self.assertDBusError(ERR + "AuthenticationFailed", "Authentication Failed",
                             central.call, CENTRAL_DEV, DEVICE, "Pair")
        self.assertFalse(central.prop(CENTRAL_DEV, DEVICE, "Paired"))

    def test_cancel_pairing_while_the_agent_waits(self):
        app, central = self.connected_pair(central_agent="DisplayYesNo", accept="hold")
        result = {}
        central.conn.call_async(BLUEZ, CENTRAL_DEV, DEVICE, "Pair", "", (),
                                lambda: result.setdefault("ok", True),
                                lambda e: result.setdefault("error", e), timeout=TIMEOUT)
        spin_until(lambda: app.agent.held, what="the agent to be asked")
        self.assertDBusError(ERR + "InProgress", None, central.call, CENTRAL_DEV, DEVICE, "Pair")
        central.call(CENTRAL_DEV, DEVICE, "CancelPairing")
        spin_until(lambda: result, what="Pair to end")
        self.assertEqual(result["error"].get_dbus_name(), ERR + "AuthenticationCanceled")
        spin_until(lambda: app.calls_of("Cancel"), what="Agent1.Cancel")
        self.assertFalse(central.prop(CENTRAL_DEV, DEVICE, "Paired"))


class LifecycleTest(FakeBluezTest):
    def test_application_death_drops_its_registrations(self):
        app, central = self.connected_pair()
        central.call(CMD, CHRC, "StartNotify")
        app.close()
        spin_until(lambda: SVC not in central.objects, what="the app's service to go away")
        self.assertIn(CENTRAL_DEV + "/service0008", central.objects, "BlueZ's own service stays")
        self.assertTrue(central.prop(CENTRAL_DEV, DEVICE, "Connected"), "the link stays up")
        state = central.state()
        self.assertEqual((state["applications"], state["advertisements"], state["agents"]),
                         ([], [], []))

    def test_service_removed_by_the_application(self):
        # BlueZ drops a service whose object the application's ObjectManager
        # reports removed; connected centrals see it go (Service Changed).
        app, central = self.connected_pair()
        app.root.InterfacesRemoved(dbus.ObjectPath(app.service.path),
                                   dbus.Array([SERVICE], signature="s"))
        spin_until(lambda: SVC not in central.objects, what="the service to go")
        self.assertNotIn(CMD, central.objects)
        [registered] = central.state()["applications"]
        self.assertEqual(registered["services"], [])

    def test_unregistered_advertisement_disappears_from_scanners(self):
        app = self.peripheral()
        app.register()
        central = self.central()
        central.call("/org/bluez/hci1", ADAPTER, "StartDiscovery")
        spin_until(lambda: CENTRAL_DEV in central.objects, what="discovery")
        app.call("/org/bluez/hci0", "org.bluez.LEAdvertisingManager1",
                 "UnregisterAdvertisement", "o", (dbus.ObjectPath("/app/adv"),))
        spin_until(lambda: CENTRAL_DEV not in central.objects, what="the device to vanish")
        self.assertEqual(app.calls_of("Release"), [], "no Release on Unregister")

    def test_disconnect_tells_both_sides(self):
        app, central = self.connected_pair()
        central.call(CMD, CHRC, "StartNotify")
        central.call(CENTRAL_DEV, DEVICE, "Disconnect")
        central.wait_prop(CENTRAL_DEV, DEVICE, "Connected", False)
        self.assertFalse(central.prop(CENTRAL_DEV, DEVICE, "ServicesResolved"))
        # The unpaired central is a temporary device on the peripheral:
        # Connected goes false, then (TemporaryTimeout 0 here) it is removed.
        self.assertIn((PERIPH_DEV, DEVICE, "Connected", False), central.changes)
        spin_until(lambda: PERIPH_DEV not in central.objects, what="the central's removal")
        spin_until(lambda: app.calls_of("StopNotify"), what="StopNotify after disconnection")
        self.assertIn(CMD, central.objects, "Cache=always keeps the remote objects")
        self.assertDBusError(ERR + "Failed", "Not connected", central.read, CMD)
        central.call(CENTRAL_DEV, DEVICE, "Connect")
        self.assertEqual(central.read(CMD), b"hello")
        spin_until(lambda: len(app.calls_of("StartNotify")) == 2,
                   what="the notify session to be re-established")

    def test_remove_and_add_adapter(self):
        app, central = self.connected_pair()
        central.call("/org/bluez/test", CONTROL, "RemoveAdapter", "s", ("hci0",))
        spin_until(lambda: "/org/bluez/hci0" not in central.objects, what="hci0 to go")
        self.assertNotIn(PERIPH_DEV, central.objects)
        spin_until(lambda: CENTRAL_DEV not in central.objects, what="its device on hci1 to go")
        self.assertEqual(central.state()["applications"], [])
        self.assertDBusError(ERR + "AlreadyExists", None, central.call, "/org/bluez/test",
                             CONTROL, "AddAdapter", "s", ("hci1",))
        central.call("/org/bluez/test", CONTROL, "AddAdapter", "s", ("hci0",))
        spin_until(lambda: "/org/bluez/hci0" in central.objects, what="hci0 to come back")
        app.register(agent=None)
        self.assertEqual(len(central.state()["applications"]), 1)


    def test_paired_device_reconnects_after_the_adapter_returns(self):
        app, central = self.connected_pair(central_agent="DisplayYesNo")
        central.call(CENTRAL_DEV, DEVICE, "Pair")
        central.call("/org/bluez/test", CONTROL, "RemoveAdapter", "s", ("hci0",))
        central.wait_prop(CENTRAL_DEV, DEVICE, "Connected", False)
        self.assertTrue(central.prop(CENTRAL_DEV, DEVICE, "Paired"), "the bond stays")
        self.assertDBusError(ERR + "Failed", "le-connection-abort-by-local",
                             central.call, CENTRAL_DEV, DEVICE, "Connect")
        central.call("/org/bluez/test", CONTROL, "AddAdapter", "s", ("hci0",))
        app.register(agent=None)
        central.call(CENTRAL_DEV, DEVICE, "Connect")
        central.write(AUTH, b"a")  # the bond still authenticates the link
        self.assertEqual([c["value"] for c in app.calls_of("WriteValue")], [b"a"])


class CacheOffTest(FakeBluezTest):
    fake_args = ["--temporary-timeout", "0", "--gatt-cache", "no"]

    def test_disconnect_removes_remote_objects_without_cache(self):
        app, central = self.connected_pair()
        central.call(CENTRAL_DEV, DEVICE, "Disconnect")
        spin_until(lambda: CMD not in central.objects, what="the remote objects to go")
        self.assertIn(CENTRAL_DEV, central.objects)


class ProcessTest(FakeBluezTest):
    def test_restart_lets_applications_register_again(self):
        app = self.peripheral()
        app.register()
        appeared = []
        app.conn.add_signal_receiver(
            lambda name, old, new: appeared.append(new) if name == BLUEZ and new else None,
            "NameOwnerChanged", "org.freedesktop.DBus", "org.freedesktop.DBus",
            "/org/freedesktop/DBus")
        self.assertEqual(bus_harness.stop_process(self.fake), 0)
        self.fake = bus_harness.start_fake(self.bus.address, self.fake_args, self.log_path)
        spin_until(lambda: appeared, what="org.bluez to reappear")
        central = self.central()
        self.assertEqual(central.state()["applications"], [], "a new fake starts empty")
        app.register(agent=None)  # what a daemon does when org.bluez comes back
        self.assertEqual(len(central.state()["applications"]), 1)

    def test_refuses_the_system_bus_and_a_taken_name(self):
        result = subprocess.run(
            bus_harness.FAKE + ["--address", "unix:path=/run/dbus/system_bus_socket"],
            capture_output=True, timeout=30, env=bus_harness.lib_env())
        self.assertEqual(result.returncode, 2)
        self.assertIn(b"refusing", result.stderr)
        result = subprocess.run(bus_harness.FAKE + ["--address", self.bus.address, "--quiet"],
                                capture_output=True, timeout=30, env=bus_harness.lib_env())
        self.assertEqual(result.returncode, 1)
        self.assertIn(b"already owned", result.stderr)

    def test_harness_cli_runs_a_command_on_the_private_bus(self):
        script = ("import dbus, os, sys; "
                  "bus = dbus.bus.BusConnection(os.environ['DBUS_SYSTEM_BUS_ADDRESS']); "
                  "o = bus.call_blocking('org.bluez', '/', "
                  "'org.freedesktop.DBus.ObjectManager', 'GetManagedObjects', '', ()); "
                  "sys.exit(7 if '/org/bluez/hci2' in o else 1)")
        result = subprocess.run(
            [bus_harness.PYTHON, "-m", "bzs_testlib.bus", "run", "--adapters", "3", "--quiet",
             "--", bus_harness.PYTHON, "-c", script], timeout=30, env=bus_harness.lib_env())
        self.assertEqual(result.returncode, 7)



# --------------------------------------------------------------------------
# The library's phone and raw central over the fake radio
# --------------------------------------------------------------------------


class PiChrc(AppChrc):
    """A characteristic of the BlueZscript service whose reads and writes go to
    the pure-Python Pi of test_protocol_v2."""

    def __init__(self, peripheral, path, service, uuid, flags, on_read=None, on_write=None):
        super().__init__(peripheral, path, service, uuid, flags)
        self.on_read, self.on_write = on_read, on_write

    def _read(self, options):
        """A new value at offset 0; the rest of a long read comes from it."""
        self.peripheral.record("ReadValue", self.path, options=dict(options))
        offset = int(options.get("offset", 0))
        if offset == 0:
            self.value = self.on_read()
        return ay(self.value[offset:])

    def _write(self, value, options):
        self.peripheral.record("WriteValue", self.path, options=dict(options),
                               value=bytes(value))
        self.on_write(bytes(value), int(options.get("mtu", 517)))


class PiPeripheral(Client):
    """FakePi (test_protocol_v2) behind the BlueZscript GATT service on hci0:
    answers are cut into notifications for the link's MTU, as the daemon does."""

    def __init__(self, address, pi):
        super().__init__(address)
        self.pi = pi
        self.root = AppRoot(self, "/app")
        svc = "/app/service0"
        self.service = AppObject(self, svc, SERVICE, {"UUID": dbus.String(protocol.SVC_UUID),
                                                     "Primary": dbus.Boolean(True)})
        self.info = PiChrc(self, svc + "/info", svc, protocol.INFO_UUID, ["read"],
                           on_read=lambda: pi.read(protocol.INFO_UUID))
        self.challenge = PiChrc(self, svc + "/challenge", svc, protocol.CHALLENGE_UUID,
                                ["encrypt-authenticated-read"], on_read=pi.challenge)
        self.command = PiChrc(self, svc + "/command", svc, protocol.COMMAND_UUID,
                              ["encrypt-authenticated-write"], on_write=self.written)
        self.result = PiChrc(self, svc + "/result", svc, protocol.RESULT_UUID,
                             ["encrypt-authenticated-read", "notify"], on_read=lambda: b"")
        self.gatt_objects = [self.service, self.info, self.challenge, self.command, self.result]
        self.advert = AppAdvert(self, "/app/adv", "org.bluez.LEAdvertisement1", {
            "Type": dbus.String("peripheral"),
            "ServiceUUIDs": dbus.Array([protocol.SVC_UUID], signature="s"),
            "LocalName": dbus.String("fake-pi"),
        })
        self.agent = None
        self.notified = 0

    register = Peripheral.register

    def written(self, frame, mtu):
        self.pi.write(frame)
        while self.pi.out:
            for piece in protocol.fragment(self.pi.out.pop(0), mtu):
                self.result.notify(piece)
                self.notified += 1


class PhoneOverTheFakeTest(FakeBluezTest):
    """bzs_testlib's Phone and RawCentral (what the BLE suites use) against a Pi
    in this process, through the fake: pairing, commands and catalogue pages reach
    the phone as notifications, cut small at MTU 23 and joined again."""

    def test_pair_command_and_catalogue_through_the_fake(self):
        from test_protocol_v2 import FakePi  # noqa: E402 (a sibling test module)
        pi = FakePi()
        app = PiPeripheral(self.bus.address, pi)
        self.clients.append(app)
        app.register()
        central = RawCentral(self.bus.address)
        self.clients.append(central)
        central.call("/org/bluez/test", CONTROL, "SetMtu", "u", (23,))  # links made from now
        central.connect()
        central.bond()
        central.subscribe()
        central.drain()

        phone = Phone(pi.add())
        answer = phone.pair(central)
        self.assertEqual((answer["authentic"], answer["status"]), (True, "ok"))
        self.assertEqual(phone.secret, pi.devices[phone.device_id]["secret"])
        self.assertEqual(phone.command(central, "a")["output"], b"ran")

        before = app.notified
        cat = phone.catalogue(central)
        self.assertEqual([e["name"] for e in cat["entries"]], ["a", "b", "c"])
        # Two pages, each cut into 19-byte pieces and joined again by the central.
        self.assertGreater(app.notified - before, 2 * 3)
        # A stranger's frame gets a plain refusal, which the central reads as such.
        central.write(protocol.seal_request(protocol.T_COMMAND, bytes(32), bytes(16), 5,
                                            protocol.command_plaintext(0, bytes(16), 0, "a")))
        refusal = central.next_response()
        self.assertEqual((refusal["plain"], refusal["status"], refusal["counter"]),
                         (True, "unknown_device", 5))


if __name__ == "__main__":
    unittest.main()
