# SPDX-License-Identifier: GPL-3.0-or-later
"""End-to-end BLE tests, protocol version 2: the real bluezscriptd (peripheral,
hci0) and the real `bluezscript` client (central, hci1), or a phone in this process
(bzs_testlib.phone over a raw central), talking through the fake org.bluez on a
private dbus-daemon.

    cd tests/integration/ble && BZS_BIN_DIR=<build> PYTHONPATH=../../pylib \
        /usr/bin/python3 -m unittest -v test_ble_e2e

Each class shares one stack (bus, fake, daemon, state) across its tests; every test
uses its own paired device (its own counter and audit rows) and, for the CLI client,
its own configuration folder. Failures print the daemon's stderr and the fake's
trace. Set BZS_E2E_KEEP=1 to keep the temporary folders.
"""

import hashlib
import json
import os
import re
import signal
import sys
import time
import unittest

import dbus

from bzs_testlib import daemon, protocol
from bzs_testlib.asserts import DBusAssertions
from bzs_testlib.bluez import ADAPTER, CHRC, DEVICE, ERR
from bzs_testlib.central import RawCentral
from bzs_testlib.phone import Phone

KEEP = bool(os.environ.get("BZS_E2E_KEEP"))


def vectors(name):
    with open(os.path.join(protocol.VECTORS_DIR, name), encoding="utf-8") as f:
        return json.load(f)


def header_vectors():
    """malformed.json's frames refused from the clear header, by name."""
    return {c["name"]: c for c in vectors("malformed.json")["header"]}


class NotificationVectorsTest(unittest.TestCase):
    """The raw central cuts and joins notifications as spec/vectors/fragments.json
    says (the frames themselves are checked by ctest pylib_protocol_v2)."""

    def test_fragments(self):
        with open(protocol.FRAGMENTS_VECTORS, encoding="utf-8") as f:
            cases = json.load(f)["cases"]
        for case in cases:
            with self.subTest(case["name"]):
                frame = bytes.fromhex(case["frame"])
                frags = protocol.fragment(frame, case["mtu"])
                self.assertEqual([f.hex() for f in frags], case["fragments"])
                reassembler = protocol.Reassembler()
                out = [reassembler.feed(f) for f in frags]
                self.assertEqual(out[-1], frame)
                self.assertTrue(all(o is None for o in out[:-1]))


class E2ETest(DBusAssertions, unittest.TestCase):
    """Base: one stack per class; per test, artifacts on failure and checks that
    neither the daemon nor the fake broke."""

    extra_config = ""
    limits = None  # the Stack's permissive default
    daemon_env = None
    extra_actions = None
    fake_args = ("--temporary-timeout", "0")
    stack = None

    @classmethod
    def setUpClass(cls):
        cls.stack = daemon.Stack(cls.extra_config, fake_args=cls.fake_args, limits=cls.limits,
                                 daemon_env=cls.daemon_env, extra_actions=cls.extra_actions)

    @classmethod
    def tearDownClass(cls):
        stack = cls.stack
        status = stack.close()
        if status != 0:
            sys.stderr.write(stack.artifacts())
        if not KEEP:
            stack.remove_files()
        if status != 0:
            raise AssertionError("bluezscriptd exited with status %s on SIGTERM" % status)

    def setUp(self):
        self.daemon_mark = self.stack.log.mark()
        self.fake_mark = self.stack.fake_log_size()
        self.centrals = []

    def tearDown(self):
        for central in self.centrals:
            try:
                if central.prop(central.device, DEVICE, "Connected"):
                    central.disconnect()
            except (dbus.DBusException, AssertionError):
                pass  # the fake may have been replaced by the test
            central.close()
        with open(self.stack.fake_log, encoding="utf-8", errors="replace") as f:
            f.seek(self.fake_mark)
            crashed = "Traceback" in f.read()
        daemon_died = self.stack.daemon.poll() is not None
        result = self._outcome.result
        failed = any(test is self for test, _ in result.failures + result.errors)
        if failed or crashed or daemon_died:
            sys.stderr.write("\n=== artifacts of %s (temporary folder %s) ===\n%s" % (
                self.id(), self.stack.dir,
                self.stack.artifacts(self.daemon_mark, self.fake_mark)))
        self.assertFalse(crashed, "fake-bluetoothd raised an exception (trace above)")
        self.assertFalse(daemon_died, "bluezscriptd exited (status %s)" %
                         self.stack.daemon.returncode)

    # -- helpers ------------------------------------------------------------------

    def central(self, adapter="/org/bluez/hci1"):
        central = RawCentral(self.stack.bus.address, adapter)
        self.centrals.append(central)
        return central

    def ready_central(self, adapter="/org/bluez/hci1"):
        """A raw central connected, bonded and subscribed to Result."""
        central = self.central(adapter)
        central.connect()
        central.bond()
        central.subscribe()
        central.drain()
        return central

    def paired(self, name, actions=("mark",), adapter="/org/bluez/hci1"):
        """(phone, central): `pair add` (which opens the bonding window), a ready
        central on `adapter` and the pairing exchange over it."""
        link = self.stack.pair(name, actions)
        central = self.ready_central(adapter)
        phone = Phone(link)
        self.assertOk(phone.pair(central))
        return phone, central

    def ble_rows(self, device, action=None):
        """The device's BLE audit rows, oldest first (only `action`'s when given)."""
        return sorted((r for r in self.stack.audit(device) if r["transport"] == "ble" and
                       (action is None or r["action"] == action)), key=lambda r: r["id"])

    def new_audit_rows(self, before):
        """Audit rows added since `before` (a list from stack.audit()), oldest first."""
        seen = max((row["id"] for row in before), default=0)
        return sorted((r for r in self.stack.audit() if r["id"] > seen), key=lambda r: r["id"])

    def marker_files(self):
        return sorted(os.listdir(self.stack.markers))

    def counter(self, name):
        return self.stack.state()["counters"].get(name, 0)

    def assertTriggerOk(self, done):
        self.assertEqual(done.returncode, 0, "trigger failed:\nstdout: %s\nstderr: %s" % (
            done.stdout, done.stderr))

    def assertOk(self, response, output=None):
        """An authentic `ok` answer (with this output when given)."""
        self.assertTrue(response["authentic"], response)
        self.assertEqual(response["status"], "ok", response)
        if output is not None:
            self.assertEqual(response["output"], output)

    def assertPlain(self, response, status):
        """A plain refusal: unauthenticated by design, with this status."""
        self.assertEqual((response["plain"], response["authentic"], response["status"]),
                         (True, False, status), response)

    def assertOneRow(self, device, status, action):
        """The device's audit log has exactly one BLE row for `action`, with this status."""
        rows = self.ble_rows(device, action)
        self.assertEqual([(r["status"], r["action"]) for r in rows], [(status, action)])
        self.assertEqual(rows[0]["device_name"], device)
        self.assertTrue(rows[0]["completed"])
        return rows[0]


