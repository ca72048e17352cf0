# SPDX-License-Identifier: GPL-3.0-or-later
"""Names and numbers of BlueZ 5.66 (D-Bus, ATT, permissions, pairing models)."""

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
