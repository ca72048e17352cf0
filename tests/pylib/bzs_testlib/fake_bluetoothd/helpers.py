# SPDX-License-Identifier: GPL-3.0-or-later
"""Small helpers: the trace, value conversion, UUIDs and BlueZ's errors."""

import sys
import time

import dbus

from .constants import (
    ATT_AUTHENTICATION, ATT_AUTHORIZATION, ATT_INSUFFICIENT_ENCRYPTION,
    ATT_INSUFFICIENT_ENCRYPTION_KEY_SIZE, ATT_INVALID_OFFSET, ATT_INVALID_VALUE_LEN,
    ATT_READ_NOT_PERMITTED, ATT_REQUEST_NOT_SUPPORTED, ATT_UNLIKELY,
    ATT_WRITE_NOT_PERMITTED, BASE_UUID_TAIL, BT_ERROR_ALREADY_IN_PROGRESS, ERROR,
    OP_CANCELLED, PERM_AUTHEN, PERM_ENCRYPT, PERM_READ, PERM_SECURE, PERM_WRITE, SEC_FIPS,
    SEC_HIGH, SEC_MEDIUM)

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
