# SPDX-License-Identifier: GPL-3.0-or-later
"""The Python protocol v2 (bzs_testlib.protocol_v2) against fixed bytes that the C++
implementation reproduces too (tests/unit/core/protocol/sealed_test.cpp): two
implementations of docs/design/protocol-v2.md that agree."""

import unittest

from bzs_testlib import protocol_v2 as p

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


if __name__ == "__main__":
    unittest.main()


class SpecVectorsV2(unittest.TestCase):
    """Every case of spec/vectors/v2, recomputed by the Python implementation."""

    @staticmethod
    def load(name):
        import json
        import os
        here = os.path.dirname(os.path.abspath(__file__))
        with open(os.path.join(here, "..", "..", "..", "spec", "vectors", "v2", name),
                  encoding="utf-8") as f:
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
