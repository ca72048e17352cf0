# SPDX-License-Identifier: GPL-3.0-or-later
"""The fake daemon: the virtual radio between adapters."""

import collections

import dbus
import dbus.lowlevel
from gi.repository import GLib

from .constants import (
    ADV_IFACE, ATT_INVALID_OFFSET, ATT_INVALID_VALUE_LEN, ATT_MAX_VALUE_LEN,
    ATT_READ_NOT_PERMITTED, ATT_REQUEST_NOT_SUPPORTED, ATT_UNLIKELY,
    ATT_WRITE_NOT_PERMITTED, BT_ERROR_CCC_IMPROPERLY_CONFIGURED, CHRC_FLAGS, CHRC_IFACE,
    DESC_FLAGS, DESC_IFACE, DEVICE_IFACE, OM_IFACE, OP_CANCELLED, PERM_READ_MASK,
    PERM_WRITE_MASK, PROFILE_IFACE, PROPS_IFACE, PROP_INDICATE, PROP_NOTIFY,
    PROP_WRITE_WITHOUT_RESP, SERVICE_IFACE, UUID_GAP, UUID_GATT)
from .helpers import (
    app_error_to_att, check_permissions, dbus_bytes, err_failed, fmt, log, parse_uuid,
    to_bytes)
from .objects import Root
from .agent import AgentManager
from .local_gatt import App, LocalChrc, LocalDesc, LocalService
from .adapter import Adapter
from .device import Device, Link
from .control import Control


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
        # Bonds of a removed adapter, as bluetoothd keeps them on disk:
        # (adapter address, peer address) -> security level, restored on reconnection.
        self.stored_bonds = {}
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
            if device.paired:
                self.stored_bonds[(adapter.address, device.address)] = device.bond_level
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
            stored = self.stored_bonds.pop((peripheral.address, central.address), 0)
            if stored:
                periph_dev.set_bond(stored)  # not published yet: no signal
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
