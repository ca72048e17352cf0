# SPDX-License-Identifier: GPL-3.0-or-later
"""The local GATT database of an adapter (peripheral side) and advertisements."""

import dbus

from .constants import (
    CHRC_FLAGS, CLIENT_EXT_PROP_NAMES, CLIENT_PROP_NAMES, DESC_FLAGS, PERM_NONE, PERM_READ,
    PERM_WRITE, PROP_EXT_PROP, PROP_INDICATE, PROP_NOTIFY, UUID_CCC, UUID_CEP, UUID_DIS,
    UUID_GAP, UUID_GATT)
from .helpers import err_failed, log, parse_uuid, to_bytes, uuid_adv_size


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