class CliClientTest(E2ETest):
    """The real client on hci1 against the real daemon on hci0: `client pair LINK`
    runs the pairing exchange, `trigger` the command."""

    def test_trigger_runs_the_action_with_its_arguments(self):
        link, xdg = self.stack.paired_client("alpha")
        listed = self.stack.device("alpha")
        self.assertEqual((listed["state"], listed["code_expires"]), ("active", None))
        done = self.stack.trigger(xdg, "mark", ["hello", "a.b:c-1"])
        self.assertTriggerOk(done)
        self.assertEqual(done.stdout, "marked 2\n")

        runs = self.stack.marker_runs("alpha")
        self.assertEqual(len(runs), 1)
        env = runs[0]["env"]
        self.assertEqual(env["BLUEZSCRIPT_DEVICE_NAME"], "alpha")
        self.assertEqual(env["BLUEZSCRIPT_DEVICE_ID"], link.device_id.hex())
        self.assertEqual(env["BLUEZSCRIPT_ACTION"], "mark")
        self.assertEqual(env["BLUEZSCRIPT_TRANSPORT"], "ble")
        self.assertEqual(runs[0]["args"], ["hello", "a.b:c-1"])

        row = self.assertOneRow("alpha", "ok", "mark")
        self.assertEqual(row["exit_code"], 0)
        self.assertEqual(row["device_id"], link.device_id.hex())
        self.assertEqual(row["request_id"], env["BLUEZSCRIPT_REQUEST_ID"])

    def test_the_same_link_twice_is_refused_as_used(self):
        link, _ = self.stack.paired_client("once-only")
        xdg = os.path.join(self.stack.dir, "second-client")
        os.mkdir(xdg, 0o700)
        done = self.stack.cli(["client", "pair", link.uri, "--adapter", "hci1"], xdg=xdg,
                              timeout=90)
        self.assertNotEqual(done.returncode, 0, done.stdout)
        self.assertIn("code_used", done.stderr)

    def test_revoked_device_is_refused(self):
        _, xdg = self.stack.paired_client("revoked")
        self.stack.check_cli(["pair", "revoke", "revoked"])
        done = self.stack.trigger(xdg, "mark", ["never"])
        # The Pi answers an unknown or revoked device in plain (it has no key it may
        # use), so the client cannot trust the claimed reason: exit 6.
        self.assertEqual(done.returncode, 6, done.stderr)
        self.assertIn("revoked", done.stderr)
        self.assertEqual(done.stdout, "")
        self.assertEqual(self.stack.marker_runs("revoked"), [])
        # The pairing, then the refusal: a revoked device's request is not opened,
        # so the Pi never learns which action it asked for.
        rows = self.ble_rows("revoked")
        self.assertEqual([(r["status"], r["action"], r["detail"]) for r in rows],
                         [("ok", "", "paired"), ("revoked", "", "device was revoked")])

    def test_action_not_permitted_or_unknown_is_refused(self):
        _, xdg = self.stack.paired_client("limited", actions=("mark",))
        done = self.stack.trigger(xdg, "other")
        self.assertEqual(done.returncode, 3, done.stderr)
        self.assertIn("(not_permitted)", done.stderr)

        done = self.stack.trigger(xdg, "nosuch")
        self.assertEqual(done.returncode, 3, done.stderr)
        self.assertIn("(unknown_action)", done.stderr)

        self.assertEqual(self.stack.marker_runs("limited"), [])
        rows = [r for r in self.ble_rows("limited") if r["action"]]
        self.assertEqual(sorted((r["status"], r["action"]) for r in rows),
                         [("not_permitted", "other"), ("unknown_action", "nosuch")])

    def test_long_result_at_mtu_23(self):
        _, xdg_long = self.stack.paired_client("long", actions=("long",))
        _, xdg_huge = self.stack.paired_client("huge", actions=("huge",))
        self.stack.control("SetMtu", "u", (23,))
        try:
            notified = self.counter("Notifications")
            done = self.stack.trigger(xdg_long, "long")
            self.assertTriggerOk(done)
            self.assertEqual(done.stdout, daemon.LONG_OUTPUT)
            # The whole sealed response went as 19-byte fragments: the link's MTU
            # was 23 and the client reassembled them. Header 24, status, time and
            # flags 10, exit code 4, the output, tag 16.
            frame_len = 24 + 14 + len(daemon.LONG_OUTPUT) + 16
            self.assertEqual(self.counter("Notifications") - notified, -(-frame_len // 19))

            done = self.stack.trigger(xdg_huge, "huge")
            self.assertTriggerOk(done)
            self.assertEqual(len(daemon.HUGE_OUTPUT), 600)
            self.assertEqual(done.stdout, daemon.HUGE_OUTPUT[:protocol.MAX_OUTPUT])
        finally:
            self.stack.control("SetMtu", "u", (517,))
        self.assertOneRow("long", "ok", "long")
        self.assertOneRow("huge", "ok", "huge")


class PairingTest(E2ETest):
    """Pairing by code (issue 12): the owner's link, the exchange, one use only;
    a pending device authenticates nothing."""

    def test_pairing_by_code_then_the_device_runs_commands(self):
        link = self.stack.pair("anna")
        self.assertEqual(link.reply["uri"], link.uri)
        self.assertGreater(link.reply["code_expires"], time.time())
        self.assertEqual(self.stack.device("anna")["state"], "pending")
        central = self.ready_central()
        phone = Phone(link)
        answer = phone.pair(central)
        self.assertOk(answer)
        self.assertEqual(answer["counter"], 0)
        self.assertEqual(phone.info["name"], "e2e-pi")
        self.assertIsInstance(answer["synced"], bool)
        listed = self.stack.device("anna")
        self.assertEqual((listed["state"], listed["code_expires"]), ("active", None))

        response = phone.command(central, "mark", ["first"])
        self.assertOk(response, b"marked 1\n")
        self.assertEqual((response["exit_code"], response["counter"]), (0, 1))
        self.assertEqual([r["args"] for r in self.stack.marker_runs("anna")], [["first"]])
        self.assertOneRow("anna", "ok", "mark")

    def test_a_paired_phone_runs_commands_on_a_later_connection(self):
        phone = self.stack.paired_phone("dora")  # over a central of its own, then gone
        self.assertTrue(phone.paired)
        central = self.ready_central()
        self.assertOk(phone.command(central, "mark", ["later"]), b"marked 1\n")
        self.assertEqual([r["args"] for r in self.stack.marker_runs("dora")], [["later"]])

    def test_a_code_used_twice_is_refused_and_audited(self):
        link = self.stack.pair("bert")
        central = self.ready_central()
        owner = Phone(link)
        self.assertOk(owner.pair(central))
        before = self.stack.audit()
        thief = Phone(link)
        self.assertPlain(thief.pair(central), "code_used")
        self.assertFalse(thief.paired)
        rows = self.new_audit_rows(before)
        self.assertEqual([(r["status"], r["transport"], r["device_name"]) for r in rows],
                         [("code_used", "ble", "bert")])
        # The owner's phone keeps working.
        self.assertOk(owner.command(central, "mark", ["still"]), b"marked 1\n")

    def test_a_pending_device_is_refused_as_unknown(self):
        link = self.stack.pair("carla")
        central = self.ready_central()
        phone = Phone(link)
        # A phone that claims the pending device: whatever its key, the Pi looks the
        # device up before it opens anything.
        phone.adopt_secret(os.urandom(32))
        before = self.stack.audit()
        self.assertPlain(phone.command(central, "mark", ["never"]), "unknown_device")
        rows = self.new_audit_rows(before)
        self.assertEqual([(r["status"], r["device_name"]) for r in rows],
                         [("unknown_device", "carla")])
        self.assertIn("not paired yet", rows[0]["detail"])
        self.assertEqual(self.stack.marker_runs("carla"), [])
        # The refusal did not use the code: the owner's phone still pairs.
        owner = Phone(link)
        self.assertOk(owner.pair(central))
        self.assertOk(owner.command(central, "mark", ["now"]), b"marked 1\n")


class ExpiredCodeTest(E2ETest):
    """A code used after its window (the shortest the configuration allows)."""

    extra_config = "[pairing]\nwindow_seconds = 30\n"

    def test_an_expired_code_is_refused_and_a_new_code_works(self):
        link = self.stack.pair("late")
        central = self.ready_central()  # bonded while the window is open
        expires = link.reply["code_expires"]
        # Waiting for the window to end is what this test is about.
        time.sleep(max(0.0, expires + 1.5 - time.time()))
        before = self.stack.audit()
        phone = Phone(link)
        answer = phone.pair(central)
        # The request opened under the code, so the refusal is sealed with it: the
        # phone knows the Pi (holder of the code) says so, and keeps no secret.
        self.assertEqual((answer["authentic"], answer["status"]), (True, "code_expired"))
        self.assertNotIn("confirm", answer)
        self.assertFalse(phone.paired)
        rows = self.new_audit_rows(before)
        self.assertEqual([(r["status"], r["device_name"]) for r in rows],
                         [("code_expired", "late")])
        self.assertEqual(self.stack.device("late")["state"], "pending")

        reply = json.loads(self.stack.check_cli(["pair", "code", "late", "--no-qr",
                                                 "--json"]).stdout)
        fresh = Phone(reply["uri"])
        self.assertEqual(fresh.device_id, link.device_id)
        self.assertNotEqual(fresh.link.code, link.code)
        self.assertPlain(Phone(link).pair(central), "bad_mac")  # the old code is gone
        self.assertOk(fresh.pair(central))
        self.assertOk(fresh.command(central, "mark", ["at-last"]), b"marked 1\n")


class RawCentralTest(E2ETest):
    """Frames the real client never sends, from a phone in this process."""

    def test_replayed_frame_is_refused(self):
        phone, central = self.paired("replay")
        frame = phone.command_frame(central.challenge(), "mark", ["once"])
        central.write(frame)
        first = phone.wait(central, frame)
        self.assertOk(first, b"marked 1\n")
        self.assertEqual(first["counter"], 1)
        self.assertEqual(len(self.stack.marker_runs("replay")), 1)

        # The identical bytes again, on the same link: it authenticates, so the
        # answer is sealed and bound to it.
        central.write(frame)
        again = phone.wait(central, frame)
        self.assertTrue(again["authentic"])
        self.assertEqual((again["status"], again["counter"]), ("replayed", 1))

        # And as an eavesdropper would: on a new link, after reading a challenge.
        central.disconnect()
        central.connect()
        central.subscribe()
        central.drain()
        central.challenge()
        central.write(frame)
        self.assertEqual(phone.wait(central, frame)["status"], "replayed")

        self.assertEqual(len(self.stack.marker_runs("replay")), 1)
        rows = self.ble_rows("replay", "mark")
        self.assertEqual([r["status"] for r in rows], ["ok", "replayed", "replayed"])
        for row in rows[1:]:
            self.assertEqual(row["detail"], "counter 1 is not above the last accepted 1")

    def test_two_commands_one_second_apart_both_run(self):
        """No cooldown: one TOTP step serves both; each frame is still single-use."""
        phone, central = self.paired("twice")
        first = phone.command(central, "mark", ["on"])
        self.assertOk(first, b"marked 1\n")
        time.sleep(1)
        second = phone.command(central, "mark", ["off"])
        self.assertOk(second, b"marked 1\n")
        self.assertEqual((first["counter"], second["counter"]), (1, 2))
        self.assertEqual(sorted(r["args"] for r in self.stack.marker_runs("twice")),
                         [["off"], ["on"]])
        # Either frame again is a replay.
        central.challenge()
        central.write(first["request"])
        self.assertEqual(phone.wait(central, first["request"])["status"], "replayed")
        self.assertEqual([r["status"] for r in self.ble_rows("twice", "mark")],
                         ["ok", "ok", "replayed"])

    def test_disconnect_in_the_middle_of_a_write_runs_nothing(self):
        phone, central = self.paired("halfway")
        frame = phone.command_frame(central.challenge(), "mark", ["halfway"])
        half = len(frame) // 2
        writes = self.counter("WriteValue")
        central.write(frame[:half], offset=0)
        self.assertEqual(self.counter("WriteValue"), writes + 1)  # the daemon took it
        mark = self.stack.log.mark()
        central.disconnect()
        self.stack.log.wait_for(r"BLE: fake-hci1 \(02:BD:5C:00:00:11\) disconnected", mark)
        # Counted from here: on a loaded machine the half frame may have been
        # answered as cut short (2 s) before the disconnect arrived; that is right too.
        before = self.stack.audit()

        # The daemon dropped the partial frame with the link: the rest of it on a
        # new link has nothing to continue.
        central.connect()
        central.subscribe()
        central.drain()
        self.assertDBusError(ERR + "InvalidArguments", "Invalid offset",
                             central.write, frame[half:], offset=half)
        # The refused write is an attempt: audited as malformed, with the reason.
        refused = self.new_audit_rows(before)
        self.assertEqual([(r["status"], r["transport"]) for r in refused], [("malformed", "ble")])
        self.assertIn("does not continue the 0 bytes received", refused[0]["detail"])
        self.assertEqual(self.stack.marker_runs("halfway"), [])

        # A whole command on the new link works (its counter was never used).
        response = phone.command(central, "mark", ["complete"])
        self.assertOk(response, b"marked 1\n")
        self.assertEqual(response["counter"], 2)
        runs = self.stack.marker_runs("halfway")
        self.assertEqual([r["args"] for r in runs], [["complete"]])
        self.assertEqual([(r["status"], r["device_name"]) for r in self.new_audit_rows(before)],
                         [("malformed", None), ("ok", "halfway")])

    def test_a_header_that_can_never_be_valid_is_answered_at_once(self):
        """malformed.json's header cases whose assembler progress is `invalid`:
        refused in plain as the write arrives, not by the incomplete-frame timer."""
        self.stack.pair("never-whole")  # opens the pairing window: the central may bond
        central = self.ready_central()
        files = self.marker_files()
        cases = [c for c in header_vectors().values() if c["progress"] == "invalid"]
        self.assertGreaterEqual(len(cases), 4)
        for case in cases:
            with self.subTest(case["name"]):
                before = self.stack.audit()
                mark = self.stack.log.mark()
                central.write(bytes.fromhex(case["frame"]))
                self.assertPlain(central.next_response(), case["status"])
                index = self.stack.log.wait_for(r"BLE command from .*: %s" % case["status"], mark)
                line = self.stack.log.text(index).splitlines()[0]
                self.assertNotIn("frame incomplete", line)
                rows = self.new_audit_rows(before)
                self.assertEqual([(r["status"], r["transport"]) for r in rows],
                                 [(case["status"], "ble")])
        self.assertEqual(self.marker_files(), files)

    def test_a_frame_cut_short_is_answered_malformed_after_the_timeout(self):
        """Truncated writes (issue 12): a prefix that can still become a frame is
        held, then answered `malformed` 2 s after its last write."""
        self.stack.pair("cut-short")  # opens the pairing window: the central may bond
        central = self.ready_central()
        files = self.marker_files()
        cases = [c for c in header_vectors().values() if c["progress"] == "need_more"]
        self.assertGreaterEqual(len(cases), 3)
        for case in cases:
            data = bytes.fromhex(case["frame"])
            with self.subTest(case["name"]):
                before = self.stack.audit()
                mark = self.stack.log.mark()
                central.write(data)
                self.assertPlain(central.next_response(), "malformed")
                self.stack.log.wait_for(
                    r"BLE command from .*: malformed \(frame incomplete 2 s after its last "
                    r"write: %d of " % len(data), mark)
                rows = self.new_audit_rows(before)
                self.assertEqual([(r["status"], r["transport"]) for r in rows],
                                 [("malformed", "ble")])
        # The held bytes are gone: a continuation has nothing to continue...
        self.assertDBusError(ERR + "InvalidArguments", "Invalid offset",
                             central.write, b"\x01", offset=1)
        # ...and a write at offset 0 starts a new frame as always.
        central.write(bytes.fromhex(header_vectors()["version-1"]["frame"]))
        self.assertPlain(central.next_response(), "unknown_version")
        self.assertEqual(self.marker_files(), files)

    def test_oversized_write_is_refused_before_the_daemon(self):
        self.stack.pair("oversized")  # opens the pairing window: the central may bond
        central = self.ready_central()
        before = self.stack.audit()
        writes = self.counter("WriteValue")
        frame = bytes([2, 1, 2, 1]) + bytes(509)
        self.assertEqual(len(frame), 513)
        self.assertDBusError(ERR + "InvalidArguments", "Invalid Length", central.write, frame)
        self.assertEqual(self.counter("WriteValue"), writes)
        self.assertEqual(self.new_audit_rows(before), [])

    def test_frame_in_offset_pieces_is_accepted_and_a_wrong_offset_refused(self):
        phone, central = self.paired("pieces")
        self.stack.control("SetSplitWrites", "u", (7,))
        try:
            frame = phone.command_frame(central.challenge(), "mark", ["in-pieces"])
            writes = self.counter("WriteValue")
            central.write(frame)
            response = phone.wait(central, frame)
            self.assertEqual(self.counter("WriteValue") - writes, -(-len(frame) // 7))
        finally:
            self.stack.control("SetSplitWrites", "u", (0,))
        self.assertOk(response, b"marked 1\n")
        self.assertEqual([r["args"] for r in self.stack.marker_runs("pieces")], [["in-pieces"]])
        self.assertOneRow("pieces", "ok", "mark")

        # An offset that continues nothing: the daemon's InvalidOffset, as the
        # central sees it through ATT.
        before = self.stack.audit()
        files = self.marker_files()
        self.assertDBusError(ERR + "InvalidArguments", "Invalid offset",
                             central.write, frame[5:20], offset=5)
        refused = self.new_audit_rows(before)
        self.assertEqual([(r["status"], r["transport"]) for r in refused], [("malformed", "ble")])
        self.assertIn("command write refused: offset 5", refused[0]["detail"])
        self.assertEqual(self.marker_files(), files)


class CatalogueTest(E2ETest):
    """The authenticated catalogue (issue 12): exactly the actions this device may
    run now, with the owner's metadata."""

    extra_actions = {
        "level": ('#!/bin/sh\necho "level $1"\n',
                  'description = "sets the level"\nconfirm = true\nallow_args = true\n'
                  'arg_choices = ["low", "high"]\n'),
    }

    def names(self, answer):
        self.assertOk(answer)
        self.assertEqual(answer["total"], len(answer["entries"]))
        return [e["name"] for e in answer["entries"]]

    def test_the_catalogue_is_exactly_the_granted_actions(self):
        phone, central = self.paired("cat-granted", actions=("mark", "other"))
        answer = phone.catalogue(central)
        self.assertEqual(self.names(answer), ["mark", "other"])  # by name
        mark, other = answer["entries"]
        # allow_args without a rule of its own: the default pattern, sent as such.
        self.assertEqual((mark["description"], mark["confirm"], mark["kind"], mark["pattern"]),
                         ("records its environment and arguments", False, protocol.ARG_PATTERN,
                          "[A-Za-z0-9._:-]{1,64}"))
        self.assertGreaterEqual(mark["max_args"], 1)
        self.assertEqual((other["description"], other["confirm"], other["kind"],
                          other["max_args"]), ("", False, protocol.ARG_NONE, 0))
        self.assertIsInstance(answer["synced"], bool)
        # Nothing ran, and a catalogue request is not a command.
        self.assertEqual(self.stack.marker_runs("cat-granted"), [])
        self.assertEqual(self.ble_rows("cat-granted", "mark"), [])

    def test_allow_and_deny_change_the_catalogue_at_the_next_connection(self):
        phone, central = self.paired("cat-changes", actions=("mark",))
        self.assertEqual(self.names(phone.catalogue(central)), ["mark"])
        self.stack.check_cli(["pair", "allow", "cat-changes", "other", "level"])
        self.stack.check_cli(["pair", "deny", "cat-changes", "mark"])
        central.disconnect()
        central.connect()
        central.subscribe()
        central.drain()
        self.assertEqual(self.names(phone.catalogue(central)), ["level", "other"])
        refused = phone.command(central, "mark", ["gone"])
        self.assertTrue(refused["authentic"])
        self.assertEqual(refused["status"], "not_permitted")
        self.assertEqual(self.stack.marker_runs("cat-changes"), [])

    def test_confirm_and_choices_come_from_the_action_file(self):
        phone, central = self.paired("cat-meta", actions=("level",))
        answer = phone.catalogue(central)
        self.assertEqual(self.names(answer), ["level"])
        [level] = answer["entries"]
        self.assertEqual((level["description"], level["confirm"], level["kind"],
                          level["choices"]),
                         ("sets the level", True, protocol.ARG_CHOICES, ["low", "high"]))
        self.assertOk(phone.command(central, "level", ["high"]), b"level high\n")
        wrong = phone.command(central, "level", ["medium"])
        self.assertTrue(wrong["authentic"])
        self.assertEqual(wrong["status"], "bad_arguments")
        self.assertEqual([r["status"] for r in self.ble_rows("cat-meta", "level")],
                         ["ok", "bad_arguments"])


class SecondCentralTest(E2ETest):
    """Result notifications reach every subscribed central (issue 12, item 5); a
    second bonded central gets the owner's answer and cannot open it."""

    fake_args = ("--temporary-timeout", "0", "--adapters", "3")

    def test_another_bonded_central_cannot_read_the_answer(self):
        owner, owner_central = self.paired("owner-2", adapter="/org/bluez/hci2")
        # Eve is a paired device of her own, bonded and subscribed on hci1.
        eve, eve_central = self.paired("eve")
        owner_central.drain()
        eve_central.drain()
        answer = owner.command(owner_central, "mark", ["secret-arg"])
        self.assertOk(answer, b"marked 1\n")

        overheard = eve_central.next_frame()
        self.assertEqual(overheard, answer["frame"])
        self.assertNotIn(b"marked", overheard)
        # Even with the request's tag in hand, her keys do not open it.
        opened = eve.open(overheard, answer["request"])
        self.assertEqual((opened["authentic"], opened["plain"]), (False, False))
        self.assertNotIn("output", opened)
        self.assertFalse(protocol.open_response(overheard, os.urandom(32),
                                                answer["request"])["authentic"])
        self.assertEqual([r["args"] for r in self.stack.marker_runs("owner-2")],
                         [["secret-arg"]])
        self.assertEqual(self.stack.marker_runs("eve"), [])


class RecoveryTest(E2ETest):
    """The daemon follows bluetoothd and its adapter coming and going."""

    def test_bluetoothd_killed_and_restarted(self):
        _, xdg = self.stack.paired_client("restart")
        # A session in progress: connected, bonded, subscribed, challenge read.
        central = self.ready_central()
        central.challenge()
        mark = self.stack.log.mark()
        self.stack.stop_fake(kill=True)
        gone = self.stack.log.wait_for(r"BLE: waiting for bluetoothd", mark)
        self.stack.start_fake()
        state = self.stack.wait_registered(gone)
        self.assertEqual(state["devices"], [])  # a fresh bluetoothd: no bonds, no links

        done = self.stack.trigger(xdg, "mark", ["after-restart"])
        self.assertTriggerOk(done)
        self.assertEqual([r["args"] for r in self.stack.marker_runs("restart")],
                         [["after-restart"]])
        self.assertOneRow("restart", "ok", "mark")

    def test_adapter_removed_and_added_again(self):
        _, xdg = self.stack.paired_client("replug")
        mark = self.stack.log.mark()
        self.stack.control("RemoveAdapter", "s", ("hci0",))
        self.stack.log.wait_for(r"adapter hci0 removed", mark)
        gone = self.stack.log.wait_for(r"BLE: adapter hci0 is not present; waiting for it", mark)
        state = self.stack.state()
        self.assertNotIn("hci0", state["adapters"])
        self.assertEqual([a for a in state["applications"] if a["adapter"] == "hci0"], [])

        self.stack.control("AddAdapter", "s", ("hci0",))
        self.stack.wait_registered(gone)
        done = self.stack.trigger(xdg, "mark", ["after-replug"])
        self.assertTriggerOk(done)
        self.assertEqual([r["args"] for r in self.stack.marker_runs("replug")],
                         [["after-replug"]])
        self.assertOneRow("replug", "ok", "mark")


class BondRemovalTest(E2ETest):
    """Revoking a device removes BlueZ's bond with the address its commands came
    from (docs/ble.md, "Bonds of revoked devices")."""

    CENTRAL = "02:BD:5C:00:00:11"  # hci1, as the daemon sees it on hci0
    CENTRAL_ON_PI = "/org/bluez/hci0/dev_02_BD_5C_00_00_11"

    def bonded_central_that_ran_a_command(self, name):
        """A fresh bond (hci1 forgets any old one first), the pairing exchange and
        one accepted command, from which the daemon learns the address."""
        link = self.stack.pair(name)
        central = self.central()
        if central.paired():
            central.call(central.adapter, ADAPTER, "RemoveDevice", "o",
                         (dbus.ObjectPath(central.device),))
        central.connect()
        central.bond()
        central.subscribe()
        central.drain()
        phone = Phone(link)
        self.assertOk(phone.pair(central))
        self.assertOk(phone.command(central, "mark", [name]))
        listed = self.stack.device(name)
        self.assertEqual((listed["ble_address"], listed["ble_bond_removed_at"]),
                         (self.CENTRAL, None))
        return phone, central

    def assertBondRemoved(self, name, mark):
        self.stack.log.wait_for(r"BLE bond of '%s' \(%s\) removed" % (name, self.CENTRAL), mark)
        pi_side = [d for d in self.stack.state()["devices"]
                   if d["adapter"] == "hci0" and d["address"] == self.CENTRAL]
        self.assertEqual(pi_side, [])
        rows = [r for r in self.stack.audit(name) if r["detail"].startswith("BLE bond")]
        self.assertEqual([(r["transport"], r["status"], r["detail"]) for r in rows],
                         [("ble", "revoked", "BLE bond of '%s' (%s) removed" % (name,
                                                                             self.CENTRAL))])
        self.assertIsNotNone(self.stack.device(name)["ble_bond_removed_at"])

    def test_revoked_from_the_cli_the_bond_goes_at_sighup(self):
        phone, central = self.bonded_central_that_ran_a_command("cli-revoked")
        mark = self.stack.log.mark()
        done = self.stack.check_cli(["pair", "revoke", "cli-revoked"])
        self.assertIn("bluezscriptd removes its BLE bond (%s)" % self.CENTRAL, done.stdout)
        self.stack.daemon.send_signal(signal.SIGHUP)
        self.assertBondRemoved("cli-revoked", mark)
        # The phone kept its half, which no longer encrypts a link to the Pi: it
        # reaches Info only, like any stranger.
        self.assertTrue(central.paired())
        central.connect()
        [pi_side] = [d for d in self.stack.state()["devices"] if d["path"] == self.CENTRAL_ON_PI]
        self.assertFalse(pi_side["paired"])
        frame = phone.command_frame(bytes(16), "mark", ["after"])
        self.assertDBusError(ERR + "NotPermitted", "Not paired", central.write, frame)
        self.assertEqual([r["args"] for r in self.stack.marker_runs("cli-revoked")],
                         [["cli-revoked"]])

    def test_a_revoked_device_that_connects_again_loses_its_bond(self):
        _, central = self.bonded_central_that_ran_a_command("comes-back")
        central.disconnect()
        mark = self.stack.log.mark()
        self.stack.check_cli(["pair", "revoke", "comes-back"])
        # No SIGHUP: the bonded connection makes the daemon look.
        central.connect()
        self.assertBondRemoved("comes-back", mark)


class BondingRefusedTest(E2ETest):
    """The owner's pairing window is closed: no new bond, and an unbonded link
    reaches nothing but Info (ble.require_bonding = true)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.link = cls.stack.pair("latecomer")
            # `pair add` opened the window; close it.
            changed = cls.stack.close_pairing_window()
            if changed != 1:
                raise AssertionError("no pairing_window_until setting to close")
        except BaseException:
            super().tearDownClass()
            raise

    def test_client_bond_is_refused(self):
        xdg = os.path.join(self.stack.dir, "refused-client")
        os.makedirs(xdg, 0o700, exist_ok=True)
        done = self.stack.cli(["client", "pair", self.link.uri, "--adapter", "hci1"], xdg=xdg,
                              timeout=90)
        self.assertEqual(done.returncode, 5, done.stderr)
        self.assertIn("bond refused by the Pi", done.stderr)
        self.stack.log.wait_for(r"pairing: RequestConfirmation .* rejected", self.daemon_mark)
        state = self.stack.state()
        self.assertFalse(any(d["paired"] for d in state["devices"]), state["devices"])
        self.assertEqual(self.stack.device("latecomer")["state"], "pending")
        self.assertEqual([r for r in self.stack.audit() if r["transport"] == "ble"], [])

    def test_unbonded_central_reaches_only_info(self):
        central = self.central()
        central.connect()
        self.assertFalse(central.paired())
        info = json.loads(central.read(protocol.INFO_UUID))
        self.assertEqual(sorted(info), ["name", "pi", "pk", "synced", "time", "v"])
        self.assertEqual((info["v"], info["name"], info["pi"]),
                         (2, "e2e-pi", self.link.pi_id.hex()))
        self.assertEqual(hashlib.sha256(bytes.fromhex(info["pk"])).digest(), self.link.pk_hash)
        self.assertIsInstance(info["time"], int)

        reads, writes = self.counter("ReadValue"), self.counter("WriteValue")
        self.assertDBusError(ERR + "NotPermitted", "Not paired", central.read,
                             protocol.CHALLENGE_UUID)
        phone = Phone(self.link)
        frame, _ = phone.pair_request(bytes(16))
        self.assertDBusError(ERR + "NotPermitted", "Not paired", central.write, frame)
        self.assertDBusError(ERR + "NotPermitted", "Not paired", central.subscribe)
        # Bonding itself is refused by the daemon's agent while the window is closed.
        self.assertDBusError(ERR + "AuthenticationRejected", None, central.bond)
        self.assertFalse(central.paired())

        # The daemon was never asked for a challenge nor given a byte.
        self.assertEqual((self.counter("ReadValue"), self.counter("WriteValue")), (reads, writes))
        self.assertEqual(self.stack.device("latecomer")["state"], "pending")
        self.assertEqual([r for r in self.stack.audit() if r["transport"] == "ble"], [])


FLOOD = 10000
SUMMARY = re.compile(r"^(\d+) frames? refused in \d+ s (from (/org/bluez/\S+)|by the Pi-wide "
                     r"limit on unauthenticated frames)$")


class FloodTest(E2ETest):
    """Issue 12: 10,000 bad frames from one central while the owner's phone on
    another keeps getting `ok`, with the default limits (Pi-wide lowered so that
    both limits are exercised)."""

    fake_args = ("--temporary-timeout", "0", "--adapters", "3")
    limits = {"link_max_failures_per_minute": 10, "global_max_failures_per_minute": 5,
              "global_lockout_seconds": 60}

    def test_ten_thousand_bad_frames_do_not_stop_the_owner(self):
        owner, phone = self.paired("owner", adapter="/org/bluez/hci2")
        # Result notifications go to every subscribed central: the phone listens
        # only around its own commands and Phone.wait picks its answer (it opens
        # for its request; the flood's plain refusals carry other counters).
        phone.call(phone.chars[protocol.RESULT_UUID], CHRC, "StopNotify")
        flooder = self.central()  # hci1: connected and bonded, not subscribed
        flooder.connect()
        flooder.bond()
        # A complete frame whose length field is below the smallest request.
        garbage = bytes([2, 1, 0, 62]) + b"\xa5" * 58
        # Well-formed frames of devices the Pi does not know, counters far from the
        # owner's.
        strangers = [protocol.seal_request(protocol.T_COMMAND, os.urandom(32), os.urandom(16),
                                           1 << 40, protocol.command_plaintext(
                                               int(time.time()), bytes(16), 0, "mark"))
                     for _ in range(16)]
        owner_answers = []
        started = time.monotonic()
        for i in range(FLOOD):
            flooder.write(garbage if i % 7 == 0 else strangers[i % len(strangers)])
            if i % 1000 == 999:
                phone.subscribe()
                phone.drain()
                answer = owner.command(phone, "mark", [str(len(owner_answers) + 1)])
                phone.call(phone.chars[protocol.RESULT_UUID], CHRC, "StopNotify")
                self.assertTrue(answer["authentic"], answer)
                owner_answers.append(answer["status"])
        elapsed = time.monotonic() - started
        sys.stderr.write("\n%d bad frames and %d owner commands through the fake in %.1f s "
                         "(%.2f ms a frame)\n" % (FLOOD, len(owner_answers), elapsed,
                                                  1000 * elapsed / FLOOD))
        self.assertEqual(owner_answers, ["ok"] * 10)
        self.assertEqual(len(self.stack.marker_runs("owner")), 10)

        # Stopping the daemon writes the summaries of windows still open.
        self.assertEqual(self.stack.stop_daemon(), 0)
        rows = [r for r in self.stack.audit() if r["transport"] == "ble"]
        self.stack.start_daemon()  # for the checks of tearDown

        owner_rows = [r for r in rows if r["device_name"] == "owner" and r["action"]]
        self.assertEqual([r["status"] for r in owner_rows], ["ok"] * 10)
        single = [r for r in rows if r["device_name"] is None and r["status"] != "rate_limited"]
        self.assertTrue(all(r["status"] in ("malformed", "unknown_device") for r in single),
                        single)
        summaries = [r for r in rows if r["status"] == "rate_limited"]
        counted = 0
        sources = set()
        for row in summaries:
            match = SUMMARY.match(row["detail"])
            self.assertIsNotNone(match, row["detail"])
            counted += int(match.group(1))
            sources.add(match.group(3) or "Pi-wide")
        # Every flood frame is accounted for: its own row, or counted in a summary.
        self.assertEqual(len(single) + counted, FLOOD)
        # Only the first few were read at all (11 a minute at most, per link window).
        self.assertLessEqual(len(single), 11 * (int(elapsed // 60) + 1))
        # The fake names adapter hciN 02:BD:5C:00:00:(0x10+N): hci1 is ...:11 on the Pi.
        self.assertEqual(sources, {"Pi-wide", "/org/bluez/hci0/dev_02_BD_5C_00_00_11"})


class UnsynchronisedClockTest(E2ETest):
    """A Pi without a synchronised clock, three days and two hours behind (the
    test hook BLUEZSCRIPT_TEST_CLOCK), pairs and serves a phone's command at once;
    Info and every sealed answer say so."""

    daemon_env = {"BLUEZSCRIPT_TEST_CLOCK": "unsynchronized:-266400"}

    def test_clock_days_behind_is_advanced_by_the_first_command(self):
        self.stack.log.wait_for(r"BLUEZSCRIPT_TEST_CLOCK is set", 0)
        phone, central = self.paired("clock")
        # Info (read by the pairing) shows the Pi's own clock, days behind.
        self.assertFalse(phone.info["synced"])
        self.assertLess(abs(phone.info["time"] - (time.time() - 266400)), 120, phone.info)
        self.assertFalse(phone.pair_response["synced"])

        response = phone.command(central, "mark", ["now"])
        self.assertOk(response, b"marked 1\n")
        # The head of the sealed answer: not synchronised, and the verification
        # clock, advanced to the phone's timestamp by this very command.
        self.assertFalse(response["synced"])
        self.assertLess(abs(response["pi_time"] - time.time()), 120, response)
        self.assertEqual(len(self.stack.marker_runs("clock")), 1)
        self.stack.log.wait_for(r"clock advanced by 3 d \d h from the timestamp of device "
                                r"'clock'", self.daemon_mark)

        rows = self.ble_rows("clock")
        advance = [r for r in rows if r["detail"].startswith("clock advanced")]
        self.assertEqual(len(advance), 1, rows)
        self.assertRegex(advance[0]["detail"], r"^clock advanced by 3 d [12] h from the "
                                               r"timestamp of device 'clock' \(the Pi's clock "
                                               r"is not synchronised\)$")
        self.assertEqual([r["status"] for r in self.ble_rows("clock", "mark")], ["ok"])

        # A second command right after: no second advance, no cooldown.
        again = phone.command(central, "mark", ["again"])
        self.assertOk(again, b"marked 1\n")
        self.assertFalse(again["synced"])
        self.assertEqual([r["status"] for r in self.ble_rows("clock", "mark")], ["ok", "ok"])
        self.assertEqual(len([r for r in self.ble_rows("clock")
                              if r["detail"].startswith("clock advanced")]), 1)
        # The rows are at the phone's time (the verification clock the command
        # advanced), not the Pi's three days behind.
        for row in advance + self.ble_rows("clock", "mark"):
            self.assertLess(abs(row["time"] - time.time()), 120, row)


if __name__ == "__main__":
    unittest.main()
