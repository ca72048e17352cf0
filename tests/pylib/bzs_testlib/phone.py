# SPDX-License-Identifier: GPL-3.0-or-later
"""A phone in the test's process: the client side of protocol version 2
(docs/design/protocol-v2.md, "Client side" of docs) over any central that offers
read(uuid), challenge(), write(frame) and next_frame() (bzs_testlib.central's
RawCentral, or a pure-Python Pi in the library's own tests).

`Phone(link)` holds what a paired phone stores: device id, secret S, its keys and
the last counter. pair() runs the exchange; command() and catalogue() return the
opened response (a dict from protocol.open_response) — `authentic` true with
status, pi_time, synced and the body, or a plain refusal (`plain` true,
`authentic` false) — so a test tells them apart as the app must."""

import hashlib
import hmac
import json
import time

from cryptography.hazmat.primitives.asymmetric import ec

from . import protocol as p


class PiNotProven(AssertionError):
    """The Pi did not prove what the link promised (id, key or confirmation)."""


class Phone:
    """One phone's pairing with one Pi."""

    def __init__(self, link):
        self.link = p.Link(link) if isinstance(link, str) else link
        self.device_id = self.link.device_id
        self.secret = None
        self.request_key = None
        self.response_key = None
        self.counter = 0  # the last counter sent (persisted before sending, as the app)
        self.info = None
        self.pair_response = None

    @property
    def paired(self):
        return self.secret is not None

    def adopt_secret(self, secret):
        """Takes S as if a pairing had stored it (for a second phone with a copy)."""
        self.secret = secret
        self.request_key, self.response_key = p.device_keys(secret)

    # -- pairing ----------------------------------------------------------------------

    def read_info(self, central):
        """Info as JSON, after checking that it is the Pi of the link: same `pi`,
        and SHA-256 of its public key equal to the link's fingerprint."""
        info = json.loads(central.read(p.INFO_UUID))
        if info.get("v") != 2:
            raise PiNotProven("Info is not version 2: %r" % info)
        if info.get("pi") != self.link.pi_id.hex():
            raise PiNotProven("Info's pi %r is not the link's %s" % (info.get("pi"),
                                                                     self.link.pi_id.hex()))
        pk = bytes.fromhex(info["pk"])
        if hashlib.sha256(pk).digest() != self.link.pk_hash:
            raise PiNotProven("the Pi's public key does not match the link's fingerprint")
        self.info = info
        return info

    def pair_request(self, challenge, ephemeral=None):
        """(frame, ephemeral private key) of a pair request for `challenge`."""
        ephemeral = ephemeral or ec.generate_private_key(ec.SECP256R1())
        request_key, _ = p.pair_keys(self.link.code)
        frame = p.seal_request(p.T_PAIR, request_key, self.device_id, 0,
                               p.pair_plaintext(challenge, p.p256_public_bytes(ephemeral)))
        return frame, ephemeral

    def pair(self, central):
        """The pairing exchange on a connected, bonded central subscribed to Result.
        Returns the opened 0x83 (or the plain refusal); S is kept only when the
        answer is authentic, ok, and its confirmation equals ours. A wrong Pi or
        confirmation raises PiNotProven."""
        info = self.read_info(central)
        pi_public = bytes.fromhex(info["pk"])
        frame, ephemeral = self.pair_request(central.challenge())
        central.write(frame)
        _, response_key = p.pair_keys(self.link.code)
        response = self.wait(central, frame, response_key)
        self.pair_response = response
        if response["authentic"] and response["status"] == "ok":
            transcript = p.pair_transcript(self.link.pi_id, self.device_id, pi_public,
                                           p.p256_public_bytes(ephemeral))
            secret, confirm = p.pair_secret(p.p256_ecdh(ephemeral, pi_public), self.link.code,
                                            transcript)
            if not hmac.compare_digest(confirm, response["confirm"]):
                raise PiNotProven("the pair response's confirmation is not ours")
            self.adopt_secret(secret)
            self.counter = 0
        return response

    # -- commands and the catalogue -----------------------------------------------------

    def _freshness(self, now):
        now = int(time.time()) if now is None else int(now)
        code = p.totp(self.secret, now, self.link.alg, self.link.digits, self.link.period)
        return now, code

    def _next_counter(self, counter):
        if counter is None:
            self.counter += 1
            return self.counter
        self.counter = max(self.counter, counter)
        return counter

    def command_frame(self, challenge, action, args=(), now=None, counter=None):
        """A genuine command frame (counter: the next one unless given)."""
        if not self.paired:
            raise AssertionError("the phone is not paired")
        now, code = self._freshness(now)
        counter = self._next_counter(counter)
        return p.seal_request(p.T_COMMAND, self.request_key, self.device_id, counter,
                              p.command_plaintext(now, challenge, code, action, args))

    def catalogue_frame(self, challenge, first=0, now=None, counter=None):
        if not self.paired:
            raise AssertionError("the phone is not paired")
        now, code = self._freshness(now)
        counter = self._next_counter(counter)
        return p.seal_request(p.T_CATALOGUE, self.request_key, self.device_id, counter,
                              p.catalogue_plaintext(now, challenge, code, first))

    def open(self, frame, request):
        """A response frame opened as the answer to `request`."""
        return p.open_response(frame, self.response_key or bytes(32), request)

    def wait(self, central, request, key=None, timeout=None):
        """The answer to `request` among the Result frames: the first one that opens
        for it, or a plain refusal with its counter. Other frames (answers to other
        centrals, which every subscriber receives) are skipped."""
        key = self.response_key if key is None else key
        counter = int.from_bytes(request[20:28], "big")
        while True:
            frame = central.next_frame() if timeout is None else central.next_frame(timeout)
            response = p.open_response(frame, key or bytes(32), request)
            if response["authentic"] or (response["plain"] and response["counter"] == counter):
                response["frame"] = frame
                return response

    def command(self, central, action, args=(), now=None):
        """Reads a challenge, sends the command, returns the opened answer."""
        frame = self.command_frame(central.challenge(), action, args, now)
        central.write(frame)
        response = self.wait(central, frame)
        response["request"] = frame
        return response

    def catalogue(self, central, now=None):
        """Every page of the catalogue. Returns the last answer; when every page was
        authentic and ok it has `entries` (all pages) and `total`."""
        first, entries = 0, []
        while True:
            frame = self.catalogue_frame(central.challenge(), first, now)
            central.write(frame)
            response = self.wait(central, frame)
            if not response["authentic"] or response["status"] != "ok":
                return response
            page = response["catalogue"]
            if page["first"] != first:
                raise AssertionError("asked for page %d, got %d" % (first, page["first"]))
            entries += page["entries"]
            first += len(page["entries"])
            if first >= page["total"] or not page["entries"]:
                response["entries"], response["total"] = entries, page["total"]
                return response
