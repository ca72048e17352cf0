# SPDX-License-Identifier: GPL-3.0-or-later
"""Adapters: org.bluez.Adapter1, GattManager1, LEAdvertisingManager1."""

import dbus
import dbus.service
from gi.repository import GLib

from .constants import (
    ADAPTER_IFACE, ADV_IFACE, ADV_MANAGER_IFACE, BLUEZ_PATH, GATT_MANAGER_IFACE, OM_IFACE,
    PROPS_IFACE, UUID_DIS, UUID_GAP, UUID_GATT)
from .helpers import (
    BluezError, dbus_strings, err_already_exists, err_busy, err_does_not_exist, err_failed,
    err_invalid_args, err_not_permitted, err_not_ready, log, parse_uuid)
from .objects import ExportedObject
from .local_gatt import Advertisement, LocalDatabase, parse_advertisement

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
        self.fake.stored_bonds.pop((self.address, device.address), None)
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
