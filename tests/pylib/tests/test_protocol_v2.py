# SPDX-License-Identifier: GPL-3.0-or-later
"""The Python protocol v2 (bzs_testlib.protocol) against fixed bytes that the C++
implementation reproduces too (tests/unit/core/protocol/sealed_test.cpp): two
implementations of docs/design/protocol-v2.md that agree."""

import hashlib
import json
import os
import struct
import time
import unittest

from cryptography.hazmat.primitives.asymmetric import ec

from bzs_testlib import protocol as p
from bzs_testlib.phone import Phone, PiNotProven

PI_SCALAR = bytes.fromhex("c88f01f510d9ac3f70a292daa2316de544e9aab8afe84049c62a9c57862d1433")
PHONE_SCALAR = bytes.fromhex("c6ef9c5d78ae012a011164acb397ce2088685d8f06bf9be0b283ab46476bee53")
PI_ID = bytes.fromhex("712bb146f4c5b37be010be1b6a6ad359")
DEVICE = bytes.fromhex("f758a1c9c46769c302b22ca2698027a2")
CODE = bytes.fromhex("5d1f0b7a3c9e42d18f6a2b4c0e9d7f31")
CHALLENGE = bytes.fromhex("23b5286c8381c5a477d0d1e391d16b6f")
NONCE = bytes.fromhex("000102030405060708090a0b")
SECRET = "f909a7068c24163f86d48b55e02df2dee92de7197c65276dad507e7710c6ffd0"
COMMAND = ("02010063f758a1c9c46769c302b22ca2698027a20000000000000001000102030405060708090a0b"
           "5a60129330450032639c574f68d562afb8f28b5b397d8695a3c54a8e6efa715b2e68a495fd90d8"
           "9996e6dd4da9d977748aeec4589f4bdf317499f0")


class ProtocolV2(unittest.TestCase):
    def test_pairing_exchange_both_sides(self):
        pi, phone = p.p256_private(PI_SCALAR), p.p256_private(PHONE_SCALAR)
        pk, e = p.p256_public_bytes(pi), p.p256_public_bytes(phone)
        t = p.pair_transcript(PI_ID, DEVICE, pk, e)
        s_phone, confirm = p.pair_secret(p.p256_ecdh(phone, pk), CODE, t)
        s_pi, confirm_pi = p.pair_secret(p.p256_ecdh(pi, e), CODE, t)
        self.assertEqual(s_phone.hex(), SECRET)
        self.assertEqual(s_pi, s_phone)
        self.assertEqual(confirm.hex(),
                         "6811a321982355a513fcf234a691460f5b39be0823c063793f88e4db599dcd13")
        self.assertEqual(confirm_pi, confirm)

    def test_command_frame_and_result(self):
        rk, sk = p.device_keys(bytes.fromhex(SECRET))
        frame = p.seal_request(p.T_COMMAND, rk, DEVICE, 1,
                               p.command_plaintext(1700000010, CHALLENGE, 989257, "lights.on",
                                                   ["x y"]), NONCE)
        self.assertEqual(frame.hex(), COMMAND)
        resp = p.seal_response(p.T_COMMAND_RESULT, sk, 1, frame[-16:],
                               bytes([0]) + (1700000011).to_bytes(8, "big") + b"\x01" +
                               bytes(4) + b"lights: on\n",
                               bytes.fromhex("0f0e0d0c0b0a090807060504"))
        opened = p.open_response(resp, sk, frame)
        self.assertTrue(opened["authentic"])
        self.assertEqual(opened["output"], b"lights: on\n")
        tampered = bytearray(frame)
        tampered[-1] ^= 1
        self.assertFalse(p.open_response(resp, sk, bytes(tampered))["authentic"])

    def test_link_rules(self):
        q = p.link_query(PI_ID, bytes(32), "Garage", DEVICE, CODE, label="Anna")
        link = p.Link("bluezscript://pair?" + q + "&future=%ZZ")
        self.assertEqual(link.code, CODE)
        for bad in (q.replace("digits=6", "digits=06"), q.replace("v=2", "v=1"),
                    q.replace("label=Anna", "label=An%0Aa"), q + "&v=2"):
            with self.assertRaises(p.ProtocolError):
                p.Link("bluezscript://pair?" + bad)



