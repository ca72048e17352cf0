# SPDX-License-Identifier: GPL-3.0-or-later
"""A Python encoder of the BlueZscript protocol (docs/protocol.md), independent of
the C++ code and checked against spec/vectors by the BLE end-to-end tests, so that
a raw central can build genuine frames (and wrong ones on purpose)."""

import base64
import hashlib
import hmac
import os
import struct
import time
import urllib.parse

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SOURCE_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
VECTORS_DIR = os.path.join(SOURCE_DIR, "spec", "vectors")

# The BlueZscript GATT service and its four characteristics.
SVC_UUID = "1b324b66-1eca-4b75-ac85-5f5515fb2900"
INFO_UUID = "1b324b66-1eca-4b75-ac85-5f5515fb2901"
CHALLENGE_UUID = "1b324b66-1eca-4b75-ac85-5f5515fb2902"
COMMAND_UUID = "1b324b66-1eca-4b75-ac85-5f5515fb2903"
RESULT_UUID = "1b324b66-1eca-4b75-ac85-5f5515fb2904"

STATUS = {
    0x00: "ok", 0x01: "action_failed", 0x02: "action_timeout", 0x03: "action_busy",
    0x04: "action_start_failed", 0x10: "malformed", 0x11: "unknown_version",
    0x12: "unknown_device", 0x13: "revoked", 0x14: "bad_mac", 0x15: "stale_timestamp",
    0x16: "bad_totp", 0x17: "reused_totp", 0x18: "replayed", 0x19: "rate_limited",
    0x1A: "unknown_action", 0x1B: "not_permitted", 0x1C: "bad_arguments", 0x1F: "internal",
}
MAX_FRAME = 512
MAX_OUTPUT = 447
_HASHES = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}


def derive_keys(secret):
    """(request_key, response_key): HKDF-SHA256 of section 5."""
    def hkdf(info):
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"bluezscript-v1",
                    info=info).derive(secret)
    return hkdf(b"bluezscript v1 request mac"), hkdf(b"bluezscript v1 response mac")


def hotp(secret, counter, alg="SHA1", digits=6):
    """RFC 4226 with dynamic truncation."""
    digest = hmac.new(secret, struct.pack(">Q", counter), _HASHES[alg.upper()]).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF
    return value % (10 ** digits)


def totp(secret, now, alg="SHA1", digits=6, period=30):
    """(code, step) of RFC 6238 with T0 = 0."""
    step = int(now) // period
    return hotp(secret, step, alg, digits), step


def encode_request(request_key, device_id, counter, timestamp, challenge, code, action,
                   args=()):
    """A request frame (section 3). Only the sizes are checked: tests build wrong
    frames on purpose elsewhere."""
    action = action.encode("ascii") if isinstance(action, str) else action
    body = struct.pack(">BB16sQq16sIB", 1, 1, device_id, counter, timestamp, challenge, code,
                       len(action)) + action + bytes([len(args)])
    for arg in args:
        arg = arg.encode("utf-8") if isinstance(arg, str) else arg
        body += bytes([len(arg)]) + arg
    return body + hmac.new(request_key, body, hashlib.sha256).digest()


def decode_response(frame):
    """A response frame (section 4) as a dict; ValueError if it breaks a rule."""
    if not 65 <= len(frame) <= MAX_FRAME:
        raise ValueError("response of %d bytes" % len(frame))
    version, ftype, counter, tag, status, exit_code, out_len = struct.unpack(
        ">BBQ16sBiH", frame[:33])
    if version != 1 or ftype != 2:
        raise ValueError("not a version 1 response")
    if 33 + out_len + 32 != len(frame):
        raise ValueError("output_len %d does not match %d bytes" % (out_len, len(frame)))
    if status not in STATUS:
        raise ValueError("status byte 0x%02x" % status)
    return {"counter": counter, "tag": tag, "status": STATUS[status], "exit_code": exit_code,
            "output": frame[33:33 + out_len], "mac": frame[33 + out_len:],
            "mac_input": frame[:33 + out_len]}


def response_mac_ok(response, response_key):
    expected = hmac.new(response_key, response["mac_input"], hashlib.sha256).digest()
    return hmac.compare_digest(expected, response["mac"])


def fragment(frame, mtu):
    """Notification payloads of section 7 (used to check the reassembler)."""
    chunk = max(mtu, 23) - 4
    pieces = [frame[i:i + chunk] for i in range(0, len(frame), chunk)] or [b""]
    return [bytes([i | (0x80 if i == len(pieces) - 1 else 0)]) + p for i, p in enumerate(pieces)]


class Reassembler:
    """protocol::Reassembler of section 7: feed() returns a complete frame or None."""

    def __init__(self):
        self.parts = None
        self.expected = 0

    def feed(self, payload):
        if not payload:
            return None
        index, last = payload[0] & 0x7F, bool(payload[0] & 0x80)
        if index == 0:
            self.parts, self.expected = [], 0
        elif self.parts is None or index != self.expected:
            self.parts = None  # a fragment went missing: drop the partial frame
            return None
        self.parts.append(payload[1:])
        self.expected = index + 1
        if sum(len(p) for p in self.parts) > MAX_FRAME:
            self.parts = None
            return None
        if last:
            frame, self.parts = b"".join(self.parts), None
            return frame
        return None


class Pairing:
    """The fields of a pairing URI (section 10) that a client needs."""

    def __init__(self, uri):
        if not uri.startswith("bluezscript://pair?"):
            raise ValueError("not a canonical pairing URI")
        query = dict(item.split("=", 1) for item in uri.split("?", 1)[1].split("&") if item)
        self.uri = uri
        self.pi_id = bytes.fromhex(query["pi"])
        self.pi_name = urllib.parse.unquote(query["name"])
        self.device_id = bytes.fromhex(query["dev"])
        secret = query["secret"].upper()
        self.secret = base64.b32decode(secret + "=" * (-len(secret) % 8))
        self.alg = query.get("alg", "SHA1").upper().replace("-", "")
        self.digits = int(query.get("digits", "6"))
        self.period = int(query.get("period", "30"))
        self.request_key, self.response_key = derive_keys(self.secret)

    def request(self, counter, challenge, action, args=(), now=None):
        """A genuine request frame for `now` (default: this machine's clock)."""
        now = int(time.time()) if now is None else now
        code, _ = totp(self.secret, now, self.alg, self.digits, self.period)
        return encode_request(self.request_key, self.device_id, counter, now, challenge, code,
                              action, args)
