# SPDX-License-Identifier: GPL-3.0-or-later
"""A Python implementation of the BlueZscript protocol, version 2
(docs/design/protocol-v2.md), written from the document alone and independent of
the C++ and TypeScript code. It plays both sides (phone and Pi) so that the suites
can build genuine frames, wrong ones on purpose, and check the spec vectors three
ways. The phone's whole exchange over a raw central is `bzs_testlib.phone`."""

import base64
import hashlib
import hmac
import os
import struct
import urllib.parse

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SOURCE_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def _vectors_dir():
    """spec/vectors/v2 until the switch moves the version 2 files up to spec/vectors."""
    nested = os.path.join(SOURCE_DIR, "spec", "vectors", "v2")
    return nested if os.path.isdir(nested) else os.path.join(SOURCE_DIR, "spec", "vectors")


VECTORS_DIR = _vectors_dir()
# fragments.json: the notification rule, unchanged by version 2 (in spec/vectors).
FRAGMENTS_VECTORS = os.path.join(SOURCE_DIR, "spec", "vectors", "fragments.json")

# The BlueZscript GATT service and its four characteristics (docs/ble.md).
SVC_UUID = "1b324b66-1eca-4b75-ac85-5f5515fb2900"
INFO_UUID = "1b324b66-1eca-4b75-ac85-5f5515fb2901"
CHALLENGE_UUID = "1b324b66-1eca-4b75-ac85-5f5515fb2902"
COMMAND_UUID = "1b324b66-1eca-4b75-ac85-5f5515fb2903"
RESULT_UUID = "1b324b66-1eca-4b75-ac85-5f5515fb2904"

VERSION = 2
T_COMMAND, T_CATALOGUE, T_PAIR = 0x01, 0x02, 0x03
T_COMMAND_RESULT, T_CATALOGUE_RESULT, T_PAIR_RESULT, T_REFUSAL = 0x81, 0x82, 0x83, 0xFF
REQUEST_HEADER = 40
RESPONSE_HEADER = 24
TAG = 16
NONCE = 12
MAX_FRAME = 512
SALT0 = b"bluezscript-v2"
FLAG_SYNCED = 0x01
# The most output a command result carries: 512 - 24 (header) - 16 (tag) - 14.
MAX_OUTPUT = MAX_FRAME - RESPONSE_HEADER - TAG - 14

STATUS = {
    0x00: "ok", 0x01: "action_failed", 0x02: "action_timeout", 0x03: "action_busy",
    0x04: "action_start_failed", 0x10: "malformed", 0x11: "unknown_version",
    0x12: "unknown_device", 0x13: "revoked", 0x14: "bad_mac", 0x15: "stale_timestamp",
    0x16: "bad_totp", 0x18: "replayed", 0x19: "rate_limited", 0x1A: "unknown_action",
    0x1B: "not_permitted", 0x1C: "bad_arguments", 0x1D: "code_used", 0x1E: "code_expired",
    0x1F: "internal",
}
STATUS_BYTE = {name: b for b, name in STATUS.items()}
_HASHES = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}


class ProtocolError(ValueError):
    """A frame or link that breaks a rule; the message names the rule."""


def hkdf(ikm, salt, info, length=32):
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def device_keys(secret):
    """(request_key, response_key) of a device secret S."""
    return (hkdf(secret, SALT0, b"bluezscript v2 request"),
            hkdf(secret, SALT0, b"bluezscript v2 response"))


def pair_keys(code):
    """(pair_request_key, pair_response_key) of a pairing code C."""
    return (hkdf(code, SALT0, b"bluezscript v2 pair request"),
            hkdf(code, SALT0, b"bluezscript v2 pair response"))


def hotp(secret, counter, alg="SHA1", digits=6):
    """RFC 4226: offset = last byte & 0x0f for every hash, 31 bits, mod 10^digits."""
    digest = hmac.new(secret, struct.pack(">Q", counter), _HASHES[alg]).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF
    return value % (10 ** digits)


def totp(secret, now, alg="SHA1", digits=6, period=30):
    return hotp(secret, int(now) // period, alg, digits)


# ------------------------------------------------------------------ P-256

def p256_private(scalar):
    return ec.derive_private_key(int.from_bytes(scalar, "big"), ec.SECP256R1())


def p256_public_bytes(private_key):
    return private_key.public_key().public_bytes(serialization.Encoding.X962,
                                                 serialization.PublicFormat.UncompressedPoint)


def p256_ecdh(private_key, peer_public65):
    if len(peer_public65) != 65 or peer_public65[0] != 0x04:
        raise ProtocolError("the public key is not an uncompressed P-256 point")
    try:
        peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), peer_public65)
    except ValueError as e:
        raise ProtocolError("the public key is not a point of P-256") from e
    return private_key.exchange(ec.ECDH(), peer)


