#!/usr/bin/env python3
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
name the file; tests/tools/README.md lists what is simplified or missing.

Usage (never against the real system bus):
  fake_bluetoothd.py [--address ADDR] [--adapters N] [--mtu N]
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
"""

import argparse
import collections
import json
import os
import random
import signal
import sys
import time

import dbus
import dbus.lowlevel
import dbus.mainloop.glib
import dbus.service
from gi.repository import GLib

BLUEZ = "org.bluez"
ERROR = "org.bluez.Error."
PROPS_IFACE = "org.freedesktop.DBus.Properties"
OM_IFACE = "org.freedesktop.DBus.ObjectManager"
INTROSPECT_IFACE = "org.freedesktop.DBus.Introspectable"
ADAPTER_IFACE = "org.bluez.Adapter1"
DEVICE_IFACE = "org.bluez.Device1"
GATT_MANAGER_IFACE = "org.bluez.GattManager1"
ADV_MANAGER_IFACE = "org.bluez.LEAdvertisingManager1"
AGENT_MANAGER_IFACE = "org.bluez.AgentManager1"
AGENT_IFACE = "org.bluez.Agent1"
SERVICE_IFACE = "org.bluez.GattService1"
CHRC_IFACE = "org.bluez.GattCharacteristic1"
DESC_IFACE = "org.bluez.GattDescriptor1"
PROFILE_IFACE = "org.bluez.GattProfile1"
ADV_IFACE = "org.bluez.LEAdvertisement1"
CONTROL_IFACE = "org.bluez.test.Control1"
CONTROL_PATH = "/org/bluez/test"
BLUEZ_PATH = "/org/bluez"

# Addresses of the well-known system bus: the fake refuses them.
SYSTEM_BUS_PATHS = ("/var/run/dbus/system_bus_socket", "/run/dbus/system_bus_socket")

ATT_MAX_VALUE_LEN = 512
MIN_MTU = 23
MAX_MTU = 517

# ATT error codes (src/shared/att-types.h).
ATT_READ_NOT_PERMITTED = 0x02
ATT_WRITE_NOT_PERMITTED = 0x03
ATT_AUTHENTICATION = 0x05
ATT_REQUEST_NOT_SUPPORTED = 0x06
ATT_INVALID_OFFSET = 0x07
ATT_AUTHORIZATION = 0x08
ATT_INSUFFICIENT_ENCRYPTION_KEY_SIZE = 0x0C
ATT_INVALID_VALUE_LEN = 0x0D
ATT_UNLIKELY = 0x0E
ATT_INSUFFICIENT_ENCRYPTION = 0x0F
BT_ERROR_CCC_IMPROPERLY_CONFIGURED = 0xFD
BT_ERROR_ALREADY_IN_PROGRESS = 0xFE
# Not an ATT code: the connection went away while the request was pending.
OP_CANCELLED = 0x100

# Attribute permission bits (src/shared/att-types.h).
PERM_READ = 0x01
PERM_WRITE = 0x02
PERM_READ_ENCRYPT = 0x04
PERM_WRITE_ENCRYPT = 0x08
PERM_READ_AUTHEN = 0x10
PERM_WRITE_AUTHEN = 0x20
PERM_NONE = 0x80
PERM_READ_SECURE = 0x100
PERM_WRITE_SECURE = 0x200
PERM_READ_MASK = PERM_READ | PERM_READ_ENCRYPT | PERM_READ_AUTHEN | PERM_READ_SECURE
PERM_WRITE_MASK = PERM_WRITE | PERM_WRITE_ENCRYPT | PERM_WRITE_AUTHEN | PERM_WRITE_SECURE
PERM_ENCRYPT = PERM_READ_ENCRYPT | PERM_WRITE_ENCRYPT
PERM_AUTHEN = PERM_READ_AUTHEN | PERM_WRITE_AUTHEN
PERM_SECURE = PERM_READ_SECURE | PERM_WRITE_SECURE

# Link security levels (BT_ATT_SECURITY_*): unpaired links are LOW, a Just
# Works bond gives MEDIUM (encrypted), an authenticated LE Secure Connections
# bond gives FIPS.
SEC_LOW = 1
SEC_MEDIUM = 2
SEC_HIGH = 3
SEC_FIPS = 4

BASE_UUID_TAIL = "-0000-1000-8000-00805f9b34fb"
UUID_GAP = "00001800" + BASE_UUID_TAIL
UUID_GATT = "00001801" + BASE_UUID_TAIL
UUID_DIS = "0000180a" + BASE_UUID_TAIL
UUID_CCC = "00002902" + BASE_UUID_TAIL
UUID_CEP = "00002900" + BASE_UUID_TAIL

# Characteristic flags as parse_chrc_flags() in src/gatt-database.c maps them:
# flag -> (property bits, extended property bits, permission bits, CCC bits).
PROP_BROADCAST = 0x01
PROP_READ = 0x02
PROP_WRITE_WITHOUT_RESP = 0x04
PROP_WRITE = 0x08
PROP_NOTIFY = 0x10
PROP_INDICATE = 0x20
PROP_AUTH = 0x40
PROP_EXT_PROP = 0x80
EXT_PROP_RELIABLE_WRITE = 0x01
EXT_PROP_WRITABLE_AUX = 0x02

CHRC_FLAGS = {
    "broadcast": (PROP_BROADCAST, 0, 0, 0),
    "read": (PROP_READ, 0, PERM_READ, 0),
    "write-without-response": (PROP_WRITE_WITHOUT_RESP, 0, PERM_WRITE, 0),
    "write": (PROP_WRITE, 0, PERM_WRITE, 0),
    "notify": (PROP_NOTIFY, 0, 0, PERM_WRITE),
    "indicate": (PROP_INDICATE, 0, 0, PERM_WRITE),
    "authenticated-signed-writes": (PROP_AUTH, 0, PERM_WRITE, 0),
    "extended-properties": (PROP_EXT_PROP, 0, 0, 0),
    "reliable-write": (0, EXT_PROP_RELIABLE_WRITE, PERM_WRITE, 0),
    "writable-auxiliaries": (0, EXT_PROP_WRITABLE_AUX, 0, 0),
    "encrypt-read": (PROP_READ, 0, PERM_READ | PERM_READ_ENCRYPT, 0),
    "encrypt-write": (PROP_WRITE, 0, PERM_WRITE | PERM_WRITE_ENCRYPT, 0),
    "encrypt-authenticated-read": (PROP_READ, 0, PERM_READ | PERM_READ_AUTHEN, 0),
    "encrypt-authenticated-write": (PROP_WRITE, 0, PERM_WRITE | PERM_WRITE_AUTHEN, 0),
    "secure-read": (PROP_READ, 0, PERM_READ | PERM_READ_SECURE, 0),
    "secure-write": (PROP_WRITE, 0, PERM_WRITE | PERM_WRITE_SECURE, 0),
    "authorize": (0, 0, 0, 0),
    "encrypt-notify": (PROP_NOTIFY, 0, 0, PERM_WRITE_ENCRYPT),
    "encrypt-authenticated-notify": (PROP_NOTIFY, 0, 0, PERM_WRITE_AUTHEN),
    "secure-notify": (PROP_NOTIFY, 0, 0, PERM_WRITE_SECURE),
    "encrypt-indicate": (PROP_INDICATE, 0, 0, PERM_WRITE_ENCRYPT),
    "encrypt-authenticated-indicate": (PROP_INDICATE, 0, 0, PERM_WRITE_AUTHEN),
    "secure-indicate": (PROP_INDICATE, 0, 0, PERM_WRITE_SECURE),
}
DESC_FLAGS = {
    "read": PERM_READ,
    "write": PERM_WRITE,
    "encrypt-read": PERM_READ | PERM_READ_ENCRYPT,
    "encrypt-write": PERM_WRITE | PERM_WRITE_ENCRYPT,
    "encrypt-authenticated-read": PERM_READ | PERM_READ_AUTHEN,
    "encrypt-authenticated-write": PERM_WRITE | PERM_WRITE_AUTHEN,
    "secure-read": PERM_READ | PERM_READ_SECURE,
    "secure-write": PERM_WRITE | PERM_WRITE_SECURE,
    "authorize": 0,
}
# The flags a remote (client-side) characteristic shows, in gatt-client.c order.
CLIENT_PROP_NAMES = [
    (PROP_BROADCAST, "broadcast"),
    (PROP_READ, "read"),
    (PROP_WRITE_WITHOUT_RESP, "write-without-response"),
    (PROP_WRITE, "write"),
    (PROP_NOTIFY, "notify"),
    (PROP_INDICATE, "indicate"),
    (PROP_AUTH, "authenticated-signed-writes"),
    (PROP_EXT_PROP, "extended-properties"),
]
CLIENT_EXT_PROP_NAMES = [
    (EXT_PROP_RELIABLE_WRITE, "reliable-write"),
    (EXT_PROP_WRITABLE_AUX, "writable-auxiliaries"),
]

AGENT_CAPABILITIES = {
    "": "KeyboardDisplay",  # src/agent.c: an empty capability means KeyboardDisplay
    "DisplayOnly": "DisplayOnly",
    "DisplayYesNo": "DisplayYesNo",
    "KeyboardOnly": "KeyboardOnly",
    "NoInputNoOutput": "NoInputNoOutput",
    "KeyboardDisplay": "KeyboardDisplay",
}

# LE Secure Connections association models (Bluetooth Core, Vol 3, Part H,
# 2.3.5.1), keyed (responder capability, initiator capability).
#   JW  just works: the responder's agent gets RequestAuthorization
#   NC  numeric comparison: both agents get RequestConfirmation
#   PI  passkey, the initiator types what the responder displays
#   PR  passkey, the responder types what the initiator displays
#   PB  passkey, both type it
_CAPS = ["DisplayOnly", "DisplayYesNo", "KeyboardOnly", "NoInputNoOutput", "KeyboardDisplay"]
_SC_TABLE = {
    "DisplayOnly": ["JW", "JW", "PI", "JW", "PI"],
    "DisplayYesNo": ["JW", "NC", "PI", "JW", "NC"],
    "KeyboardOnly": ["PR", "PR", "PB", "JW", "PR"],
    "NoInputNoOutput": ["JW", "JW", "JW", "JW", "JW"],
    "KeyboardDisplay": ["PR", "NC", "PI", "JW", "NC"],
}


def association_model(responder_cap, initiator_cap):
    """Return the pairing association model for two IO capabilities."""
    return _SC_TABLE[responder_cap][_CAPS.index(initiator_cap)]


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------

QUIET = False


def log(message):
    """One line on stderr: the fake's trace of every call and event."""
    if not QUIET:
        sys.stderr.write("fake-bluetoothd[%.3f] %s\n" % (time.monotonic(), message))
        sys.stderr.flush()