class SpecVectorsV2(unittest.TestCase):
    """Every case of spec/vectors/v2, recomputed by the Python implementation."""

    @staticmethod
    def load(name):
        import json
        import os
        with open(os.path.join(p.VECTORS_DIR, name), encoding="utf-8") as f:
            return json.load(f)

    def test_keys(self):
        v = self.load("keys.json")
        for c in v["device"]:
            rk, sk = p.device_keys(bytes.fromhex(c["secret"]))
            self.assertEqual((rk.hex(), sk.hex()), (c["request_key"], c["response_key"]))
        prk, psk = p.pair_keys(bytes.fromhex(v["pair"]["code"]))
        self.assertEqual(prk.hex(), v["pair"]["pair_request_key"])
        self.assertEqual(psk.hex(), v["pair"]["pair_response_key"])
        for c in v["totp"]:
            t = c["totp"]
            self.assertEqual(p.totp(bytes.fromhex(c["secret"]), c["time"], t["alg"], t["digits"],
                                    t["period"]), c["code"])

    def test_pair(self):
        v = self.load("pair.json")
        pi = p.p256_private(bytes.fromhex(v["pi_private"]))
        phone = p.p256_private(bytes.fromhex(v["phone_private"]))
        self.assertEqual(p.p256_public_bytes(pi).hex(), v["pi_public"])
        pk, e = bytes.fromhex(v["pi_public"]), bytes.fromhex(v["phone_public"])
        z = p.p256_ecdh(phone, pk)
        self.assertEqual(z.hex(), v["shared_x"])
        t = p.pair_transcript(bytes.fromhex(v["pi_id"]), bytes.fromhex(v["device_id"]), pk, e)
        self.assertEqual(t.hex(), v["transcript"])
        s, confirm = p.pair_secret(z, bytes.fromhex(v["code"]), t)
        self.assertEqual((s.hex(), confirm.hex()), (v["secret"], v["confirm"]))
        prk, psk = p.pair_keys(bytes.fromhex(v["code"]))
        req = p.seal_request(p.T_PAIR, prk, bytes.fromhex(v["device_id"]), 0,
                             p.pair_plaintext(bytes.fromhex(v["challenge"]), e),
                             bytes.fromhex(v["request_nonce"]))
        self.assertEqual(req.hex(), v["request"])
        resp = p.open_response(bytes.fromhex(v["response"]), psk, req)
        self.assertTrue(resp["authentic"])
        self.assertEqual(resp["confirm"].hex(), v["confirm"])
        self.assertEqual(resp["output"].decode(), v["response_message"])

    def test_requests_and_responses(self):
        reqs = {}
        for c in self.load("requests.json")["cases"]:
            secret = bytes.fromhex(c["secret"])
            rk, _ = p.device_keys(secret)
            t = c["totp"]
            code = p.totp(secret, c["timestamp"], t["alg"], t["digits"], t["period"])
            self.assertEqual(code, c["totp_code"])
            challenge = bytes.fromhex(c["challenge"])
            if c["type"] == "command":
                plain = p.command_plaintext(c["timestamp"], challenge, code, c["action"],
                                            c["args"])
                ftype = p.T_COMMAND
            else:
                plain = p.catalogue_plaintext(c["timestamp"], challenge, code, c["first"])
                ftype = p.T_CATALOGUE
            self.assertEqual(plain.hex(), c["plaintext"], c["name"])
            frame = p.seal_request(ftype, rk, bytes.fromhex(c["device_id"]), c["counter"], plain,
                                   bytes.fromhex(c["nonce"]))
            self.assertEqual(frame.hex(), c["frame"], c["name"])
            reqs[c["name"]] = (frame, secret)
        for c in self.load("responses.json")["cases"]:
            frame = bytes.fromhex(c["frame"])
            if c["type"] == "refusal":
                r = p.open_response(frame, bytes(32), b"")
                self.assertFalse(r["authentic"])
                self.assertEqual((r["status"], r["counter"]), (c["status"], c["counter"]))
                continue
            request, secret = reqs[c["request"]]
            _, sk = p.device_keys(secret)
            r = p.open_response(frame, sk, request)
            self.assertTrue(r["authentic"], c["name"])
            self.assertEqual((r["status"], r["pi_time"], r["synced"]),
                             (c["status"], c["pi_time"], c["synced"]))
            if c["type"] == "command_result":
                self.assertEqual(r["exit_code"], c["exit_code"])
                self.assertEqual(r["output"], c["output"].encode()[:c["output_sent_len"]])
            else:
                self.assertEqual(r["rest"].hex(), c["rest"])

    def test_catalogue(self):
        v = self.load("catalogue.json")
        kinds = {"none": p.ARG_NONE, "free": p.ARG_FREE, "pattern": p.ARG_PATTERN,
                 "choices": p.ARG_CHOICES}
        for e in v["entries"]:
            b = p.encode_catalogue_entry(e["name"], e["description"], e["confirm"],
                                         kinds[e["kind"]], e["max_args"], e.get("pattern"),
                                         e.get("choices", ()))
            self.assertEqual(b.hex(), e["bytes"], e["name"])
        for page in v["pages"]:
            decoded = p.decode_catalogue(bytes.fromhex(page["rest"]))
            self.assertEqual(decoded["first"], page["first"])
            self.assertEqual(decoded["total"], len(v["entries"]))

    def test_links(self):
        v = self.load("links.json")
        for c in v["valid"]:
            f = c["fields"]
            q = p.link_query(bytes.fromhex(f["pi"]), bytes.fromhex(f["pk"]), f["name"],
                             bytes.fromhex(f["dev"]), bytes.fromhex(f["code"]), f["alg"],
                             f["digits"], f["period"], f["label"])
            self.assertEqual("bluezscript://pair?" + q, c["uri"])
            self.assertEqual(v["app_url_base"] + "#" + q, c["app_url"])
        for c in v["parse"]:
            link = p.Link(c["input"])
            self.assertEqual(link.code.hex(), c["fields"]["code"], c["input"])
            self.assertEqual(link.pi_name, c["fields"]["name"])
        for c in v["invalid"]:
            with self.assertRaises(p.ProtocolError, msg=c["input"]):
                p.Link(c["input"])

    def test_malformed(self):
        v = self.load("malformed.json")
        for c in v["header"]:
            with self.assertRaises(p.ProtocolError, msg=c["name"]):
                p.parse_request_header(bytes.fromhex(c["frame"]))
        rk, _ = p.device_keys(bytes.fromhex(v["secret"]))
        for c in v["body"]:
            _, plain = p.open_request(bytes.fromhex(c["frame"]), rk)
            self.assertEqual(plain.hex(), c["plaintext"], c["name"])