def pair_transcript(pi_id, device_id, pi_public, phone_public):
    return hashlib.sha256(b"bluezscript v2 pair" + pi_id + device_id + pi_public +
                          phone_public).digest()


def pair_secret(z, code, transcript):
    """(S, confirm) from the shared X coordinate, the code and the transcript hash."""
    secret = hkdf(z, code, b"bluezscript v2 device secret" + transcript)
    confirm = hkdf(secret, SALT0, b"bluezscript v2 pair confirm" + transcript)
    return secret, confirm


# ------------------------------------------------------------------ frames

def _request_header(ftype, length, device_id, counter, nonce):
    return struct.pack(">BBH16sQ12s", VERSION, ftype, length, device_id, counter, nonce)


def seal_request(ftype, key, device_id, counter, plaintext, nonce=None):
    """A request frame: 40-byte header (the GCM additional data), then the sealed body."""
    nonce = os.urandom(NONCE) if nonce is None else nonce
    length = REQUEST_HEADER + len(plaintext) + TAG
    header = _request_header(ftype, length, device_id, counter, nonce)
    return header + AESGCM(key).encrypt(nonce, plaintext, header)


def command_plaintext(timestamp, challenge, code, action, args=()):
    action = action.encode("ascii") if isinstance(action, str) else action
    body = struct.pack(">q16sIB", timestamp, challenge, code, len(action)) + action
    body += bytes([len(args)])
    for arg in args:
        arg = arg.encode("utf-8") if isinstance(arg, str) else arg
        body += bytes([len(arg)]) + arg
    return body


def catalogue_plaintext(timestamp, challenge, code, first=0):
    return struct.pack(">q16sIB", timestamp, challenge, code, first)


def pair_plaintext(challenge, phone_public):
    return challenge + phone_public


def parse_request_header(frame):
    """(fields, header bytes) of a request frame; ProtocolError on a header rule."""
    if len(frame) > MAX_FRAME:
        raise ProtocolError("frame of %d bytes is over 512" % len(frame))
    if len(frame) < 2:
        raise ProtocolError("frame of %d bytes" % len(frame))
    if frame[0] != VERSION:
        raise ProtocolError("unknown_version")
    if frame[1] not in (T_COMMAND, T_CATALOGUE, T_PAIR):
        raise ProtocolError("type 0x%02x is not a request" % frame[1])
    minimum = {T_COMMAND: 87, T_CATALOGUE: 85, T_PAIR: 137}[frame[1]]
    if len(frame) < minimum:
        raise ProtocolError("frame of %d bytes; this type needs at least %d" % (len(frame), minimum))
    version, ftype, length, device_id, counter, nonce = struct.unpack(
        ">BBH16sQ12s", frame[:REQUEST_HEADER])
    if length != len(frame):
        raise ProtocolError("length field %d, frame %d bytes" % (length, len(frame)))
    return {"type": ftype, "device_id": device_id, "counter": counter, "nonce": nonce}


def open_request(frame, key):
    """The plaintext of a sealed request, or None when the tag does not verify."""
    fields = parse_request_header(frame)
    try:
        return fields, AESGCM(key).decrypt(fields["nonce"], frame[REQUEST_HEADER:],
                                           frame[:REQUEST_HEADER])
    except Exception:  # cryptography raises InvalidTag
        return fields, None


def seal_response(ftype, key, counter, request_tag, plaintext, nonce=None):
    nonce = os.urandom(NONCE) if nonce is None else nonce
    length = RESPONSE_HEADER + len(plaintext) + TAG
    header = struct.pack(">BBHQ12s", VERSION, ftype, length, counter, nonce)
    return header + AESGCM(key).encrypt(nonce, plaintext, header + request_tag)


def refusal(counter, status):
    return struct.pack(">BBHQB", VERSION, T_REFUSAL, 13, counter, STATUS_BYTE[status])