def fmt(value, limit=160):
    """Short printable form of a D-Bus value for the trace."""
    text = _fmt(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fmt(value):
    if isinstance(value, (bytes, bytearray)):
        return "<%d bytes %s>" % (len(value), bytes(value[:32]).hex())
    if isinstance(value, dbus.Array) and value.signature == "y":
        return _fmt(bytes(int(b) for b in value))
    if isinstance(value, dict):
        return "{" + ", ".join("%s: %s" % (_fmt(k), _fmt(v)) for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    if isinstance(value, str):
        return repr(str(value))
    if isinstance(value, (bool, dbus.Boolean)):
        return str(bool(value))
    if isinstance(value, dbus.Byte):
        return str(int(value))
    return str(value)


def to_bytes(value):
    """D-Bus 'ay' (ByteArray or Array of Byte) -> bytes; None if not a byte array."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, dbus.Array) and value.signature == "y":
        return bytes(int(b) for b in value)
    if isinstance(value, dbus.Array) and all(isinstance(b, dbus.Byte) for b in value):
        return bytes(int(b) for b in value)
    return None


def dbus_bytes(data):
    return dbus.Array([dbus.Byte(b) for b in data], signature="y")


def dbus_strings(items):
    return dbus.Array([dbus.String(s) for s in items], signature="s")


def props_dict(props):
    return dbus.Dictionary(props, signature="sv")


def parse_uuid(text):
    """bt_string_to_uuid() of lib/uuid.c: 16-, 32- or 128-bit string -> canonical
    128-bit lowercase UUID, or None when BlueZ would refuse it."""
    if not isinstance(text, str):
        return None
    s = str(text)
    try:
        if len(s) == 36 and s[8] == s[13] == s[18] == s[23] == "-":
            parts = s.split("-")
            if [len(p) for p in parts] != [8, 4, 4, 4, 12]:
                return None
            for p in parts:
                int(p, 16)
            return s.lower()
        if len(s) in (4, 6):
            value = int(s, 16)
            if not 0 <= value <= 0xFFFF:
                return None
            return "%08x%s" % (value, BASE_UUID_TAIL)
        if len(s) in (8, 10):
            value = int(s, 16)
            if not 0 <= value <= 0xFFFFFFFF:
                return None
            return "%08x%s" % (value, BASE_UUID_TAIL)
    except ValueError:
        return None
    return None


def uuid_adv_size(uuid128):
    """Bytes the UUID takes in advertising data (16-, 32- or 128-bit form)."""
    if uuid128.endswith(BASE_UUID_TAIL):
        return 2 if int(uuid128[:8], 16) <= 0xFFFF else 4
    return 16


class BluezError(dbus.DBusException):
    """A D-Bus error reply; `name` is the full error name."""

    def __init__(self, name, message):
        super().__init__(message, name=name)


def bluez_error(short_name, message):
    return BluezError(ERROR + short_name, message)


# The messages of src/error.c, so callers see exactly what BlueZ 5.66 sends.
def err_invalid_args(message="Invalid arguments in method call"):
    return bluez_error("InvalidArguments", message)


def err_already_exists():
    return bluez_error("AlreadyExists", "Already Exists")


def err_does_not_exist():
    return bluez_error("DoesNotExist", "Does Not Exist")


def err_not_ready():
    return bluez_error("NotReady", "Resource Not Ready")


def err_busy():
    return bluez_error("InProgress", "Operation already in progress")


def err_in_progress():
    return bluez_error("InProgress", "In Progress")


def err_not_supported():
    return bluez_error("NotSupported", "Operation is not supported")


def err_not_permitted(message):
    return bluez_error("NotPermitted", message)


def err_not_authorized():
    return bluez_error("NotAuthorized", "Operation Not Authorized")


def err_failed(message):
    return bluez_error("Failed", message)


def app_error_to_att(name, message, perm_err):
    """dbus_error_to_att_ecode() of src/gatt-database.c: an application's error
    reply becomes an ATT error code on the air."""
    if name == ERROR + "Failed":
        try:
            code = int(message, 0)
        except (TypeError, ValueError):
            return 0x80  # no code in the message: BlueZ uses 0x80
        if code < 0x80 or code > 0x9F:
            return ATT_UNLIKELY
        return code
    return {
        ERROR + "NotSupported": ATT_REQUEST_NOT_SUPPORTED,
        ERROR + "NotAuthorized": ATT_AUTHORIZATION,
        ERROR + "InvalidValueLength": ATT_INVALID_VALUE_LEN,
        ERROR + "InvalidOffset": ATT_INVALID_OFFSET,
        ERROR + "InProgress": BT_ERROR_ALREADY_IN_PROGRESS,
        ERROR + "NotPermitted": perm_err,
    }.get(name, ATT_UNLIKELY)


def att_to_client_error(ecode):
    """create_gatt_dbus_error() of src/gatt-client.c: what the central's D-Bus
    caller sees for an ATT error code."""
    if ecode == ATT_READ_NOT_PERMITTED:
        return err_not_permitted("Read not permitted")
    if ecode == ATT_WRITE_NOT_PERMITTED:
        return err_not_permitted("Write not permitted")
    if ecode in (ATT_AUTHENTICATION, ATT_INSUFFICIENT_ENCRYPTION,
                 ATT_INSUFFICIENT_ENCRYPTION_KEY_SIZE):
        return err_not_permitted("Not paired")
    if ecode == ATT_INVALID_OFFSET:
        return err_invalid_args("Invalid offset")
    if ecode == ATT_INVALID_VALUE_LEN:
        return err_invalid_args("Invalid Length")
    if ecode == ATT_AUTHORIZATION:
        return err_not_authorized()
    if ecode == ATT_REQUEST_NOT_SUPPORTED:
        return err_not_supported()
    if ecode in (0, OP_CANCELLED):
        return err_failed("Operation failed")
    return err_failed("Operation failed with ATT error: 0x%02x" % ecode)


def check_permissions(perm, mask, security):
    """check_permissions() of src/shared/gatt-server.c."""
    if perm and mask & PERM_READ and not perm & PERM_READ:
        return ATT_READ_NOT_PERMITTED
    if perm and mask & PERM_WRITE and not perm & PERM_WRITE:
        return ATT_WRITE_NOT_PERMITTED
    perm &= mask
    if not perm:
        return 0
    if perm & PERM_SECURE and security < SEC_FIPS:
        return ATT_AUTHENTICATION
    if perm & PERM_AUTHEN and security < SEC_HIGH:
        return ATT_AUTHENTICATION
    if perm & PERM_ENCRYPT and security < SEC_MEDIUM:
        return ATT_INSUFFICIENT_ENCRYPTION
    return 0


def parse_options(options, allow_type):
    """parse_options() of src/gatt-client.c: 'offset' must be uint16 and 'type'
    a string; other keys are ignored. Returns (offset, type or None)."""
    offset, wtype = 0, None
    for key, value in options.items():
        if str(key).lower() == "offset":
            if not isinstance(value, dbus.UInt16):
                raise err_invalid_args()
            offset = int(value)
        if allow_type and str(key).lower() == "type":
            if not isinstance(value, dbus.String):
                raise err_invalid_args()
            wtype = str(value)
    return offset, wtype


# --------------------------------------------------------------------------
# Exported objects
# --------------------------------------------------------------------------


class TracedObject(dbus.service.Object):
    """dbus.service.Object that logs each incoming call and, like gdbus,
    refuses a call whose argument signature is not the method's."""

    def _message_cb(self, connection, message):
        if isinstance(message, dbus.lowlevel.MethodCallMessage):
            member, iface = message.get_member(), message.get_interface()
            log("call %s -> %s %s.%s%s" % (
                message.get_sender(), message.get_path(), iface, member,
                fmt(tuple(message.get_args_list(byte_arrays=True)))))
            try:
                parent = dbus.service._method_lookup(self, member, iface)[1]
            except Exception:  # unknown method: the base class answers it
                parent = None
            expected = getattr(parent, "_dbus_in_signature", None)
            if expected is not None and str(message.get_signature() or "") != expected:
                if iface and iface.startswith(BLUEZ):
                    name, text = ERROR + "InvalidArguments", "Invalid arguments in method call"
                else:
                    name, text = "org.freedesktop.DBus.Error.InvalidArgs", "Invalid arguments"
                log("  -> error %s (signature %r, expected %r)" % (
                    name, str(message.get_signature()), expected))
                connection.send_message(dbus.lowlevel.ErrorMessage(message, name, text))
                return
        super()._message_cb(connection, message)


class ExportedObject(TracedObject):
    """An org.bluez object with org.freedesktop.DBus.Properties.

    self.props maps interface -> {name: typed D-Bus value}; a property missing
    from the dict does not exist (BlueZ's "exists" callbacks). Writable
    properties have a setter in self.setters[(iface, name)] = (type, func)."""

    def __init__(self, fake, path):
        super().__init__(fake.bus, path)
        self.fake = fake
        self.path = path
        self.props = {}
        self.setters = {}
        self.published = False

    def interfaces_and_properties(self):
        out = {iface: props_dict(p) for iface, p in self.props.items()}
        out[INTROSPECT_IFACE] = props_dict({})
        out[PROPS_IFACE] = props_dict({})
        return dbus.Dictionary(out, signature="sa{sv}")

    def publish(self):
        """Announce the object (InterfacesAdded) and list it in GetManagedObjects."""
        self.published = True
        self.fake.objects[self.path] = self
        log("InterfacesAdded %s %s" % (self.path, sorted(self.props)))
        self.fake.root.InterfacesAdded(self.path, self.interfaces_and_properties())

    def unpublish(self):
        """Remove the object from the bus (InterfacesRemoved)."""
        if self.published:
            self.published = False
            self.fake.objects.pop(self.path, None)
            ifaces = list(self.props) + [INTROSPECT_IFACE, PROPS_IFACE]
            log("InterfacesRemoved %s" % self.path)
            self.fake.root.InterfacesRemoved(self.path, dbus_strings(ifaces))
        self.remove_from_connection()

    def set_prop(self, iface, name, value, force=False):
        """Set a property; emits PropertiesChanged when the value changed (or
        always with force, as BlueZ does for every notification)."""
        current = self.props.setdefault(iface, {})
        if not force and name in current and current[name] == value:
            return
        current[name] = value
        if self.published:
            log("PropertiesChanged %s %s.%s = %s" % (self.path, iface, name, fmt(value)))
            self.PropertiesChanged(iface, props_dict({name: value}), dbus_strings([]))

    def drop_prop(self, iface, name):
        """Make a property cease to exist (PropertiesChanged 'invalidated')."""
        if name in self.props.get(iface, {}):
            del self.props[iface][name]
            if self.published:
                log("PropertiesChanged %s %s.%s invalidated" % (self.path, iface, name))
                self.PropertiesChanged(iface, props_dict({}), dbus_strings([name]))

    def prop(self, iface, name, default=None):
        return self.props.get(iface, {}).get(name, default)

    @dbus.service.method(PROPS_IFACE, in_signature="ss", out_signature="v")
    def Get(self, iface, name):
        if iface not in self.props:
            raise BluezError("org.freedesktop.DBus.Error.InvalidArgs",
                             "No such interface '%s'" % iface)
        if name not in self.props[iface]:
            raise BluezError("org.freedesktop.DBus.Error.InvalidArgs",
                             "No such property '%s'" % name)
        return self.props[iface][name]

    @dbus.service.method(PROPS_IFACE, in_signature="s", out_signature="a{sv}")
    def GetAll(self, iface):
        if iface not in self.props:
            raise BluezError("org.freedesktop.DBus.Error.InvalidArgs",
                             "No such interface '%s'" % iface)
        return props_dict(self.props[iface])

    @dbus.service.method(PROPS_IFACE, in_signature="ssv", out_signature="",
                         sender_keyword="sender")
    def Set(self, iface, name, value, sender=None):
        if iface not in self.props:
            raise BluezError("org.freedesktop.DBus.Error.InvalidArgs",
                             "No such interface '%s'" % iface)
        if name not in self.props[iface]:
            raise BluezError("org.freedesktop.DBus.Error.InvalidArgs",
                             "No such property '%s'" % name)
        setter = self.setters.get((iface, name))
        if setter is None:
            raise BluezError("org.freedesktop.DBus.Error.PropertyReadOnly",
                             "Property '%s' is not writable" % name)
        expected_type, func = setter
        if not isinstance(value, expected_type):
            raise BluezError("org.freedesktop.DBus.Error.InvalidArgs",
                             "Invalid argument type: '%s'" % type(value).__name__)
        func(value, sender)

    @dbus.service.signal(PROPS_IFACE, signature="sa{sv}as")
    def PropertiesChanged(self, iface, changed, invalidated):
        pass


class Root(TracedObject):
    """The ObjectManager at "/" (BlueZ's root)."""

    def __init__(self, fake):
        super().__init__(fake.bus, "/")
        self.fake = fake

    @dbus.service.method(OM_IFACE, in_signature="", out_signature="a{oa{sa{sv}}}")
    def GetManagedObjects(self):
        return dbus.Dictionary(
            {dbus.ObjectPath(p): o.interfaces_and_properties()
             for p, o in sorted(self.fake.objects.items())},
            signature="oa{sa{sv}}")

    @dbus.service.signal(OM_IFACE, signature="oa{sa{sv}}")
    def InterfacesAdded(self, path, interfaces):
        pass

    @dbus.service.signal(OM_IFACE, signature="oas")
    def InterfacesRemoved(self, path, interfaces):
        pass


# --------------------------------------------------------------------------
# Agents
# --------------------------------------------------------------------------


class Agent:
    """A registered org.bluez.Agent1 (one per D-Bus connection, src/agent.c)."""

    def __init__(self, owner, path, capability):
        self.owner = owner
        self.path = path
        self.capability = capability


class AgentManager(ExportedObject):
    """/org/bluez: org.bluez.AgentManager1."""

    def __init__(self, fake):
        super().__init__(fake, BLUEZ_PATH)
        self.props = {AGENT_MANAGER_IFACE: {}}

    @dbus.service.method(AGENT_MANAGER_IFACE, in_signature="os", out_signature="",
                         sender_keyword="sender")
    def RegisterAgent(self, path, capability, sender=None):
        if sender in self.fake.agents:
            raise err_already_exists()
        if str(capability) not in AGENT_CAPABILITIES:
            raise err_invalid_args()
        self.fake.agents[sender] = Agent(sender, str(path), AGENT_CAPABILITIES[str(capability)])

    @dbus.service.method(AGENT_MANAGER_IFACE, in_signature="o", out_signature="",
                         sender_keyword="sender")
    def UnregisterAgent(self, path, sender=None):
        agent = self.fake.agents.get(sender)
        if agent is None or agent.path != str(path):
            raise err_does_not_exist()
        self.fake.drop_agent(agent)

    @dbus.service.method(AGENT_MANAGER_IFACE, in_signature="o", out_signature="",
                         sender_keyword="sender")
    def RequestDefaultAgent(self, path, sender=None):
        agent = self.fake.agents.get(sender)
        if agent is None or agent.path != str(path):
            raise err_does_not_exist()
        # The most recent request becomes the default; earlier ones are the
        # fall-backs when it goes away (default_agents queue of src/agent.c).
        if agent in self.fake.default_agents:
            self.fake.default_agents.remove(agent)
        self.fake.default_agents.insert(0, agent)


# --------------------------------------------------------------------------
# The local GATT database of an adapter (peripheral side)
# --------------------------------------------------------------------------


class LocalService:
    def __init__(self, uuid, primary=True, app=None, path=None, claimed=False):
        self.uuid = uuid
        self.primary = primary
        self.app = app
        self.path = path
        self.claimed = claimed  # claimed by a BlueZ plugin: not exported to centrals
        self.handle = 0
        self.end_handle = 0
        self.chrcs = []
        self.includes = []
        self.handle_prop = False  # the app object has a Handle property

    def attr_count(self):
        count = 1 + len(self.includes)
        for chrc in self.chrcs:
            count += 2 + (1 if chrc.needs_ccc() else 0) + (1 if chrc.ext_props else 0)
            count += len(chrc.descs)
        return count


class LocalChrc:
    def __init__(self, service, uuid, flags, app=None, path=None, value=b""):
        self.service = service
        self.uuid = uuid
        self.flags = list(flags)
        self.app = app
        self.path = path
        self.value = value  # builtin characteristics only
        self.props = 0
        self.ext_props = 0
        self.perm = 0
        self.ccc_perm = 0
        self.req_prep_authorization = False
        for flag in self.flags:
            props, ext, perm, ccc = CHRC_FLAGS[flag]
            self.props |= props
            self.ext_props |= ext
            self.perm |= perm
            self.ccc_perm |= ccc
            if flag == "authorize":
                self.req_prep_authorization = True
        if self.ext_props:
            self.props |= PROP_EXT_PROP
        self.handle = 0
        self.value_handle = 0
        self.ccc = None
        self.cep = None
        self.descs = []  # the application's descriptors
        self.ntfy_cnt = 0  # devices with notifications enabled (ccc_write_cb)
        self.handle_prop = False

    def needs_ccc(self):
        return bool(self.props & (PROP_NOTIFY | PROP_INDICATE))

    def client_flags(self):
        names = [n for bit, n in CLIENT_PROP_NAMES if self.props & bit]
        names += [n for bit, n in CLIENT_EXT_PROP_NAMES if self.ext_props & bit]
        return names

    def all_descs(self):
        out = [d for d in (self.ccc, self.cep) if d is not None] + self.descs
        return sorted(out, key=lambda d: d.handle)


class LocalDesc:
    def __init__(self, chrc, uuid, flags=(), perm=None, app=None, path=None, kind="app",
                 value=b""):
        self.chrc = chrc
        self.uuid = uuid
        self.flags = list(flags)
        self.app = app
        self.path = path
        self.kind = kind  # "app", "ccc" or "cep"
        self.value = value
        self.req_prep_authorization = "authorize" in self.flags
        if perm is None:
            perm = 0
            for flag in self.flags:
                perm |= DESC_FLAGS[flag]
        self.perm = perm
        self.handle = 0
        self.handle_prop = False


class LocalDatabase:
    """Handles and attributes of one adapter's GATT server (src/gatt-database.c)."""

    def __init__(self, adapter):
        self.adapter = adapter
        self.services = []
        self.next_handle = 1
        self._add_builtin_services()

    def _add_builtin_services(self):
        # populate_gap_service / populate_gatt_service / populate_devinfo_service:
        # 7 + 10 + 3 handles, so applications start at handle 0x0015. GAP and
        # Device Information are claimed by plugins on a BlueZ central and
        # therefore not exported there; GATT (0x1801) is.
        gap = LocalService(UUID_GAP, claimed=True)
        for uuid in ("2a00", "2a01", "2aa6"):
            gap.chrcs.append(LocalChrc(gap, parse_uuid(uuid), ["read"]))
        self._place(gap, 7)
        gatt = LocalService(UUID_GATT)
        changed = LocalChrc(gatt, parse_uuid("2a05"), ["indicate"])
        changed.perm = PERM_NONE
        features = LocalChrc(gatt, parse_uuid("2b29"), ["read", "write"], value=b"\x00")
        db_hash = LocalChrc(gatt, parse_uuid("2b2a"), ["read"], value=bytes(16))
        gatt.chrcs = [changed, features, db_hash]
        self._place(gatt, 10)
        dis = LocalService(UUID_DIS, claimed=True)
        dis.chrcs.append(LocalChrc(dis, parse_uuid("2a50"), ["read"],
                                   value=bytes([0x02, 0x6B, 0x1D, 0x46, 0x02, 0x42, 0x05])))
        self._place(dis, 3)

    def _place(self, service, count, start=None):
        """Give the service [start, start+count) and number its attributes."""
        if start is None:
            start = self.next_handle
        service.handle = start
        service.end_handle = start + count - 1
        handle = start + 1 + len(service.includes)
        for chrc in service.chrcs:
            chrc.handle, chrc.value_handle = handle, handle + 1
            handle += 2
            if chrc.needs_ccc():
                chrc.ccc = LocalDesc(chrc, UUID_CCC, perm=PERM_READ | PERM_WRITE | chrc.ccc_perm,
                                     kind="ccc")
                chrc.ccc.handle = handle
                handle += 1
            if chrc.ext_props:
                chrc.cep = LocalDesc(chrc, UUID_CEP, perm=PERM_READ, kind="cep",
                                     value=bytes([chrc.ext_props, 0]))
                chrc.cep.handle = handle
                handle += 1
            for desc in chrc.descs:
                desc.handle = handle
                handle += 1
        self.services.append(service)
        self.services.sort(key=lambda s: s.handle)
        self.next_handle = max(self.next_handle, service.end_handle + 1)

    def add_service(self, service, wanted_handle=0):
        """gatt_db_insert_service(): a requested Handle is honoured if free."""
        count = service.attr_count()
        start = wanted_handle or self.next_handle
        end = start + count - 1
        if end > 0xFFFF:
            return False
        for other in self.services:
            if start <= other.end_handle and other.handle <= end:
                return False
        self._place(service, count, start)
        return True

    def remove_service(self, service):
        if service in self.services:
            self.services.remove(service)

    def find(self, handle):
        """The attribute (LocalChrc by value handle, or LocalDesc) at a handle."""
        for service in self.services:
            if service.handle <= handle <= service.end_handle:
                for chrc in service.chrcs:
                    if chrc.value_handle == handle:
                        return chrc
                    for desc in chrc.all_descs():
                        if desc.handle == handle:
                            return desc
        return None


class App:
    """A registered GATT application (GattManager1.RegisterApplication)."""

    def __init__(self, adapter, owner, path):
        self.adapter = adapter
        self.owner = owner
        self.path = path
        self.services = []
        self.profiles = []
        self.warnings = []

    def chrc_by_path(self, path):
        for service in self.services:
            for chrc in service.chrcs:
                if chrc.path == path:
                    return chrc
        return None


class Advertisement:
    """A registered LE advertisement (LEAdvertisingManager1)."""

    def __init__(self, adapter, owner, path):
        self.adapter = adapter
        self.owner = owner
        self.path = path
        self.type = "broadcast"
        self.service_uuids = []
        self.solicit_uuids = []
        self.manufacturer_data = {}
        self.service_data = {}
        self.data = {}
        self.includes = []
        self.local_name = None
        self.appearance = None
        self.discoverable = None
        self.tx_power = None
        self.timeout = 0
        self.timer = None

    def connectable(self):
        return self.type == "peripheral"


def parse_advertisement(adv, props, max_adv_len):
    """The parsers of src/advertising.c plus the legacy length check. Raises
    BluezError("Failed to parse advertisement.") like BlueZ 5.66."""
    fail = err_failed("Failed to parse advertisement.")

    def get(name, types):
        if name not in props:
            return None
        value = props[name]
        if not isinstance(value, types):
            raise fail
        return value

    value = get("Type", dbus.String)
    if value is not None:
        if str(value) not in ("broadcast", "peripheral"):
            raise fail
        adv.type = str(value)
    for name, attr in (("ServiceUUIDs", "service_uuids"), ("SolicitUUIDs", "solicit_uuids")):
        value = get(name, dbus.Array)
        if value is not None:
            uuids = [parse_uuid(u) for u in value]
            if None in uuids:
                raise fail
            setattr(adv, attr, uuids)
    value = get("ManufacturerData", dbus.Dictionary)
    if value is not None:
        for key, data in value.items():
            data = to_bytes(data)
            if not isinstance(key, dbus.UInt16) or data is None:
                raise fail
            adv.manufacturer_data[int(key)] = data
    value = get("ServiceData", dbus.Dictionary)
    if value is not None:
        for key, data in value.items():
            uuid, data = parse_uuid(key), to_bytes(data)
            if uuid is None or data is None:
                raise fail
            adv.service_data[uuid] = data
    value = get("Includes", dbus.Array)
    if value is not None:
        # Unknown includes are ignored (parse_includes).
        adv.includes = [str(i) for i in value if str(i) in ("tx-power", "appearance",
                                                             "local-name")]
    value = get("LocalName", dbus.String)
    if value is not None:
        if "local-name" in adv.includes:
            raise fail  # "Local name already included"
        adv.local_name = str(value) or None
    value = get("Appearance", dbus.UInt16)
    if value is not None:
        adv.appearance = int(value)
    get("Duration", dbus.UInt16)
    value = get("Timeout", dbus.UInt16)
    if value is not None:
        adv.timeout = int(value)
    value = get("Data", dbus.Dictionary)
    if value is not None:
        for key, data in value.items():
            data = to_bytes(data)
            if not isinstance(key, dbus.Byte) or data is None:
                raise fail
            adv.data[int(key)] = data
    value = get("Discoverable", dbus.Boolean)
    if value is not None:
        adv.discoverable = bool(value)
        if adv.discoverable and adv.type == "broadcast":
            raise fail  # "Broadcast cannot set flags"
    get("DiscoverableTimeout", dbus.UInt16)
    value = get("SecondaryChannel", dbus.String)
    if value is not None and str(value) not in ("1M", "2M", "Coded"):
        raise fail
    low = get("MinInterval", dbus.UInt32)
    high = get("MaxInterval", dbus.UInt32)
    if low is not None and high is not None and int(low) > int(high):
        raise fail
    value = get("TxPower", dbus.Int16)
    if value is not None:
        adv.tx_power = int(value)

    # bt_ad_generate() length against the controller's maximum (31 bytes for
    # legacy advertising, as on a Raspberry Pi); the name goes in the scan
    # response and is shortened there, never refused.
    length = 0
    for uuids in (adv.service_uuids, adv.solicit_uuids):
        for size in (2, 4, 16):
            count = sum(1 for u in uuids if uuid_adv_size(u) == size)
            if count:
                length += 2 + size * count
    length += sum(4 + len(d) for d in adv.manufacturer_data.values())
    length += sum(2 + uuid_adv_size(u) + len(d) for u, d in adv.service_data.items())
    length += sum(2 + len(d) for d in adv.data.values())
    limit = max_adv_len
    if adv.type == "peripheral" or adv.discoverable:
        limit -= 3  # flags
    if "tx-power" in adv.includes:
        limit -= 3
    if adv.appearance is not None or "appearance" in adv.includes:
        limit -= 4
    if length > limit:
        log("advertisement too long: %d bytes of data, %d allowed" % (length, limit))
        raise fail


# --------------------------------------------------------------------------
# Adapters
# --------------------------------------------------------------------------

DISCOVERY_FILTER_KEYS = ["UUIDs", "RSSI", "Pathloss", "Transport", "DuplicateData",
                         "Discoverable", "Pattern"]


def parse_discovery_filter(filt):
    """parse_discovery_filter_dict() of src/adapter.c."""
    out = {"uuids": [], "rssi": None, "pathloss": None, "transport": "auto", "pattern": None}
    for key, value in filt.items():
        key = str(key)
        if key == "UUIDs":
            if not isinstance(value, dbus.Array):
                raise err_invalid_args()
            uuids = [parse_uuid(u) for u in value]
            if None in uuids:
                raise err_invalid_args()
            out["uuids"] = uuids
        elif key == "RSSI":
            if not isinstance(value, dbus.Int16) or not -127 <= int(value) <= 20:
                raise err_invalid_args()
            out["rssi"] = int(value)
        elif key == "Pathloss":
            if not isinstance(value, dbus.UInt16) or int(value) > 137:
                raise err_invalid_args()
            out["pathloss"] = int(value)
        elif key == "Transport":
            if not isinstance(value, dbus.String) or str(value) not in ("auto", "bredr", "le"):
                raise err_invalid_args()
            out["transport"] = str(value)
        elif key in ("DuplicateData", "Discoverable"):
            if not isinstance(value, dbus.Boolean):
                raise err_invalid_args()
        elif key == "Pattern":
            if not isinstance(value, dbus.String):
                raise err_invalid_args()
            out["pattern"] = str(value)
        else:
            raise err_invalid_args()
    if out["rssi"] is not None and out["pathloss"] is not None:
        raise err_invalid_args()
    return out


class Adapter(ExportedObject):
    """/org/bluez/hciN: Adapter1, GattManager1 and LEAdvertisingManager1."""

    def __init__(self, fake, name):
        super().__init__(fake, "%s/%s" % (BLUEZ_PATH, name))
        self.name = name
        self.index = int(name[3:])
        # Letters in the address: real BlueZ object paths keep them upper case
        # (dev_00_AA_...), which clients must not fold.
        self.address = "02:BD:5C:00:%02X:%02X" % ((self.index >> 8) & 0xFF,
                                                  (0x10 + self.index) & 0xFF)
        self.discovery = {}  # sender -> filter dict or None (a started session)
        self.filters = {}  # sender -> filter set with SetDiscoveryFilter
        self.apps = []
        self.pending_apps = set()  # (owner, path) being registered
        self.adverts = []
        self.devices = {}  # address -> Device
        self.db = LocalDatabase(self)
        self.props = {
            ADAPTER_IFACE: {
                "Address": dbus.String(self.address),
                "AddressType": dbus.String("public"),
                "Name": dbus.String("fake-" + name),
                "Alias": dbus.String("fake-" + name),
                "Class": dbus.UInt32(0),
                "Powered": dbus.Boolean(True),
                "Discoverable": dbus.Boolean(False),
                "DiscoverableTimeout": dbus.UInt32(180),
                "Pairable": dbus.Boolean(True),
                "PairableTimeout": dbus.UInt32(0),
                "Discovering": dbus.Boolean(False),
                "UUIDs": dbus_strings([]),
                "Modalias": dbus.String("usb:v1D6Bp0246d0542"),
                "Roles": dbus_strings(["central", "peripheral"]),
            },
            GATT_MANAGER_IFACE: {},
            ADV_MANAGER_IFACE: {},
        }
        self.setters = {
            (ADAPTER_IFACE, "Powered"): (dbus.Boolean, lambda v, s: self.set_powered(bool(v))),
            (ADAPTER_IFACE, "Alias"): (dbus.String, self._set_alias),
            (ADAPTER_IFACE, "Discoverable"): (dbus.Boolean, self._set_discoverable),
            (ADAPTER_IFACE, "DiscoverableTimeout"): (
                dbus.UInt32, lambda v, s: self.set_prop(ADAPTER_IFACE, "DiscoverableTimeout", v)),
            (ADAPTER_IFACE, "Pairable"): (
                dbus.Boolean, lambda v, s: self.set_prop(ADAPTER_IFACE, "Pairable", v)),
            (ADAPTER_IFACE, "PairableTimeout"): (
                dbus.UInt32, lambda v, s: self.set_prop(ADAPTER_IFACE, "PairableTimeout", v)),
        }
        self.update_uuids()
        self.update_adv_instances()

    # -- state ---------------------------------------------------------------

    @property
    def powered(self):
        return bool(self.prop(ADAPTER_IFACE, "Powered"))

    @property
    def alias(self):
        return str(self.prop(ADAPTER_IFACE, "Alias"))

    def _set_alias(self, value, sender):
        # An empty alias goes back to the system name (adapter-api.txt).
        self.set_prop(ADAPTER_IFACE, "Alias",
                      dbus.String(str(value) or str(self.prop(ADAPTER_IFACE, "Name"))))

    def _set_discoverable(self, value, sender):
        if not self.powered:
            raise err_not_ready()
        self.set_prop(ADAPTER_IFACE, "Discoverable", value)

    def set_powered(self, on):
        if on == self.powered:
            return
        log("%s powered %s" % (self.name, "on" if on else "off"))
        self.set_prop(ADAPTER_IFACE, "Powered", dbus.Boolean(on))
        if not on:
            # Power-off ends discovery sessions and connections; registered
            # applications and advertisements stay (they resume on power-on).
            self.discovery.clear()
            self.update_discovering()
            for link in list(self.fake.links):
                if self in (link.central_dev.adapter, link.periph_dev.adapter):
                    self.fake.drop_link(link, "adapter powered off")
            self.set_prop(ADAPTER_IFACE, "Discoverable", dbus.Boolean(False))
        self.fake.refresh_presence()

    def update_uuids(self):
        uuids = {UUID_GAP, UUID_GATT, UUID_DIS}
        for service in self.db.services:
            if service.primary:
                uuids.add(service.uuid)
        self.set_prop(ADAPTER_IFACE, "UUIDs", dbus_strings(sorted(uuids)))

    def update_adv_instances(self):
        active = len(self.adverts)
        self.set_prop(ADV_MANAGER_IFACE, "ActiveInstances", dbus.Byte(active))
        self.set_prop(ADV_MANAGER_IFACE, "SupportedInstances",
                      dbus.Byte(max(0, self.fake.args.adv_instances - active)))
        self.set_prop(ADV_MANAGER_IFACE, "SupportedIncludes",
                      dbus_strings(["tx-power", "appearance", "local-name"]))

    def update_discovering(self):
        self.set_prop(ADAPTER_IFACE, "Discovering", dbus.Boolean(bool(self.discovery)))

    def visible_adverts(self):
        """Advertisements a scanner would receive from this adapter."""
        return list(self.adverts) if self.powered else []

    def device_path(self, address):
        return "%s/dev_%s" % (self.path, address.replace(":", "_"))

    def matches_discovery(self, fields):
        """Whether any discovery session's filter lets this report through."""
        for filt in self.discovery.values():
            if filt is None:
                return True
            if filt["transport"] == "bredr":
                continue  # LE advertisers are not found by a BR/EDR-only scan
            if filt["uuids"] and not set(filt["uuids"]) & set(fields["uuids"]):
                continue
            if filt["pattern"] and not (fields["address"].startswith(filt["pattern"]) or
                                        (fields["name"] or "").startswith(filt["pattern"])):
                continue
            if filt["rssi"] is not None and fields["rssi"] < filt["rssi"]:
                continue
            if filt["pathloss"] is not None:
                if fields["tx_power"] is None or \
                        fields["tx_power"] - fields["rssi"] > filt["pathloss"]:
                    continue
            return True
        return False

    # -- Adapter1 ------------------------------------------------------------

    @dbus.service.method(ADAPTER_IFACE, in_signature="", out_signature="",
                         sender_keyword="sender")
    def StartDiscovery(self, sender=None):
        if not self.powered:
            raise err_not_ready()
        if sender in self.discovery:
            raise err_busy()
        self.discovery[sender] = self.filters.pop(sender, None)
        self.update_discovering()
        # Devices are reported after the reply, as advertising reports arrive.
        GLib.idle_add(self._idle_refresh)

    def _idle_refresh(self):
        self.fake.refresh_presence()
        return False

    @dbus.service.method(ADAPTER_IFACE, in_signature="", out_signature="",
                         sender_keyword="sender")
    def StopDiscovery(self, sender=None):
        if not self.powered:
            raise err_not_ready()
        if sender not in self.discovery:
            raise err_failed("No discovery started")
        del self.discovery[sender]
        self.update_discovering()

    @dbus.service.method(ADAPTER_IFACE, in_signature="a{sv}", out_signature="",
                         sender_keyword="sender")
    def SetDiscoveryFilter(self, filt, sender=None):
        if not self.powered:
            raise err_not_ready()
        parsed = parse_discovery_filter(filt) if len(filt) else None
        if sender in self.discovery:
            self.discovery[sender] = parsed
            GLib.idle_add(self._idle_refresh)
        elif parsed is None:
            self.filters.pop(sender, None)
        else:
            self.filters[sender] = parsed

    @dbus.service.method(ADAPTER_IFACE, in_signature="", out_signature="as")
    def GetDiscoveryFilters(self):
        return dbus_strings(DISCOVERY_FILTER_KEYS)

    @dbus.service.method(ADAPTER_IFACE, in_signature="o", out_signature="")
    def RemoveDevice(self, path):
        device = next((d for d in self.devices.values() if d.path == str(path)), None)
        if device is None:
            raise err_does_not_exist()
        if not self.powered:
            raise err_not_ready()
        if device.link:
            self.fake.drop_link(device.link, "device removed")
        self.remove_device(device)

    def remove_device(self, device):
        """Forget a device: its GATT mirror, its bond, its object."""
        if self.devices.get(device.address) is not device:
            return
        if device.link:
            self.fake.drop_link(device.link, "device removed")
        device.cancel_temporary_timer()
        device.clear_gatt()
        del self.devices[device.address]
        device.unpublish()

    # -- GattManager1 --------------------------------------------------------

    @dbus.service.method(GATT_MANAGER_IFACE, in_signature="oa{sv}", out_signature="",
                         sender_keyword="sender", async_callbacks=("reply", "error"))
    def RegisterApplication(self, path, options, sender=None, reply=None, error=None):
        key = (sender, str(path))
        if key in self.pending_apps or any((a.owner, a.path) == key for a in self.apps):
            error(err_already_exists())
            return
        self.pending_apps.add(key)

        # Like g_dbus_client: fetch the application's objects from its
        # ObjectManager at the given root, then validate them.
        def on_objects(objects):
            self.pending_apps.discard(key)
            if self.fake.adapters.get(self.name) is not self:
                error(err_failed("Failed to register application"))
                return
            try:
                app = self.fake.build_app(self, sender, str(path), objects)
            except BluezError as exc:
                log("RegisterApplication %s%s refused: %s" % (sender, path, exc))
                error(exc)
                return
            self.apps.append(app)
            self.fake.app_added(app)
            reply()

        def on_error(exc):
            self.pending_apps.discard(key)
            log("GetManagedObjects on %s%s failed: %s" % (sender, path, exc))
            error(err_failed("No object received"))

        log("-> %s %s GetManagedObjects()" % (sender, path))
        self.fake.bus.call_async(sender, str(path), OM_IFACE, "GetManagedObjects", "", (),
                                 on_objects, on_error, timeout=self.fake.args.call_timeout,
                                 byte_arrays=True)

    @dbus.service.method(GATT_MANAGER_IFACE, in_signature="o", out_signature="",
                         sender_keyword="sender")
    def UnregisterApplication(self, path, sender=None):
        app = next((a for a in self.apps if a.owner == sender and a.path == str(path)), None)
        if app is None:
            raise err_does_not_exist()
        self.fake.remove_app(app)

    # -- LEAdvertisingManager1 -----------------------------------------------

    @dbus.service.method(ADV_MANAGER_IFACE, in_signature="oa{sv}", out_signature="",
                         sender_keyword="sender", async_callbacks=("reply", "error"))
    def RegisterAdvertisement(self, path, options, sender=None, reply=None, error=None):
        path = str(path)
        if any(a.owner == sender and a.path == path for a in self.adverts):
            error(err_already_exists())
            return
        if len(self.adverts) >= self.fake.args.adv_instances:
            error(err_not_permitted("Maximum advertisements reached"))
            return
        adv = Advertisement(self, sender, path)
        # The instance is taken at once (src/advertising.c), before parsing.
        self.adverts.append(adv)
        self.update_adv_instances()

        def drop():
            if adv in self.adverts:
                self.adverts.remove(adv)
                self.update_adv_instances()

        def on_props(props):
            if adv not in self.adverts:
                error(err_failed("Failed to register advertisement"))
                return
            try:
                parse_advertisement(adv, props, self.fake.args.max_adv_len)
            except BluezError as exc:
                drop()
                error(exc)
                return
            if adv.timeout:
                adv.timer = GLib.timeout_add_seconds(adv.timeout, self._adv_timeout, adv)
            log("advertisement %s%s on %s: type=%s name=%r uuids=%s" % (
                sender, path, self.name, adv.type, adv.local_name, adv.service_uuids))
            self.fake.refresh_presence()
            reply()

        def on_error(exc):
            # Real BlueZ would wait for the object forever; failing is kinder.
            log("GetAll on %s%s failed: %s" % (sender, path, exc))
            drop()
            error(err_failed("Failed to register advertisement"))

        log("-> %s %s GetAll(%s)" % (sender, path, ADV_IFACE))
        self.fake.bus.call_async(sender, path, PROPS_IFACE, "GetAll", "s", (ADV_IFACE,),
                                 on_props, on_error, timeout=self.fake.args.call_timeout,
                                 byte_arrays=True)

    def _adv_timeout(self, adv):
        adv.timer = None
        if adv in self.adverts:
            log("advertisement %s%s timed out" % (adv.owner, adv.path))
            self.fake.remove_advert(adv, release=True)
        return False

    @dbus.service.method(ADV_MANAGER_IFACE, in_signature="o", out_signature="",
                         sender_keyword="sender")
    def UnregisterAdvertisement(self, path, sender=None):
        adv = next((a for a in self.adverts if a.owner == sender and a.path == str(path)), None)
        if adv is None:
            raise err_does_not_exist()
        self.fake.remove_advert(adv, release=False)


# --------------------------------------------------------------------------
# Remote devices and links
# --------------------------------------------------------------------------


class Link:
    """One LE connection between a central-side device object and the
    peripheral-side device object that represents the central."""

    def __init__(self, central_dev, periph_dev, mtu):
        self.central_dev = central_dev
        self.periph_dev = periph_dev
        self.mtu = mtu
        self.ccc = {}  # value handle -> CCC value on the peripheral's server
        self.alive = True

    @property
    def server(self):
        """The adapter whose GATT database the central talks to."""
        return self.central_dev.peer

    @property
    def security(self):
        return self.central_dev.bond_level or SEC_LOW


class Device(ExportedObject):
    """/org/bluez/hciN/dev_XX_XX_XX_XX_XX_XX: org.bluez.Device1.

    role "peripheral": on a central's adapter, represents a peer adapter that
    advertises (GATT objects are mirrored under it). role "central": on the
    peripheral's adapter, represents the central connected to it."""

    def __init__(self, fake, adapter, peer, role):
        super().__init__(fake, adapter.device_path(peer.address))
        self.adapter = adapter
        self.peer = peer
        self.address = peer.address
        self.role = role
        self.link = None
        self.bond_level = 0  # 0: not paired, else the security level of the bond
        self.temporary = True  # src/device.c: until Connect, Pair or Trusted
        self.temp_timer = None
        self.bonding = None
        self.connecting = False
        self.gatt = {}  # path -> Remote* object (role "peripheral")
        self.resolved_uuids = set()
        self.props = {DEVICE_IFACE: {
            "Address": dbus.String(self.address),
            "AddressType": dbus.String("public"),
            "Alias": dbus.String(self.address.replace(":", "-")),
            "Paired": dbus.Boolean(False),
            "Bonded": dbus.Boolean(False),
            "Trusted": dbus.Boolean(False),
            "Blocked": dbus.Boolean(False),
            "LegacyPairing": dbus.Boolean(False),
            "Connected": dbus.Boolean(False),
            "UUIDs": dbus_strings([]),
            "Adapter": dbus.ObjectPath(adapter.path),
            "ServicesResolved": dbus.Boolean(False),
        }}
        self.alias_set = False
        self.setters = {
            (DEVICE_IFACE, "Trusted"): (dbus.Boolean, self._set_trusted),
            (DEVICE_IFACE, "Blocked"): (dbus.Boolean, self._set_blocked),
            (DEVICE_IFACE, "Alias"): (dbus.String, self._set_alias),
        }

    # -- properties ----------------------------------------------------------

    @property
    def paired(self):
        return self.bond_level > 0

    @property
    def trusted(self):
        return bool(self.prop(DEVICE_IFACE, "Trusted"))

    def _set_trusted(self, value, sender):
        self.set_prop(DEVICE_IFACE, "Trusted", value)
        if value:
            self.temporary = False

    def _set_blocked(self, value, sender):
        self.set_prop(DEVICE_IFACE, "Blocked", value)
        if value and self.link:
            self.fake.drop_link(self.link, "device blocked")

    def _set_alias(self, value, sender):
        # An empty alias goes back to the name, else the address.
        self.alias_set = bool(str(value))
        if self.alias_set:
            self.set_prop(DEVICE_IFACE, "Alias", value)
        else:
            self.update_alias()

    def update_alias(self):
        if self.alias_set:
            return
        name = self.prop(DEVICE_IFACE, "Name")
        self.set_prop(DEVICE_IFACE, "Alias",
                      dbus.String(name if name else self.address.replace(":", "-")))

    def set_name(self, name):
        if name:
            self.set_prop(DEVICE_IFACE, "Name", dbus.String(name))
        self.update_alias()

    def set_bond(self, level):
        self.bond_level = level
        self.set_prop(DEVICE_IFACE, "Paired", dbus.Boolean(level > 0))
        self.set_prop(DEVICE_IFACE, "Bonded", dbus.Boolean(level > 0))
        if level:
            self.temporary = False
            self.cancel_temporary_timer()

    def update_uuids(self, adv_uuids):
        uuids = set(adv_uuids) | self.resolved_uuids
        self.set_prop(DEVICE_IFACE, "UUIDs", dbus_strings(sorted(uuids)))

    def apply_advertising(self, fields):
        """Update the properties an advertising report carries."""
        self.set_name(fields["name"])
        self.update_uuids(fields["uuids"])
        self.set_prop(DEVICE_IFACE, "RSSI", dbus.Int16(fields["rssi"]))
        if fields["tx_power"] is not None:
            self.set_prop(DEVICE_IFACE, "TxPower", dbus.Int16(fields["tx_power"]))
        if fields["appearance"] is not None:
            self.set_prop(DEVICE_IFACE, "Appearance", dbus.UInt16(fields["appearance"]))
        if fields["manufacturer_data"]:
            self.set_prop(DEVICE_IFACE, "ManufacturerData", dbus.Dictionary(
                {dbus.UInt16(k): dbus_bytes(v) for k, v in fields["manufacturer_data"].items()},
                signature="qv"))
        if fields["service_data"]:
            self.set_prop(DEVICE_IFACE, "ServiceData", dbus.Dictionary(
                {dbus.String(k): dbus_bytes(v) for k, v in fields["service_data"].items()},
                signature="sv"))

    # -- temporary devices ---------------------------------------------------

    def schedule_temporary_removal(self):
        """src/device.c: a temporary device goes TemporaryTimeout seconds after
        it stopped being seen or connected (0: at once)."""
        if not self.temporary or self.paired or self.link or self.temp_timer:
            return
        timeout = self.fake.args.temporary_timeout
        if timeout <= 0:
            self.adapter.remove_device(self)
        else:
            self.temp_timer = GLib.timeout_add(int(timeout * 1000), self._temporary_expired)

    def cancel_temporary_timer(self):
        if self.temp_timer:
            GLib.source_remove(self.temp_timer)
            self.temp_timer = None

    def _temporary_expired(self):
        self.temp_timer = None
        if self.temporary and not self.paired and not self.link:
            log("temporary device %s expired" % self.path)
            self.adapter.remove_device(self)
        return False

    # -- GATT mirror (role "peripheral") ------------------------------------

    def sync_gatt(self):
        """Mirror the peer's GATT database, as BlueZ's client does after
        discovery or a Service Changed indication: objects whose attribute
        went away are removed, new ones are added, in handle order."""
        desired = {}
        if self.role == "peripheral" and self.fake.adapters.get(self.peer.name) is self.peer:
            for service in self.peer.db.services:
                if service.claimed:
                    continue
                spath = "%s/service%04x" % (self.path, service.handle)
                desired[spath] = (RemoteService, service, self.path)
                for chrc in service.chrcs:
                    cpath = "%s/char%04x" % (spath, chrc.handle)
                    desired[cpath] = (RemoteChrc, chrc, spath)
                    for desc in chrc.all_descs():
                        desired["%s/desc%04x" % (cpath, desc.handle)] = (RemoteDesc, desc, cpath)
        for path in sorted(self.gatt, reverse=True):
            obj = self.gatt[path]
            if path not in desired or desired[path][1] is not obj.local:
                del self.gatt[path]
                obj.unpublish()
        for path, (cls, local, parent) in desired.items():
            if path not in self.gatt:
                obj = cls(self.fake, path, self, local, parent)
                self.gatt[path] = obj
                obj.publish()
        self.resolved_uuids = {s.uuid for s in self.peer.db.services if s.primary} \
            if desired else set()

    def clear_gatt(self):
        for path in sorted(self.gatt, reverse=True):
            self.gatt.pop(path).unpublish()

    def remote_chrcs(self):
        return [o for o in self.gatt.values() if isinstance(o, RemoteChrc)]

    # -- link events ---------------------------------------------------------

    def on_connected(self, link):
        self.link = link
        self.cancel_temporary_timer()
        self.set_prop(DEVICE_IFACE, "Connected", dbus.Boolean(True))

    def on_disconnected(self):
        self.link = None
        if self.role == "peripheral":
            for chrc in self.remote_chrcs():
                chrc.on_disconnected()
            cache = self.fake.args.gatt_cache
            if cache == "no" or (cache == "yes" and not self.paired):
                self.clear_gatt()
        self.set_prop(DEVICE_IFACE, "ServicesResolved", dbus.Boolean(False))
        self.set_prop(DEVICE_IFACE, "Connected", dbus.Boolean(False))
        if self.role == "central" or not self.fake.peer_is_advertising(self):
            self.schedule_temporary_removal()

    # -- Device1 -------------------------------------------------------------

    @dbus.service.method(DEVICE_IFACE, in_signature="", out_signature="",
                         sender_keyword="sender", async_callbacks=("reply", "error"))
    def Connect(self, sender=None, reply=None, error=None):
        if self.role == "central":
            # The central does not advertise, so there is nothing to connect to.
            if self.link:
                reply()
            else:
                error(err_failed("le-connection-abort-by-local"))
            return
        if self.link:
            reply()
            return
        if self.connecting:
            error(err_in_progress())
            return
        self.temporary = False
        try:
            self.fake.connect(self)
        except BluezError as exc:
            error(exc)
            return
        reply()

    @dbus.service.method(DEVICE_IFACE, in_signature="", out_signature="")
    def Disconnect(self):
        if self.link:
            self.fake.drop_link(self.link, "Disconnect() on %s" % self.path)

    @dbus.service.method(DEVICE_IFACE, in_signature="s", out_signature="")
    def ConnectProfile(self, uuid):
        raise err_not_supported()

    @dbus.service.method(DEVICE_IFACE, in_signature="s", out_signature="")
    def DisconnectProfile(self, uuid):
        raise err_not_supported()

    @dbus.service.method(DEVICE_IFACE, in_signature="", out_signature="",
                         sender_keyword="sender", async_callbacks=("reply", "error"))
    def Pair(self, sender=None, reply=None, error=None):
        if self.role == "central":
            # A peripheral asking its central to pair (SMP Security Request)
            # is not modelled.
            error(err_not_supported())
            return
        if self.bonding:
            error(err_in_progress())
            return
        if self.paired:
            error(err_already_exists())
            return
        self.temporary = False
        Pairing(self.fake, self, sender, reply, error).start()

    @dbus.service.method(DEVICE_IFACE, in_signature="", out_signature="")
    def CancelPairing(self):
        if not self.bonding:
            raise err_does_not_exist()
        self.bonding.cancel()


class Pairing:
    """One Device1.Pair() on a central-side device (src/device.c, with the SMP
    association model decided from the two agents' IO capabilities)."""

    def __init__(self, fake, device, sender, reply, error):
        self.fake = fake
        self.device = device
        self.sender = sender
        self.reply = reply
        self.error = error
        self.pending = {}  # label -> (agent, device path) awaiting an answer
        self.passkeys = {}
        self.done = False

    def start(self):
        self.device.bonding = self
        if not self.device.link:
            try:
                self.fake.connect(self.device)
            except BluezError:
                self.finish(bluez_error("ConnectionAttemptFailed", "Page Timeout"))
                return
        link = self.device.link
        periph_dev = link.periph_dev
        central_agent, periph_agent = self.choose_agents()
        init_cap = central_agent.capability if central_agent else "NoInputNoOutput"
        if periph_agent is None:
            log("pairing %s: no default agent on the peripheral side" % self.device.path)
            self.finish(bluez_error("AuthenticationFailed", "Authentication Failed"))
            return
        model = association_model(periph_agent.capability, init_cap)
        log("pairing %s: initiator %s, responder %s -> %s" % (
            self.device.path, init_cap, periph_agent.capability, model))
        self.level = SEC_MEDIUM if model == "JW" else SEC_FIPS
        passkey = dbus.UInt32(random.randint(0, 999999))
        if model == "JW":
            # JustWorksRepairing=never: a Just Works pairing with a device
            # already paired on the responder is refused without asking.
            if periph_dev.paired:
                self.finish(bluez_error("AuthenticationFailed", "Authentication Failed"))
                return
            self.ask("periph", periph_agent, periph_dev.path, "RequestAuthorization", "o",
                     (dbus.ObjectPath(periph_dev.path),))
        elif model == "NC":
            self.ask("periph", periph_agent, periph_dev.path, "RequestConfirmation", "ou",
                     (dbus.ObjectPath(periph_dev.path), passkey))
            self.ask("central", central_agent, self.device.path, "RequestConfirmation", "ou",
                     (dbus.ObjectPath(self.device.path), passkey))
        else:
            typists = {"PI": ["central"], "PR": ["periph"], "PB": ["central", "periph"]}[model]
            sides = {"central": (central_agent, self.device.path),
                     "periph": (periph_agent, periph_dev.path)}
            self.expected = int(passkey)
            for side, (agent, path) in sides.items():
                if side in typists:
                    self.ask(side, agent, path, "RequestPasskey", "o", (dbus.ObjectPath(path),))
                else:
                    self.fake.send_noreply(agent.owner, agent.path, AGENT_IFACE, "DisplayPasskey",
                                           "ouq", (dbus.ObjectPath(path), passkey, dbus.UInt16(0)))
            if model == "PB":
                self.expected = None  # both type: they must agree with each other

    def choose_agents(self):
        """The agents of the two "machines". One bluetoothd serves both here,
        so a process counts as being on the peripheral when it registered an
        application or advertisement on the peripheral's adapter.

        Central: pair_device() takes agent_get(sender): the caller's agent,
        else the default agent (with none, IO capability NoInputNoOutput).
        Peripheral: an incoming pairing uses the DEFAULT agent only
        (new_auth() -> agent_get(NULL)), so the peripheral's process must
        have called RequestDefaultAgent."""
        peripheral = self.device.peer
        periph_owners = {a.owner for a in peripheral.apps} | \
            {a.owner for a in peripheral.adverts}
        defaults = self.fake.default_agents
        central = self.fake.agents.get(self.sender)
        if central is None or central.owner in periph_owners:
            central = next((a for a in defaults if a.owner not in periph_owners), None)
        periph = next((a for a in defaults if a.owner in periph_owners), None)
        if periph is None:
            periph = next((a for a in defaults
                           if a.owner != self.sender and a is not central), None)
        return central, periph

    def ask(self, label, agent, device_path, method, signature, args):
        self.pending[label] = agent
        self.fake.counters[method] += 1
        log("-> agent %s %s %s%s" % (agent.owner, agent.path, method, fmt(args)))

        def on_reply(*result):
            if self.done:
                return
            self.pending.pop(label, None)
            if method == "RequestPasskey":
                if len(result) != 1 or not isinstance(result[0], dbus.UInt32):
                    self.fail_auth("AuthenticationFailed", "Authentication Failed")
                    return
                self.passkeys[label] = int(result[0])
            if not self.pending:
                self.check_passkeys()

        def on_error(exc):
            if self.done:
                return
            self.pending.pop(label, None)
            name = exc.get_dbus_name()
            log("pairing %s: agent %s answered %s" % (self.device.path, label, name))
            if name in (ERROR + "Rejected", ERROR + "Canceled"):
                self.fail_auth("AuthenticationRejected", "Authentication Rejected")
            else:
                self.fail_auth("AuthenticationFailed", "Authentication Failed")

        self.fake.bus.call_async(agent.owner, agent.path, AGENT_IFACE, method, signature, args,
                                 on_reply, on_error, timeout=self.fake.args.agent_timeout)

    def check_passkeys(self):
        values = set(self.passkeys.values())
        if self.passkeys and (len(values) != 1 or
                              (getattr(self, "expected", None) is not None and
                               values != {self.expected})):
            self.fail_auth("AuthenticationFailed", "Authentication Failed")
            return
        link = self.device.link
        if link is None:
            self.finish(bluez_error("AuthenticationCanceled", "Authentication Canceled"))
            return
        self.device.set_bond(self.level)
        link.periph_dev.set_bond(self.level)
        log("pairing %s: bonded at security level %d" % (self.device.path, self.level))
        self.finish(None)

    def fail_auth(self, name, message):
        # The other side's outstanding request is cancelled (Agent1.Cancel).
        for agent in self.pending.values():
            self.fake.send_noreply(agent.owner, agent.path, AGENT_IFACE, "Cancel", "", ())
        self.pending.clear()
        self.finish(bluez_error(name, message))

    def cancel(self):
        self.fail_auth("AuthenticationCanceled", "Authentication Canceled")

    def finish(self, exc):
        if self.done:
            return
        self.done = True
        self.device.bonding = None
        if exc is None:
            self.reply()
        else:
            self.error(exc)


# --------------------------------------------------------------------------
# Remote GATT objects (central side)
# --------------------------------------------------------------------------


class RemoteService(ExportedObject):
    def __init__(self, fake, path, device, local, parent):
        super().__init__(fake, path)
        self.device = device
        self.local = local
        self.props = {SERVICE_IFACE: {
            "UUID": dbus.String(local.uuid),
            "Device": dbus.ObjectPath(device.path),
            "Primary": dbus.Boolean(local.primary),
            "Includes": dbus.Array([], signature="o"),
        }}


class RemoteAttribute(ExportedObject):
    """Common part of a remote characteristic or descriptor: the cached Value
    and the read/write procedures of src/gatt-client.c."""

    iface = None

    def __init__(self, fake, path, device, local):
        super().__init__(fake, path)
        self.device = device
        self.local = local
        self.cache = b""
        self.read_op = None  # (offset, [(reply, error)])
        self.write_op = False

    def store(self, offset, data):
        """Update the cached value (gatt_db_attribute_write on the client db);
        every read or notification signals it, changed or not."""
        self.cache = data if offset == 0 else self.cache[:offset] + data
        self.set_prop(self.iface, "Value", dbus_bytes(self.cache), force=True)

    def do_read(self, options, reply, error):
        link = self.device.link
        if link is None:
            error(err_failed("Not connected"))
            return
        offset, _ = parse_options(options, allow_type=False)
        if self.read_op is not None:
            # Reads at the same offset share the pending request.
            if self.read_op[0] != offset:
                error(err_in_progress())
            else:
                self.read_op[1].append((reply, error))
            return
        self.read_op = (offset, [(reply, error)])

        def done(ecode, data):
            waiters = self.read_op[1]
            self.read_op = None
            if ecode:
                for _, err in waiters:
                    err(att_to_client_error(ecode))
                return
            self.store(offset, data)
            for ok, _ in waiters:
                ok(dbus_bytes(data))

        self.fake.att_read_long(link, self.local, offset, done)


class RemoteChrc(RemoteAttribute):
    iface = CHRC_IFACE

    def __init__(self, fake, path, device, local, parent):
        super().__init__(fake, path, device, local)
        self.notify_clients = {}  # sender -> True once the CCC write succeeded
        # Value always exists on a remote attribute, empty until read
        # (characteristic_value_exists() in gatt-client.c).
        self.props = {CHRC_IFACE: {
            "UUID": dbus.String(local.uuid),
            "Service": dbus.ObjectPath(parent),
            "Value": dbus_bytes(b""),
            "Flags": dbus_strings(local.client_flags()),
        }}
        if local.props & (PROP_NOTIFY | PROP_INDICATE):
            self.props[CHRC_IFACE]["Notifying"] = dbus.Boolean(False)
        if local.props & PROP_WRITE_WITHOUT_RESP:
            self.props[CHRC_IFACE]["WriteAcquired"] = dbus.Boolean(False)
        if local.props & PROP_NOTIFY:
            self.props[CHRC_IFACE]["NotifyAcquired"] = dbus.Boolean(False)
        if device.link:
            self.props[CHRC_IFACE]["MTU"] = dbus.UInt16(device.link.mtu)

    @dbus.service.method(CHRC_IFACE, in_signature="a{sv}", out_signature="ay",
                         async_callbacks=("reply", "error"))
    def ReadValue(self, options, reply=None, error=None):
        try:
            self.do_read(options, reply, error)
        except BluezError as exc:
            error(exc)

    @dbus.service.method(CHRC_IFACE, in_signature="aya{sv}", out_signature="",
                         byte_arrays=True, async_callbacks=("reply", "error"))
    def WriteValue(self, value, options, reply=None, error=None):
        try:
            self._write(bytes(value), options, reply, error)
        except BluezError as exc:
            error(exc)

    def _write(self, value, options, reply, error):
        link = self.device.link
        if link is None:
            raise err_failed("Not connected")
        if self.write_op:
            raise err_in_progress()
        offset, wtype = parse_options(options, allow_type=True)
        kind = wtype.lower() if wtype is not None else None
        local = self.local
        # The procedure choice of characteristic_write_value() in gatt-client.c.
        if (kind is None and local.ext_props & EXT_PROP_RELIABLE_WRITE) or kind == "reliable":
            procedure = "long"
        elif (kind is None and local.props & PROP_WRITE) or kind == "request":
            procedure = "request" if len(value) <= link.mtu - 3 and not offset else "long"
        elif (kind is not None and kind != "command") or offset or \
                (kind is None and not local.props & PROP_WRITE_WITHOUT_RESP):
            raise err_not_supported()
        else:
            procedure = "command"
        if procedure == "command":
            if len(value) > link.mtu - 3:
                raise err_failed("Failed to initiate write")
            reply()  # a Write Command has no response on the air
            self.fake.att_write(link, local, value, 0, "command", lambda ecode: None)
            return
        self.write_op = True

        def done(ecode):
            self.write_op = False
            if ecode:
                error(att_to_client_error(ecode))
            else:
                reply()

        if procedure == "request":
            self.fake.att_write(link, local, value, 0, "request", done)
        else:
            self.fake.att_long_write(link, local, value, offset, done)

    @dbus.service.method(CHRC_IFACE, in_signature="", out_signature="",
                         sender_keyword="sender", async_callbacks=("reply", "error"))
    def StartNotify(self, sender=None, reply=None, error=None):
        local = self.local
        if not local.props & (PROP_NOTIFY | PROP_INDICATE):
            error(err_not_supported())
            return
        if sender in self.notify_clients:
            if self.notify_clients[sender]:
                reply()
            else:
                error(err_in_progress())
            return
        link = self.device.link
        if link is None:
            # Registered when the device connects again (gatt-client.c).
            self.notify_clients[sender] = False
            reply()
            return
        self.notify_clients[sender] = False
        ecode = self.subscribe(link)
        if ecode:
            del self.notify_clients[sender]
            error(att_to_client_error(ecode))
            return
        self.notify_clients[sender] = True
        self.update_notifying()
        reply()

    def subscribe(self, link):
        """Write the CCC on the server if this link has not done it yet."""
        if link.ccc.get(self.local.value_handle):
            return 0
        value = 1 if self.local.props & PROP_NOTIFY else 2
        return self.fake.ccc_write(link, self.local, value)

    @dbus.service.method(CHRC_IFACE, in_signature="", out_signature="",
                         sender_keyword="sender")
    def StopNotify(self, sender=None):
        if sender not in self.notify_clients:
            raise err_failed("No notify session started")
        self.drop_notify_client(sender)

    def drop_notify_client(self, sender):
        self.notify_clients.pop(sender, None)
        link = self.device.link
        if not self.notify_clients and link and link.ccc.get(self.local.value_handle):
            self.fake.ccc_write(link, self.local, 0)
        self.update_notifying()

    def update_notifying(self):
        if "Notifying" in self.props[CHRC_IFACE]:
            on = self.device.link is not None and any(self.notify_clients.values())
            self.set_prop(CHRC_IFACE, "Notifying", dbus.Boolean(on))

    def on_connected(self, link):
        self.set_prop(CHRC_IFACE, "MTU", dbus.UInt16(link.mtu))
        if self.notify_clients and not self.subscribe(link):
            for sender in self.notify_clients:
                self.notify_clients[sender] = True
        self.update_notifying()

    def on_disconnected(self):
        self.drop_prop(CHRC_IFACE, "MTU")
        for sender in self.notify_clients:
            self.notify_clients[sender] = False
        self.update_notifying()

    @dbus.service.method(CHRC_IFACE, in_signature="a{sv}", out_signature="hq")
    def AcquireWrite(self, options):
        raise err_not_supported()

    @dbus.service.method(CHRC_IFACE, in_signature="a{sv}", out_signature="hq")
    def AcquireNotify(self, options):
        raise err_not_supported()


class RemoteDesc(RemoteAttribute):
    iface = DESC_IFACE

    def __init__(self, fake, path, device, local, parent):
        super().__init__(fake, path, device, local)
        self.props = {DESC_IFACE: {
            "UUID": dbus.String(local.uuid),
            "Characteristic": dbus.ObjectPath(parent),
            "Value": dbus_bytes(b""),
        }}

    @dbus.service.method(DESC_IFACE, in_signature="a{sv}", out_signature="ay",
                         async_callbacks=("reply", "error"))
    def ReadValue(self, options, reply=None, error=None):
        try:
            self.do_read(options, reply, error)
        except BluezError as exc:
            error(exc)

    @dbus.service.method(DESC_IFACE, in_signature="aya{sv}", out_signature="",
                         byte_arrays=True, async_callbacks=("reply", "error"))
    def WriteValue(self, value, options, reply=None, error=None):
        try:
            link = self.device.link
            if link is None:
                raise err_failed("Not connected")
            if self.write_op:
                raise err_in_progress()
            offset, _ = parse_options(options, allow_type=False)
            if self.local.uuid == UUID_CCC:
                # gatt-client.c: the CCC is driven by StartNotify/StopNotify only.
                raise err_not_permitted("Write not permitted")
        except BluezError as exc:
            error(exc)
            return
        value = bytes(value)
        self.write_op = True

        def done(ecode):
            self.write_op = False
            if ecode:
                error(att_to_client_error(ecode))
            else:
                reply()

        if len(value) <= link.mtu - 3 and not offset:
            self.fake.att_write(link, self.local, value, 0, "request", done)
        else:
            self.fake.att_long_write(link, self.local, value, offset, done)


# --------------------------------------------------------------------------
# Test control interface
# --------------------------------------------------------------------------


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


# --------------------------------------------------------------------------
# The fake daemon
# --------------------------------------------------------------------------


class Fake:
    def __init__(self, bus, args):
        self.bus = bus
        self.args = args
        self.unique_name = bus.get_unique_name()
        self.mtu = args.mtu
        self.split_writes = args.split_writes
        self.objects = {}
        self.adapters = collections.OrderedDict()
        self.agents = {}
        self.default_agents = []
        self.links = []
        self.counters = collections.Counter()
        self.root = Root(self)
        self.agent_manager = AgentManager(self)
        self.agent_manager.publish()
        self.control = Control(self)
        for i in range(args.adapters):
            self.add_adapter("hci%d" % i)
        bus.add_signal_receiver(self.on_name_owner_changed, signal_name="NameOwnerChanged",
                                dbus_interface="org.freedesktop.DBus",
                                bus_name="org.freedesktop.DBus", path="/org/freedesktop/DBus")
        bus.add_signal_receiver(self.on_properties_changed, signal_name="PropertiesChanged",
                                dbus_interface=PROPS_IFACE, sender_keyword="sender",
                                path_keyword="path", byte_arrays=True)
        bus.add_signal_receiver(self.on_interfaces_removed, signal_name="InterfacesRemoved",
                                dbus_interface=OM_IFACE, sender_keyword="sender",
                                path_keyword="path")

    # -- plumbing ------------------------------------------------------------

    def send_noreply(self, dest, path, iface, method, signature, args):
        """A call that expects no reply (g_dbus_proxy_method_call without a
        callback: StartNotify, StopNotify, Confirm, Release, Cancel...)."""
        log("-> %s %s %s.%s%s (no reply)" % (dest, path, iface, method, fmt(args)))
        msg = dbus.lowlevel.MethodCallMessage(dest, path, iface, method)
        if signature:
            msg.append(signature=signature, *args)
        msg.set_no_reply(True)
        self.bus.send_message(msg)

    def app_call(self, attr, method, signature, args, on_reply, on_error):
        iface = CHRC_IFACE if isinstance(attr, LocalChrc) else DESC_IFACE
        self.counters[method] += 1
        log("-> %s %s %s.%s%s" % (attr.app.owner, attr.path, iface, method, fmt(args)))
        self.bus.call_async(attr.app.owner, attr.path, iface, method, signature, args,
                            on_reply, on_error, timeout=self.args.call_timeout,
                            byte_arrays=True)

    def server_options(self, link, offset=0, prep_authorize=False):
        """append_options() of src/gatt-database.c, in its order: 'offset' only
        when non-zero, no 'type' key (BlueZ 5.66 does not send one)."""
        opts = [("device", dbus.ObjectPath(link.periph_dev.path))]
        if offset:
            opts.append(("offset", dbus.UInt16(offset)))
        opts.append(("link", dbus.String("LE")))
        if prep_authorize:
            opts.append(("prepare-authorize", dbus.Boolean(True)))
        opts.append(("mtu", dbus.UInt16(link.mtu)))
        return dbus.Dictionary(collections.OrderedDict(opts), signature="sv")

    # -- adapters ------------------------------------------------------------

    def add_adapter(self, name):
        adapter = Adapter(self, name)
        self.adapters[name] = adapter
        adapter.publish()
        # Devices kept for this address (paired ones survive an unplugged
        # adapter) now stand for the new adapter.
        for other in self.adapters.values():
            device = other.devices.get(adapter.address)
            if device is not None:
                device.peer = adapter
        self.refresh_presence()
        return adapter

    def remove_adapter(self, adapter):
        """The adapter goes away: its links, devices, registrations and the
        devices that represent it elsewhere."""
        log("removing adapter %s" % adapter.name)
        for link in list(self.links):
            if adapter in (link.central_dev.adapter, link.periph_dev.adapter):
                self.drop_link(link, "adapter removed")
        for adv in list(adapter.adverts):
            self.remove_advert(adv, release=True)  # btd_adv_manager_destroy releases them
        for app in list(adapter.apps):
            self.remove_app(app)
        for device in list(adapter.devices.values()):
            adapter.remove_device(device)
        del self.adapters[adapter.name]
        for other in self.adapters.values():
            device = other.devices.get(adapter.address)
            if device is not None:
                device.sync_gatt()
                if not device.paired:
                    other.remove_device(device)
        adapter.unpublish()

    # -- presence of advertisers on scanners ---------------------------------

    def advertising_fields(self, peripheral):
        """What a scanner learns about `peripheral` from its advertisements."""
        adverts = peripheral.visible_adverts()
        if not adverts:
            return None
        name = next((a.local_name for a in adverts if a.local_name), None)
        if name is None and any("local-name" in a.includes for a in adverts):
            name = peripheral.alias
        if name is not None:
            # The scan response holds 29 bytes of name (shortened, not refused).
            name = name.encode("utf-8")[:29].decode("utf-8", "ignore")
        uuids, mdata, sdata = [], {}, {}
        tx_power = appearance = None
        for adv in adverts:
            uuids += [u for u in adv.service_uuids if u not in uuids]
            mdata.update(adv.manufacturer_data)
            sdata.update(adv.service_data)
            if "tx-power" in adv.includes:
                tx_power = adv.tx_power if adv.tx_power is not None else 0
            if adv.appearance is not None:
                appearance = adv.appearance
        return {"address": peripheral.address, "name": name, "uuids": uuids, "rssi": -50,
                "tx_power": tx_power, "appearance": appearance, "manufacturer_data": mdata,
                "service_data": sdata,
                "connectable": any(a.connectable() for a in adverts)}

    def peer_is_advertising(self, device):
        return self.adapters.get(device.peer.name) is device.peer and \
            bool(device.peer.visible_adverts())

    def refresh_presence(self):
        """Create or update the devices that scanning adapters see, and let the
        ones whose advertiser went quiet expire."""
        for scanner in self.adapters.values():
            for peripheral in self.adapters.values():
                if peripheral is scanner:
                    continue
                fields = self.advertising_fields(peripheral)
                device = scanner.devices.get(peripheral.address)
                if device is not None and device.role != "peripheral":
                    continue
                if fields is None:
                    if device is not None and not device.link:
                        device.schedule_temporary_removal()
                    continue
                if device is not None:
                    device.cancel_temporary_timer()
                if not (scanner.powered and scanner.discovery and
                        scanner.matches_discovery(fields)):
                    continue
                if device is None:
                    device = Device(self, scanner, peripheral, "peripheral")
                    device.apply_advertising(fields)
                    scanner.devices[peripheral.address] = device
                    device.publish()
                else:
                    device.apply_advertising(fields)

    # -- connections -----------------------------------------------------------

    def connect(self, device):
        """Central-side Device1.Connect(): the link comes up, the peripheral
        sees the central, services are discovered, ServicesResolved."""
        central, peripheral = device.adapter, device.peer
        if not central.powered:
            raise err_failed("le-connection-adapter-not-powered")
        fields = self.advertising_fields(peripheral) if \
            self.adapters.get(peripheral.name) is peripheral else None
        if fields is None or not fields["connectable"]:
            raise err_failed("le-connection-abort-by-local")
        periph_dev = peripheral.devices.get(central.address)
        if periph_dev is None:
            periph_dev = Device(self, peripheral, central, "central")
            periph_dev.set_name(central.alias)
            peripheral.devices[central.address] = periph_dev
            link = Link(device, periph_dev, self.mtu)
            periph_dev.link = link
            periph_dev.props[DEVICE_IFACE]["Connected"] = dbus.Boolean(True)
            periph_dev.publish()
        else:
            link = Link(device, periph_dev, self.mtu)
        log("link up: %s <-> %s (MTU %d)" % (device.path, periph_dev.path, link.mtu))
        self.links.append(link)
        device.on_connected(link)
        periph_dev.on_connected(link)
        device.sync_gatt()
        for chrc in device.remote_chrcs():
            chrc.on_connected(link)
        device.update_uuids(fields["uuids"])
        device.set_prop(DEVICE_IFACE, "ServicesResolved", dbus.Boolean(True))
        return link

    def drop_link(self, link, reason):
        if not link.alive:
            return
        link.alive = False
        log("link down: %s <-> %s (%s)" % (link.central_dev.path, link.periph_dev.path, reason))
        self.links.remove(link)
        # The server forgets this connection's CCC state (btd_gatt_database_
        # att_disconnected), which may end the application's notifications.
        for handle, value in list(link.ccc.items()):
            if value:
                attr = link.server.db.find(handle)
                if attr is not None:
                    self.ccc_disable(attr)
        link.ccc.clear()
        if link.central_dev.bonding:
            link.central_dev.bonding.fail_auth("AuthenticationCanceled", "Authentication Canceled")
        link.central_dev.on_disconnected()
        link.periph_dev.on_disconnected()

    # -- the ATT server of the peripheral --------------------------------------

    def att_read(self, link, attr, offset, done):
        """One Read / Read Blob request on the peripheral's server."""
        ecode = check_permissions(attr.perm, PERM_READ_MASK, link.security)
        if ecode:
            log("read of handle 0x%04x refused: ATT 0x%02x" % (self.handle_of(attr), ecode))
            done(ecode, None)
            return
        if attr.app is None:
            value = self.builtin_value(link, attr)
            if offset > len(value):
                done(ATT_INVALID_OFFSET, None)
            else:
                done(0, value[offset:])
            return

        def on_reply(*result):
            data = to_bytes(result[0]) if len(result) == 1 else None
            if data is None:
                done(ATT_REQUEST_NOT_SUPPORTED, None)  # not an 'ay' reply
            else:
                done(0, data[:ATT_MAX_VALUE_LEN])

        def on_error(exc):
            done(app_error_to_att(exc.get_dbus_name(), exc.get_dbus_message(),
                                  ATT_READ_NOT_PERMITTED), None)

        self.app_call(attr, "ReadValue", "a{sv}", (self.server_options(link, offset),),
                      on_reply, on_error)

    def att_read_long(self, link, attr, offset, done):
        """bt_gatt_client_read_long_value(): Read, then Read Blob while the
        response fills the MTU."""
        chunks = []

        def step(position):
            def got(ecode, data):
                if not link.alive:
                    done(OP_CANCELLED, None)
                    return
                if ecode:
                    done(ecode, None)
                    return
                piece = data[: link.mtu - 1]
                chunks.append(piece)
                nxt = position + len(piece)
                if len(piece) == link.mtu - 1 and nxt < ATT_MAX_VALUE_LEN:
                    step(nxt)
                else:
                    done(0, b"".join(chunks))

            self.att_read(link, attr, position, got)

        step(offset)

    def att_write(self, link, attr, value, offset, kind, done):
        """A Write Request ("request"), Write Command ("command") or the
        Execute Write of a long write ("execute") reaching the server."""
        ecode = check_permissions(attr.perm, PERM_WRITE_MASK, link.security)
        if not ecode:
            if len(value) > ATT_MAX_VALUE_LEN or offset + len(value) > ATT_MAX_VALUE_LEN:
                ecode = ATT_INVALID_VALUE_LEN
            elif offset > ATT_MAX_VALUE_LEN:
                ecode = ATT_INVALID_OFFSET
        if ecode:
            # A refused Write Command is dropped silently: it has no response.
            log("write to handle 0x%04x refused: ATT 0x%02x" % (self.handle_of(attr), ecode))
            done(ecode)
            return
        if attr.app is None:
            if isinstance(attr, LocalChrc):
                attr.value = attr.value[:offset] + value
            done(0)
            return
        # gatt-database.c chrc_write_cb(): for a characteristic with the
        # write-without-response flag the application's reply is not waited
        # for (and its errors are lost), whatever the ATT procedure.
        no_reply = isinstance(attr, LocalChrc) and bool(attr.props & PROP_WRITE_WITHOUT_RESP)
        if self.split_writes and kind != "command":
            size = self.split_writes
            pieces = [(offset + i, value[i:i + size]) for i in range(0, len(value), size)] or \
                [(offset, b"")]
        else:
            pieces = [(offset, value)]

        def send(index):
            if index == len(pieces):
                done(0)
                return
            position, piece = pieces[index]
            args = (dbus_bytes(piece), self.server_options(link, position))
            if no_reply:
                self.counters["WriteValue"] += 1
                self.send_noreply(attr.app.owner, attr.path,
                                  CHRC_IFACE if isinstance(attr, LocalChrc) else DESC_IFACE,
                                  "WriteValue", "aya{sv}", args)
                send(index + 1)
                return

            def on_reply(*result):
                if result:
                    done(ATT_REQUEST_NOT_SUPPORTED)  # WriteValue must return nothing
                else:
                    send(index + 1)

            def on_error(exc):
                done(app_error_to_att(exc.get_dbus_name(), exc.get_dbus_message(),
                                      ATT_WRITE_NOT_PERMITTED))

            self.app_call(attr, "WriteValue", "aya{sv}", args, on_reply, on_error)

        send(0)

    def att_long_write(self, link, attr, value, offset, done):
        """Prepare Write requests of MTU-5 bytes, then Execute Write: the
        server merges contiguous prepared data (store_prep_data() in
        src/shared/gatt-server.c), so the application gets ONE WriteValue."""
        ecode = check_permissions(attr.perm, PERM_WRITE_MASK, link.security)
        if ecode:
            log("prepare write to handle 0x%04x refused: ATT 0x%02x" % (
                self.handle_of(attr), ecode))
            done(ecode)
            return
        chunk = link.mtu - 5
        first = value[:chunk]
        self.counters["PrepareWrite"] += (len(value) + chunk - 1) // chunk or 1
        if attr.app is not None and attr.req_prep_authorization and \
                not link.central_dev.trusted:
            # The "authorize" flag: the first prepared chunk is shown to the
            # application with "prepare-authorize" before anything is queued.
            def on_reply(*result):
                self.att_write(link, attr, value, offset, "execute", done)

            def on_error(exc):
                done(app_error_to_att(exc.get_dbus_name(), exc.get_dbus_message(),
                                      ATT_WRITE_NOT_PERMITTED))

            self.app_call(attr, "WriteValue", "aya{sv}",
                          (dbus_bytes(first), self.server_options(link, offset, True)),
                          on_reply, on_error)
            return
        self.att_write(link, attr, value, offset, "execute", done)

    def ccc_write(self, link, chrc, value):
        """The central writes a characteristic's CCC (ccc_write_cb()). Returns an
        ATT error code, 0 on success."""
        ccc = chrc.ccc
        if ccc is None:
            return ATT_UNLIKELY
        ecode = check_permissions(ccc.perm, PERM_WRITE_MASK, link.security)
        if ecode:
            log("CCC write on handle 0x%04x refused: ATT 0x%02x" % (ccc.handle, ecode))
            return ecode
        if value > 2 or (value == 1 and not chrc.props & PROP_NOTIFY) or \
                (value == 2 and not chrc.props & PROP_INDICATE):
            return BT_ERROR_CCC_IMPROPERLY_CONFIGURED
        old = link.ccc.get(chrc.value_handle, 0)
        link.ccc[chrc.value_handle] = value
        if value and not old:
            chrc.ntfy_cnt += 1
            if chrc.ntfy_cnt == 1 and chrc.app is not None:
                self.counters["StartNotify"] += 1
                self.send_noreply(chrc.app.owner, chrc.path, CHRC_IFACE, "StartNotify", "", ())
        elif old and not value:
            self.ccc_disable(chrc)
        return 0

    def ccc_disable(self, chrc):
        if chrc.ntfy_cnt == 0:
            return
        chrc.ntfy_cnt -= 1
        if chrc.ntfy_cnt == 0 and chrc.app is not None and chrc.app in chrc.app.adapter.apps:
            self.counters["StopNotify"] += 1
            self.send_noreply(chrc.app.owner, chrc.path, CHRC_IFACE, "StopNotify", "", ())

    def builtin_value(self, link, attr):
        if isinstance(attr, LocalDesc):
            if attr.kind == "ccc":
                value = link.ccc.get(attr.chrc.value_handle, 0)
                return bytes([value & 0xFF, value >> 8])
            return attr.value
        if attr.uuid == parse_uuid("2a00"):
            return link.server.alias.encode("utf-8")
        return attr.value

    @staticmethod
    def handle_of(attr):
        return attr.value_handle if isinstance(attr, LocalChrc) else attr.handle

    # -- notifications ----------------------------------------------------------

    def on_properties_changed(self, iface, changed, invalidated, sender=None, path=None):
        if sender == self.unique_name or iface != CHRC_IFACE:
            return
        if "Value" in changed:
            value = to_bytes(changed["Value"])
            if value is None:
                log("malformed Value from %s %s ignored" % (sender, path))
                return
        elif "Value" in invalidated:
            # gdbus/client.c reports an invalidated property without a value
            # and gatt-database.c then notifies ZERO bytes: with sd-bus, the
            # property must be SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE.
            log("WARNING: %s %s invalidated Value instead of sending it: BlueZ "
                "notifies an empty value" % (sender, path))
            value = b""
        else:
            return
        for adapter in self.adapters.values():
            for app in adapter.apps:
                if app.owner != sender:
                    continue
                chrc = app.chrc_by_path(path)
                if chrc is not None:
                    self.notify(adapter, chrc, value[:ATT_MAX_VALUE_LEN])

    def notify(self, adapter, chrc, value):
        """send_notification_to_devices(): every link that enabled the CCC gets
        the value, cut to MTU-3 like an ATT notification."""
        for link in self.links:
            if link.server is not adapter:
                continue
            mode = link.ccc.get(chrc.value_handle, 0)
            if not mode:
                continue
            data = value[: link.mtu - 3]
            remote = link.central_dev.gatt.get(
                "%s/service%04x/char%04x" % (link.central_dev.path, chrc.service.handle,
                                             chrc.handle))
            self.counters["Notifications" if mode == 1 else "Indications"] += 1
            log("%s %d bytes to %s" % ("notify" if mode == 1 else "indicate", len(data),
                                      link.central_dev.path))
            if remote is not None:
                remote.store(0, data)
            if mode == 2:
                # The client confirms; BlueZ then calls Confirm() on the app.
                self.send_noreply(chrc.app.owner, chrc.path, CHRC_IFACE, "Confirm", "", ())

    # -- applications -----------------------------------------------------------

    def build_app(self, adapter, owner, path, objects):
        """Validate an application's objects like client_ready_cb() and
        database_add_app() of src/gatt-database.c; returns the App."""
        if not objects:
            raise err_failed("No object received")
        app = App(adapter, owner, path)
        invalid = err_failed("No valid service object found")
        services = collections.OrderedDict()
        chrcs = collections.OrderedDict()

        for obj_path, ifaces in objects.items():
            if PROFILE_IFACE in ifaces:
                uuids = ifaces[PROFILE_IFACE].get("UUIDs")
                if not isinstance(uuids, dbus.Array) or not len(uuids):
                    raise invalid
                app.profiles.append(str(obj_path))
        for obj_path, ifaces in objects.items():
            if SERVICE_IFACE in ifaces:
                services[str(obj_path)] = (LocalService(None, app=app, path=str(obj_path)),
                                           ifaces[SERVICE_IFACE])
        for obj_path, ifaces in objects.items():
            if CHRC_IFACE not in ifaces:
                continue
            props = ifaces[CHRC_IFACE]
            service_path = props.get("Service")
            if not isinstance(service_path, dbus.ObjectPath) or str(service_path) not in services:
                log("characteristic %s: no service of this application" % obj_path)
                raise invalid
            flags = props.get("Flags")
            if not isinstance(flags, dbus.Array) or not len(flags) or \
                    any(str(f) not in CHRC_FLAGS for f in flags):
                log("characteristic %s: invalid Flags %s" % (obj_path, fmt(flags)))
                raise invalid
            service = services[str(service_path)][0]
            chrc = LocalChrc(service, None, [str(f) for f in flags], app=app, path=str(obj_path))
            for prop, method, used in (("WriteAcquired", "AcquireWrite", "WriteValue"),
                                       ("NotifyAcquired", "AcquireNotify", "StartNotify")):
                if prop in props:
                    # BlueZ would then pass file descriptors with Acquire*;
                    # the fake keeps to the method calls.
                    log("WARNING: %s exposes %s: real BlueZ would call %s on it, the fake "
                        "uses %s" % (obj_path, prop, method, used))
                    app.warnings.append("%s has %s (Acquire* is not emulated)" % (obj_path, prop))
            service.chrcs.append(chrc)
            chrcs[str(obj_path)] = (chrc, props)
        descs = []
        for obj_path, ifaces in objects.items():
            if DESC_IFACE not in ifaces:
                continue
            props = ifaces[DESC_IFACE]
            chrc_path = props.get("Characteristic")
            if not isinstance(chrc_path, dbus.ObjectPath) or str(chrc_path) not in chrcs:
                log("descriptor %s: no characteristic of this application" % obj_path)
                raise invalid
            flags = props.get("Flags")
            if not isinstance(flags, dbus.Array) or not len(flags) or \
                    any(str(f) not in DESC_FLAGS for f in flags):
                log("descriptor %s: invalid Flags %s" % (obj_path, fmt(flags)))
                raise invalid
            chrc = chrcs[str(chrc_path)][0]
            desc = LocalDesc(chrc, None, [str(f) for f in flags], app=app, path=str(obj_path))
            chrc.descs.append(desc)
            descs.append((desc, props))
        if (not services and not app.profiles):
            raise invalid

        # database_add_app(): UUIDs, Primary, Includes, Handle.
        entry = err_failed("Failed to create entry in database")

        def uuid_of(props, what, name):
            uuid = parse_uuid(props.get("UUID"))
            if uuid is None:
                log("%s %s: invalid UUID %s" % (what, name, fmt(props.get("UUID"))))
                raise entry
            return uuid

        def handle_prop_of(props):
            handle = props.get("Handle")
            if handle is None:
                return 0, False
            if not isinstance(handle, dbus.UInt16):
                raise entry
            return int(handle), True

        for service_path, (service, props) in services.items():
            service.uuid = uuid_of(props, "service", service_path)
            if service.uuid in (UUID_GAP, UUID_GATT):
                log("service %s: GAP and GATT services belong to BlueZ" % service_path)
                raise entry
            primary = props.get("Primary")
            if not isinstance(primary, dbus.Boolean):
                log("service %s: Primary missing or not a boolean" % service_path)
                raise entry
            service.primary = bool(primary)
            includes = props.get("Includes", dbus.Array([], signature="o"))
            if not isinstance(includes, dbus.Array):
                raise entry
            service.includes = [str(p) for p in includes]
            service.wanted_handle, service.handle_prop = handle_prop_of(props)
        for chrc_path, (chrc, props) in chrcs.items():
            chrc.uuid = uuid_of(props, "characteristic", chrc_path)
            _, chrc.handle_prop = handle_prop_of(props)
        for desc, props in descs:
            desc.uuid = uuid_of(props, "descriptor", desc.path)
            _, desc.handle_prop = handle_prop_of(props)

        added = []
        for service, _ in services.values():
            if not adapter.db.add_service(service, service.wanted_handle):
                for done in added:
                    adapter.db.remove_service(done)
                log("no room for service %s at handle 0x%04x" % (service.path,
                                                                  service.wanted_handle))
                raise entry
            added.append(service)
            app.services.append(service)
        return app

    def app_added(self, app):
        """After RegisterApplication: Handle properties are written back, the
        adapter's UUIDs change and connected centrals see Service Changed."""
        log("application %s%s registered on %s:" % (app.owner, app.path, app.adapter.name))
        for service in app.services:
            log("  service %s %s handles 0x%04x-0x%04x" % (service.path, service.uuid,
                                                          service.handle, service.end_handle))
            attrs = [(service, service.handle, SERVICE_IFACE)]
            for chrc in service.chrcs:
                log("    char %s %s value handle 0x%04x flags %s" % (
                    chrc.path, chrc.uuid, chrc.value_handle, ",".join(chrc.flags)))
                attrs.append((chrc, chrc.value_handle, CHRC_IFACE))
                attrs += [(d, d.handle, DESC_IFACE) for d in chrc.descs]
            for attr, handle, iface in attrs:
                if attr.handle_prop:
                    self.send_noreply(app.owner, attr.path, PROPS_IFACE, "Set", "ssv",
                                      (iface, "Handle", dbus.UInt16(handle)))
        self.database_changed(app.adapter)

    def remove_app(self, app):
        adapter = app.adapter
        if app not in adapter.apps:
            return
        log("application %s%s removed from %s" % (app.owner, app.path, adapter.name))
        adapter.apps.remove(app)
        for service in app.services:
            adapter.db.remove_service(service)
            for link in self.links:
                if link.server is adapter:
                    for chrc in service.chrcs:
                        link.ccc.pop(chrc.value_handle, None)
        self.database_changed(adapter)

    def remove_service(self, app, service_path):
        """The application's ObjectManager sent InterfacesRemoved for a service:
        BlueZ drops that service at once (proxy_removed_cb())."""
        service = next((s for s in app.services if s.path == service_path), None)
        if service is None:
            return
        log("service %s of %s%s removed by the application" % (service_path, app.owner,
                                                                 app.path))
        app.services.remove(service)
        app.adapter.db.remove_service(service)
        self.database_changed(app.adapter)

    def database_changed(self, adapter):
        adapter.update_uuids()
        for link in list(self.links):
            if link.server is adapter:
                link.central_dev.sync_gatt()
                for chrc in link.central_dev.remote_chrcs():
                    chrc.on_connected(link)

    def remove_advert(self, adv, release):
        adapter = adv.adapter
        if adv not in adapter.adverts:
            return
        adapter.adverts.remove(adv)
        if adv.timer:
            GLib.source_remove(adv.timer)
            adv.timer = None
        log("advertisement %s%s removed from %s" % (adv.owner, adv.path, adapter.name))
        if release:
            self.send_noreply(adv.owner, adv.path, ADV_IFACE, "Release", "", ())
        adapter.update_adv_instances()
        self.refresh_presence()

    def drop_agent(self, agent):
        self.agents.pop(agent.owner, None)
        if agent in self.default_agents:
            self.default_agents.remove(agent)

    # -- clients going away -------------------------------------------------

    def on_name_owner_changed(self, name, old_owner, new_owner):
        if not name.startswith(":") or new_owner:
            return
        self.client_vanished(str(name))

    def client_vanished(self, owner):
        touched = False
        for adapter in list(self.adapters.values()):
            for app in [a for a in adapter.apps if a.owner == owner]:
                self.remove_app(app)
                touched = True
            for adv in [a for a in adapter.adverts if a.owner == owner]:
                self.remove_advert(adv, release=False)
                touched = True
            if owner in adapter.discovery:
                del adapter.discovery[owner]
                adapter.update_discovering()
            adapter.filters.pop(owner, None)
            for device in list(adapter.devices.values()):
                for chrc in device.remote_chrcs():
                    if owner in chrc.notify_clients:
                        chrc.drop_notify_client(owner)
        agent = self.agents.get(owner)
        if agent is not None:
            self.drop_agent(agent)
            touched = True
        if touched:
            log("client %s vanished: its registrations were dropped" % owner)

    def on_interfaces_removed(self, object_path, interfaces, sender=None, path=None):
        """InterfacesRemoved from an application's ObjectManager (at `path`)."""
        if sender == self.unique_name or SERVICE_IFACE not in interfaces:
            return
        for adapter in self.adapters.values():
            for app in list(adapter.apps):
                if app.owner == sender and path == app.path:
                    self.remove_service(app, str(object_path))

    # -- state for tests ---------------------------------------------------

    def state(self):
        apps, adverts, devices = [], [], []
        for adapter in self.adapters.values():
            for app in adapter.apps:
                apps.append({
                    "adapter": adapter.name, "owner": app.owner, "path": app.path,
                    "profiles": app.profiles, "warnings": app.warnings,
                    "services": [{
                        "path": s.path, "uuid": s.uuid, "primary": s.primary,
                        "handle": s.handle, "end_handle": s.end_handle,
                        "characteristics": [{
                            "path": c.path, "uuid": c.uuid, "flags": c.flags,
                            "handle": c.handle, "value_handle": c.value_handle,
                            "notifying_devices": c.ntfy_cnt,
                            "descriptors": [{"path": d.path, "uuid": d.uuid, "flags": d.flags,
                                             "handle": d.handle} for d in c.descs],
                        } for c in s.chrcs],
                    } for s in app.services],
                })
            for adv in adapter.adverts:
                adverts.append({
                    "adapter": adapter.name, "owner": adv.owner, "path": adv.path,
                    "type": adv.type, "local_name": adv.local_name,
                    "service_uuids": adv.service_uuids, "includes": adv.includes,
                    "manufacturer_data": {str(k): v.hex()
                                          for k, v in adv.manufacturer_data.items()},
                    "service_data": {k: v.hex() for k, v in adv.service_data.items()},
                })
            for device in adapter.devices.values():
                devices.append({
                    "path": device.path, "adapter": adapter.name, "address": device.address,
                    "role": device.role,
                    "connected": device.link is not None, "paired": device.paired,
                    "security_level": device.bond_level or None,
                    "trusted": device.trusted, "temporary": device.temporary,
                    "services_resolved": bool(device.prop(DEVICE_IFACE, "ServicesResolved")),
                    "gatt_objects": sorted(device.gatt),
                })
        return {
            "adapters": {name: {
                "path": a.path, "address": a.address, "powered": a.powered,
                "discovering": bool(a.discovery), "discovery_clients": sorted(a.discovery),
            } for name, a in self.adapters.items()},
            "applications": apps,
            "advertisements": adverts,
            "agents": [{"owner": a.owner, "path": a.path, "capability": a.capability,
                        "default": bool(self.default_agents) and self.default_agents[0] is a}
                       for a in self.agents.values()],
            "devices": devices,
            "links": [{"central": link.central_dev.path, "peripheral": link.periph_dev.path,
                       "mtu": link.mtu, "security_level": link.security,
                       "ccc": {"0x%04x" % h: v for h, v in link.ccc.items() if v}}
                      for link in self.links],
            "settings": {"mtu": self.mtu, "split_writes": self.split_writes,
                         "gatt_cache": self.args.gatt_cache,
                         "temporary_timeout": self.args.temporary_timeout},
            "counters": dict(self.counters),
        }


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------


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
    global QUIET
    args = parse_args(argv)
    QUIET = args.quiet
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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