class FakePi:
    """The Pi side of the design in a few lines, behind the central interface the
    Phone uses (read, challenge, write, next_frame): enough to check the phone's
    half of every exchange without a daemon. Pages hold two catalogue entries."""

    def __init__(self):
        self.pi_id = os.urandom(16)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.pk = p.p256_public_bytes(self.key)
        self.devices = {}
        self.actions = {"a": p.encode_catalogue_entry("a", "first"),
                        "b": p.encode_catalogue_entry("b", confirm=True),
                        "c": p.encode_catalogue_entry("c", "", False, p.ARG_CHOICES, 1,
                                                      choices=["low", "high"])}
        self.challenge_value = None
        self.out = []
        self.writes = []
        self.wrong_confirm = False
        self.time = 1700000000

    def add(self, actions=("a", "b", "c")):
        device, code = os.urandom(16), os.urandom(16)
        self.devices[device] = {"code": code, "state": "pending", "actions": list(actions),
                                "counter": 0, "secret": None}
        return "bluezscript://pair?" + p.link_query(self.pi_id, hashlib.sha256(self.pk).digest(),
                                                    "pi", device, code)

    # -- the central interface --

    def read(self, uuid):
        self.assert_uuid(uuid, p.INFO_UUID)
        return json.dumps({"v": 2, "name": "pi", "pi": self.pi_id.hex(), "pk": self.pk.hex(),
                           "time": self.time, "synced": True}).encode()

    @staticmethod
    def assert_uuid(uuid, expected):
        if uuid != expected:
            raise AssertionError(uuid)

    def challenge(self):
        self.challenge_value = os.urandom(16)
        return self.challenge_value

    def next_frame(self, timeout=None):
        return self.out.pop(0)

    def write(self, frame):
        self.writes.append(frame)
        fields = p.parse_request_header(frame)
        device = self.devices.get(fields["device_id"])
        counter = fields["counter"]
        if device is None:
            return self.out.append(p.refusal(counter, "unknown_device"))
        if fields["type"] == p.T_PAIR:
            return self.pair(frame, device)
        if device["state"] != "active":
            return self.out.append(p.refusal(counter, "unknown_device"))
        _, plain = p.open_request(frame, p.device_keys(device["secret"])[0])
        if plain is None:
            return self.out.append(p.refusal(counter, "bad_mac"))
        status = "ok"
        if counter <= device["counter"] or plain[8:24] != self.challenge_value:
            status = "replayed"
        device["counter"] = max(device["counter"], counter)
        self.challenge_value = None
        head = struct.pack(">BqB", p.STATUS_BYTE[status], self.time, 1)
        if fields["type"] == p.T_COMMAND:
            body, rtype = head + struct.pack(">i", 0) + b"ran", p.T_COMMAND_RESULT
        else:
            first = plain[28]
            names = device["actions"][first:first + 2]
            body = head + bytes([len(device["actions"]), first, len(names)])
            body += b"".join(self.actions[n] for n in names)
            rtype = p.T_CATALOGUE_RESULT
        self.out.append(p.seal_response(rtype, p.device_keys(device["secret"])[1], counter,
                                        frame[-16:], body))

    def pair(self, frame, device):
        if device["state"] == "active":
            return self.out.append(p.refusal(0, "code_used"))
        request_key, response_key = p.pair_keys(device["code"])
        _, plain = p.open_request(frame, request_key)
        if plain is None:
            return self.out.append(p.refusal(0, "bad_mac"))
        if plain[:16] != self.challenge_value:
            return None  # not needed by these tests
        phone_public = plain[16:]
        t = p.pair_transcript(self.pi_id, p.parse_request_header(frame)["device_id"], self.pk,
                              phone_public)
        secret, confirm = p.pair_secret(p.p256_ecdh(self.key, phone_public), device["code"], t)
        device.update(secret=secret, state="active")
        if self.wrong_confirm:
            confirm = bytes(32)
        body = struct.pack(">BqB", 0, self.time, 1) + confirm + b"paired"
        self.out.append(p.seal_response(p.T_PAIR_RESULT, response_key, 0, frame[-16:], body))
        return None