def open_response(frame, key, request_frame):
    """A dict for any response frame. Sealed ones are opened with `key` and bound to
    `request_frame` (its last 16 bytes are the tag); `authentic` says whether the
    frame opened. A plain refusal (`plain` true) is never authentic."""
    if len(frame) < 13 or len(frame) > MAX_FRAME or frame[0] != VERSION:
        raise ProtocolError("not a version 2 response")
    ftype = frame[1]
    (length,) = struct.unpack(">H", frame[2:4])
    if length != len(frame):
        raise ProtocolError("length field %d, frame %d bytes" % (length, len(frame)))
    (counter,) = struct.unpack(">Q", frame[4:12])
    if ftype == T_REFUSAL:
        if len(frame) != 13 or frame[12] not in STATUS:
            raise ProtocolError("bad plain refusal")
        return {"type": ftype, "counter": counter, "status": STATUS[frame[12]],
                "authentic": False, "plain": True}
    if ftype not in (T_COMMAND_RESULT, T_CATALOGUE_RESULT, T_PAIR_RESULT):
        raise ProtocolError("type 0x%02x is not a response" % ftype)
    if len(frame) < RESPONSE_HEADER + TAG + 10:
        raise ProtocolError("sealed response of %d bytes" % len(frame))
    nonce = frame[12:24]
    try:
        plain = AESGCM(key).decrypt(nonce, frame[RESPONSE_HEADER:],
                                    frame[:RESPONSE_HEADER] + request_frame[-TAG:])
    except Exception:
        return {"type": ftype, "counter": counter, "authentic": False, "plain": False}
    status, pi_time, flags = struct.unpack(">BqB", plain[:10])
    if status not in STATUS:
        raise ProtocolError("status byte 0x%02x" % status)
    out = {"type": ftype, "counter": counter, "authentic": True, "plain": False,
           "status": STATUS[status],
           "pi_time": pi_time, "synced": bool(flags & FLAG_SYNCED), "rest": plain[10:]}
    if ftype == T_COMMAND_RESULT:
        (out["exit_code"],) = struct.unpack(">i", plain[10:14])
        out["output"] = plain[14:]
    elif ftype == T_PAIR_RESULT:
        if out["status"] == "ok":
            out["confirm"], out["output"] = plain[10:42], plain[42:]
        else:
            out["output"] = plain[10:]
    else:
        out["catalogue"] = decode_catalogue(plain[10:])
    return out


# ------------------------------------------------------------------ notifications

def fragment(frame, mtu):
    """Notification payloads of a response (index byte, bit 7 on the last one)."""
    chunk = max(mtu, 23) - 4
    pieces = [frame[i:i + chunk] for i in range(0, len(frame), chunk)] or [b""]
    return [bytes([i | (0x80 if i == len(pieces) - 1 else 0)]) + p for i, p in enumerate(pieces)]


class Reassembler:
    """The client's reassembly of notifications: feed() returns a complete frame or
    None."""

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


# ------------------------------------------------------------------ catalogue

ARG_NONE, ARG_FREE, ARG_PATTERN, ARG_CHOICES = 0, 1, 2, 3


def encode_catalogue_entry(name, description="", confirm=False, arg_kind=ARG_NONE, max_args=0,
                           pattern=None, choices=()):
    name_b = name.encode("ascii")
    desc = description.encode("utf-8")
    if len(desc) > 100:  # cut before the character that byte 100 belongs to
        end = 100
        while end > 0 and (desc[end] & 0xC0) == 0x80:
            end -= 1
        desc = desc[:end]
    out = bytes([len(name_b)]) + name_b + bytes([len(desc)]) + desc
    out += bytes([1 if confirm else 0, arg_kind, max_args])
    if arg_kind == ARG_PATTERN:
        pat = pattern.encode("utf-8")
        out += bytes([len(pat)]) + pat
    elif arg_kind == ARG_CHOICES:
        out += bytes([len(choices)])
        for c in choices:
            c = c.encode("utf-8")
            out += bytes([len(c)]) + c
    return out


def decode_catalogue(body):
    total, first, count = body[0], body[1], body[2]
    pos, entries = 3, []
    for _ in range(count):
        n = body[pos]
        name = body[pos + 1:pos + 1 + n].decode("ascii")
        pos += 1 + n
        d = body[pos]
        desc = body[pos + 1:pos + 1 + d].decode("utf-8")
        pos += 1 + d
        flags, kind, max_args = body[pos], body[pos + 1], body[pos + 2]
        pos += 3
        entry = {"name": name, "description": desc, "confirm": bool(flags & 1), "kind": kind,
                 "max_args": max_args}
        if kind == ARG_PATTERN:
            p = body[pos]
            entry["pattern"] = body[pos + 1:pos + 1 + p].decode("utf-8")
            pos += 1 + p
        elif kind == ARG_CHOICES:
            k = body[pos]
            pos += 1
            entry["choices"] = []
            for _ in range(k):
                c = body[pos]
                entry["choices"].append(body[pos + 1:pos + 1 + c].decode("utf-8"))
                pos += 1 + c
        entries.append(entry)
    if pos != len(body):
        raise ProtocolError("catalogue page has %d trailing bytes" % (len(body) - pos))
    return {"total": total, "first": first, "entries": entries}


# ------------------------------------------------------------------ link

