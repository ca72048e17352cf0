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