class PhoneAgainstAFakePi(unittest.TestCase):
    """bzs_testlib.phone.Phone, the client the BLE suites use, against FakePi."""

    def setUp(self):
        self.pi = FakePi()

    def test_pairing_then_commands_and_the_whole_catalogue(self):
        phone = Phone(self.pi.add())
        answer = phone.pair(self.pi)
        self.assertTrue(answer["authentic"])
        self.assertEqual((answer["status"], answer["pi_time"], answer["synced"]),
                         ("ok", self.pi.time, True))
        self.assertEqual(phone.secret, self.pi.devices[phone.device_id]["secret"])
        first = phone.command(self.pi, "a")
        second = phone.command(self.pi, "a")
        self.assertEqual([(r["authentic"], r["status"], r["counter"], r["output"])
                          for r in (first, second)],
                         [(True, "ok", 1, b"ran"), (True, "ok", 2, b"ran")])
        cat = phone.catalogue(self.pi)
        self.assertEqual([e["name"] for e in cat["entries"]], ["a", "b", "c"])
        self.assertEqual(cat["total"], 3)
        self.assertTrue(cat["entries"][1]["confirm"])
        self.assertEqual(cat["entries"][2]["choices"], ["low", "high"])
        self.assertEqual(phone.counter, 4)  # two commands and two catalogue pages

    def test_a_used_code_is_a_plain_refusal_and_stores_nothing(self):
        link = self.pi.add()
        Phone(link).pair(self.pi)
        late = Phone(link)
        answer = late.pair(self.pi)
        self.assertEqual((answer["plain"], answer["authentic"], answer["status"]),
                         (True, False, "code_used"))
        self.assertFalse(late.paired)

    def test_a_pi_with_another_key_gets_nothing_written(self):
        link = p.Link(self.pi.add())
        link.pk_hash = bytes(32)
        with self.assertRaisesRegex(PiNotProven, "fingerprint"):
            Phone(link).pair(self.pi)
        self.assertEqual(self.pi.writes, [])

    def test_a_wrong_confirmation_keeps_no_secret(self):
        self.pi.wrong_confirm = True
        phone = Phone(self.pi.add())
        with self.assertRaisesRegex(PiNotProven, "confirmation"):
            phone.pair(self.pi)
        self.assertFalse(phone.paired)

    def test_answers_to_other_requests_are_skipped(self):
        phone = Phone(self.pi.add())
        phone.pair(self.pi)
        other = Phone(self.pi.add())
        other.pair(self.pi)
        # Another phone's answer, notified first to every subscriber, with our counter.
        frame = other.command_frame(self.pi.challenge(), "a", counter=1)
        self.pi.write(frame)
        self.assertTrue(phone.open(self.pi.out[0], frame)["authentic"] is False)
        answer = phone.command(self.pi, "a")
        self.assertEqual((answer["authentic"], answer["counter"]), (True, 1))
        self.assertEqual(self.pi.out, [])

    def test_a_pending_device_is_refused_in_plain(self):
        phone = Phone(self.pi.add())
        phone.adopt_secret(os.urandom(32))  # a secret the Pi never stored
        answer = phone.command(self.pi, "a", now=time.time())
        self.assertEqual((answer["plain"], answer["status"], answer["counter"]),
                         (True, "unknown_device", 1))


if __name__ == "__main__":
    unittest.main()
