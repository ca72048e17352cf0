# SPDX-License-Identifier: GPL-3.0-or-later
"""Remote GATT objects (central side): services, characteristics, descriptors."""

import dbus
import dbus.service

from .constants import (
    CHRC_IFACE, DESC_IFACE, EXT_PROP_RELIABLE_WRITE, PROP_INDICATE, PROP_NOTIFY, PROP_WRITE,
    PROP_WRITE_WITHOUT_RESP, SERVICE_IFACE, UUID_CCC)
from .helpers import (
    BluezError, att_to_client_error, dbus_bytes, dbus_strings, err_failed, err_in_progress,
    err_not_permitted, err_not_supported, parse_options)
from .objects import ExportedObject


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