_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def _hex_field(value, digits, field):
    if len(value) != digits or any(c not in "0123456789abcdefABCDEF" for c in value):
        raise ProtocolError("%s: expected %d hex digits" % (field, digits))
    return bytes.fromhex(value)


def _pct_decode(value, field):
    out, i = bytearray(), 0
    raw = value.encode("utf-8")
    while i < len(raw):
        if raw[i] == 0x25:
            h = raw[i + 1:i + 3]
            if len(h) != 2 or any(c not in b"0123456789abcdefABCDEF" for c in h):
                raise ProtocolError("%s: '%%' not followed by two hex digits" % field)
            out.append(int(h, 16))
            i += 3
        else:
            out.append(raw[i])
            i += 1
    return bytes(out)


def _disallowed(c):
    """Control characters and those that reorder or break lines (the device-name rule)."""
    o = ord(c)
    return o < 0x20 or 0x7F <= o <= 0x9F or o in (0x061C, 0x200E, 0x200F) or \
        0x2028 <= o <= 0x202E or 0x2066 <= o <= 0x2069


def _text_field(value, field, may_be_empty):
    """Percent-decoded, then the device-name rule: valid UTF-8, 1..64 code points,
    no control or direction characters, no leading or trailing space."""
    data = _pct_decode(value, field)
    if not data and may_be_empty:
        return ""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ProtocolError("%s: not valid UTF-8" % field) from e
    if not 1 <= len(text) <= 64:
        raise ProtocolError("%s: %d characters, expected 1..64" % (field, len(text)))
    if any(_disallowed(c) for c in text):
        raise ProtocolError("%s: contains a control character" % field)
    if text[0] == " " or text[-1] == " ":
        raise ProtocolError("%s: starts or ends with a space" % field)
    return text


def _code_field(value):
    if len(value) != 26 or any(c.upper() not in _B32 for c in value):
        raise ProtocolError("code: expected 26 base32 characters")
    if _B32.index(value[-1].upper()) & 0x03:
        raise ProtocolError("code: the unused bits of the last character are not zero")
    return base64.b32decode(value.upper() + "======")


class Link:
    """A parsed version 2 pairing link (the rules of 'Link parsing')."""

    def __init__(self, text):
        self.uri = text
        if text.startswith("bluezscript://pair?"):
            query = text[len("bluezscript://pair?"):]
        elif "#" in text:
            query = text.split("#", 1)[1]
        else:
            raise ProtocolError("not a pairing link")
        items = {}
        known = ("v", "pi", "pk", "name", "dev", "code", "alg", "digits", "period", "label")
        for item in query.split("&"):
            if not item:
                continue
            if "=" not in item:
                raise ProtocolError("item without '='")
            key, value = item.split("=", 1)
            if key not in known:
                continue
            if key in items:
                raise ProtocolError("%s: given twice" % key)
            items[key] = value
        for req in ("v", "pi", "pk", "name", "dev", "code"):
            if req not in items:
                raise ProtocolError("%s: missing" % req)
        if items["v"] != "2":
            raise ProtocolError("v: expected 2")
        self.pi_id = _hex_field(items["pi"], 32, "pi")
        self.pk_hash = _hex_field(items["pk"], 64, "pk")
        self.device_id = _hex_field(items["dev"], 32, "dev")
        self.code = _code_field(items["code"])
        self.pi_name = _text_field(items["name"], "name", False)
        alg = items.get("alg", "SHA1").upper()
        if alg not in _HASHES:
            raise ProtocolError("alg: expected SHA1, SHA256 or SHA512")
        self.alg = alg
        digits = items.get("digits", "6")
        if digits not in ("6", "7", "8"):
            raise ProtocolError("digits: expected 6, 7 or 8")
        self.digits = int(digits)
        period = items.get("period", "30")
        if not period.isascii() or not period.isdigit() or period[0] == "0" or \
                not 15 <= int(period) <= 300:
            raise ProtocolError("period: expected 15..300")
        self.period = int(period)
        self.label = _text_field(items.get("label", ""), "label", True)


def link_query(pi_id, pk_hash, name, device_id, code, alg="SHA1", digits=6, period=30, label=""):
    """The query of a produced link, fields in the documented order."""
    def pct(s):
        return urllib.parse.quote(s.encode("utf-8"), safe="-._~")
    q = "v=2&pi=%s&pk=%s&name=%s&dev=%s&code=%s&alg=%s&digits=%d&period=%d" % (
        pi_id.hex(), pk_hash.hex(), pct(name), device_id.hex(),
        base64.b32encode(code).decode().rstrip("="), alg, digits, period)
    if label:
        q += "&label=" + pct(label)
    return q
