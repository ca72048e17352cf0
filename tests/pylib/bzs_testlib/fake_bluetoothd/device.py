# SPDX-License-Identifier: GPL-3.0-or-later
"""Remote devices and links: org.bluez.Device1, connections, pairing."""

import random

import dbus
import dbus.service
from gi.repository import GLib

from .constants import (
    AGENT_IFACE, DEVICE_IFACE, ERROR, SEC_FIPS, SEC_LOW, SEC_MEDIUM, association_model)
from .helpers import (
    BluezError, bluez_error, dbus_bytes, dbus_strings, err_already_exists,
    err_does_not_exist, err_failed, err_in_progress, err_not_supported, fmt, log)
from .objects import ExportedObject
from .remote_gatt import RemoteChrc, RemoteDesc, RemoteService


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
        # Encryption needs the keys on both sides: a peripheral that removed its
        # half of the bond (Adapter1.RemoveDevice) gets an unencrypted link.
        if not self.periph_dev.bond_level:
            return SEC_LOW
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
