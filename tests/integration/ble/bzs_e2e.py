# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers of the BLE end-to-end tests (test_ble_e2e.py).

- A Python encoder of the BlueZscript protocol (docs/protocol.md), checked against
  spec/vectors by the tests, so that a "raw central" can build genuine frames.
- Stack: a private dbus-daemon, tests/tools/fake_bluetoothd.py, the real
  `bluezscriptd` (hci0) and the real `bluezscript` CLI (owner commands, and the
  client on hci1).
- RawCentral: a GATT central in this process (dbus-python on hci1) for what the
  CLI client never does on purpose: replays, partial writes, garbage.

Run with Debian's /usr/bin/python3 (python3-dbus, python3-gi, python3-cryptography).
Every wait is bounded and driven by an event (a log line, a D-Bus signal or reply).
"""

import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

import dbus
import dbus.mainloop.glib
import dbus.service
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from gi.repository import GLib

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
TOOLS_DIR = os.path.join(SOURCE_DIR, "tests", "tools")
VECTORS_DIR = os.path.join(SOURCE_DIR, "spec", "vectors")
sys.path.insert(0, TOOLS_DIR)
import bus_harness  # noqa: E402

dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)

BLUEZ = "org.bluez"
ERR = "org.bluez.Error."
PROPS = "org.freedesktop.DBus.Properties"
OM = "org.freedesktop.DBus.ObjectManager"
CHRC = "org.bluez.GattCharacteristic1"
DEVICE = "org.bluez.Device1"
ADAPTER = "org.bluez.Adapter1"
CONTROL = "org.bluez.test.Control1"
CONTROL_PATH = "/org/bluez/test"

SVC_UUID = "1b324b66-1eca-4b75-ac85-5f5515fb2900"
INFO_UUID = "1b324b66-1eca-4b75-ac85-5f5515fb2901"
CHALLENGE_UUID = "1b324b66-1eca-4b75-ac85-5f5515fb2902"
COMMAND_UUID = "1b324b66-1eca-4b75-ac85-5f5515fb2903"
RESULT_UUID = "1b324b66-1eca-4b75-ac85-5f5515fb2904"

# The fake names adapter hciN 02:BD:5C:00:00:(0x10+N): the daemon is on hci0.
PI_ON_HCI1 = "/org/bluez/hci1/dev_02_BD_5C_00_00_10"

TIMEOUT = 15.0  # bound of every single wait; generous for a loaded 2-core machine

# ---------------------------------------------------------------------------
# Protocol (docs/protocol.md), independent of the C++ code
# ---------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------


def bin_dir():
    path = os.environ.get("BZS_BIN_DIR")
    if not path:
        raise RuntimeError("set BZS_BIN_DIR to the build folder holding bluezscriptd and "
                           "bluezscript (ctest does)")
    for name in ("bluezscriptd", "bluezscript"):
        if not os.access(os.path.join(path, name), os.X_OK):
            raise RuntimeError("%s/%s is missing: build the targets bluezscriptd and "
                               "bluezscript first" % (path, name))
    return path


class LogWatcher:
    """Collects the lines of a process's stderr (also into a file) and lets a
    test wait for a line matching a pattern."""

    def __init__(self, stream, path):
        self.lines = []
        self.cond = threading.Condition()
        self.closed = False
        self.path = path
        self.thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self.thread.start()

    def _pump(self, stream):
        with open(self.path, "a", encoding="utf-8") as out:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip("\n")
                out.write(line + "\n")
                out.flush()
                with self.cond:
                    self.lines.append(line)
                    self.cond.notify_all()
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def mark(self):
        with self.cond:
            return len(self.lines)

    def wait_for(self, pattern, start=0, timeout=TIMEOUT):
        """Index of the first line at or after `start` that matches; fails after
        `timeout` s or when the stream ends without one."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            index = start
            while True:
                while index < len(self.lines):
                    if regex.search(self.lines[index]):
                        return index
                    index += 1
                left = deadline - time.monotonic()
                if self.closed or left <= 0:
                    raise AssertionError("no line matching %r within %.0f s (%s)" % (
                        pattern, timeout, "stream closed" if self.closed else "timeout"))
                self.cond.wait(left)

    def text(self, start=0):
        with self.cond:
            return "\n".join(self.lines[start:])


# The daemon's status line once the application, advertisement and agent are all
# registered (Status::summary(): an unregistered agent would add a suffix).
REGISTERED = r"BLE: advertising on hci0, \d+ devices? connected$"


class Stack:
    """A private bus with the fake org.bluez, a state/config folder and a running
    bluezscriptd on hci0. One per test class."""

    def __init__(self, extra_config="", fake_args=("--temporary-timeout", "0")):
        self.bin = bin_dir()
        self.dir = tempfile.mkdtemp(prefix="bzs-ble-e2e-")
        os.chmod(self.dir, 0o700)
        self.fake_log = os.path.join(self.dir, "fake-bluetoothd.log")
        self.daemon_log = os.path.join(self.dir, "bluezscriptd.log")
        self.fake_args = list(fake_args)
        self.markers = os.path.join(self.dir, "markers")
        os.mkdir(self.markers, 0o700)
        self.config = os.path.join(self.dir, "bluezscript.toml")
        self._write_actions()
        with open(self.config, "w", encoding="utf-8") as out:
            out.write(CONFIG_TEMPLATE + extra_config)
        self.bus = None
        self.fake = None
        self.daemon = None
        self.log = None
        self.clients = 0
        try:
            self.bus = bus_harness.start_bus()
            self.start_fake()
            self.conn = dbus.bus.BusConnection(self.bus.address)
            self.start_daemon()
        except BaseException:
            self.close()
            sys.stderr.write("\n=== the stack did not come up (folder %s) ===\n%s"
                             % (self.dir, self.artifacts()))
            raise

    # -- files ----------------------------------------------------------------

    def _write_actions(self):
        actions = os.path.join(self.dir, "actions")
        os.mkdir(actions, 0o700)
        scripts = {
            # Proves it ran (or not): one file per run with its environment and args.
            "mark": MARK_SCRIPT.format(markers=self.markers),
            "other": "#!/bin/sh\necho other\n",
            "long": "#!/bin/sh\nprintf '%s' '" + LONG_OUTPUT + "'\n",
            "huge": "#!/bin/sh\nprintf '%s' '" + HUGE_OUTPUT + "'\n",
        }
        for name, body in scripts.items():
            path = os.path.join(actions, name)
            with open(path, "w", encoding="utf-8") as out:
                out.write(body)
            os.chmod(path, 0o700)
        with open(os.path.join(actions, "mark.toml"), "w", encoding="utf-8") as out:
            out.write('description = "records its environment and arguments"\n'
                      'allow_args = true\n')
        os.chmod(os.path.join(actions, "mark.toml"), 0o600)

    def marker_runs(self, device_name):
        """The recorded runs of `mark` by this device: a list of
        {"env": {...}, "args": [...]} dicts."""
        runs = []
        for name in sorted(os.listdir(self.markers)):
            if not name.startswith(device_name + ".") or name.endswith(".tmp"):
                continue
            env, args = {}, []
            with open(os.path.join(self.markers, name), encoding="utf-8") as f:
                for line in f.read().splitlines():
                    key, _, value = line.partition("=")
                    if key == "ARG":
                        args.append(value)
                    else:
                        env[key] = value
            runs.append({"env": env, "args": args})
        return runs

    # -- processes ------------------------------------------------------------

    def start_fake(self):
        self.fake = bus_harness.start_fake(self.bus.address, self.fake_args, self.fake_log)

    def stop_fake(self, kill=False):
        if kill and self.fake.poll() is None:
            self.fake.kill()
        status = bus_harness.stop_process(self.fake)
        self.fake = None
        return status

    def start_daemon(self):
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.bus.address,
                   BLUEZSCRIPT_CONFIG=self.config)
        env.pop("JOURNAL_STREAM", None)  # plain "bluezscriptd: level: ..." lines
        env.pop("NOTIFY_SOCKET", None)
        self.daemon = subprocess.Popen([os.path.join(self.bin, "bluezscriptd")], env=env,
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE)
        self.log = LogWatcher(self.daemon.stderr, self.daemon_log)
        self.wait_registered(0)

    def wait_registered(self, start):
        """Waits for the daemon's "advertising" status after line `start`, then checks
        in the fake that its application, advertisement and default agent are there."""
        self.log.wait_for(REGISTERED, start)
        state = self.state()
        apps = [a for a in state["applications"] if a["adapter"] == "hci0" and
                any(s["uuid"] == SVC_UUID for s in a["services"])]
        adverts = [a for a in state["advertisements"] if a["adapter"] == "hci0" and
                   SVC_UUID in a["service_uuids"]]
        agents = [a for a in state["agents"] if a["path"] == "/org/bluezscript/agent"]
        if not (len(apps) == 1 and len(adverts) == 1 and len(agents) == 1 and
                agents[0]["default"] and
                apps[0]["owner"] == adverts[0]["owner"] == agents[0]["owner"]):
            raise AssertionError("the daemon says it is registered but the fake has: %s" %
                                 json.dumps({"applications": apps, "advertisements": adverts,
                                             "agents": state["agents"]}))
        return state

    def close(self):
        daemon_status = None
        if self.daemon is not None:
            daemon_status = bus_harness.stop_process(self.daemon, timeout=10)
            self.log.thread.join(5)
        if self.fake is not None:
            bus_harness.stop_process(self.fake)
        if self.bus is not None:
            self.bus.stop()
        return daemon_status

    def remove_files(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def artifacts(self, daemon_from=0, fake_from=0):
        """The daemon's stderr and the fake's trace from the given positions."""
        parts = ["--- bluezscriptd stderr (%s) ---" % self.daemon_log,
                 self.log.text(daemon_from) if self.log else "(not started)"]
        try:
            with open(self.fake_log, encoding="utf-8", errors="replace") as f:
                f.seek(fake_from)
                trace = f.read().splitlines()
        except OSError:
            trace = ["(no trace)"]
        parts += ["--- fake-bluetoothd trace (%s, last 150 lines) ---" % self.fake_log]
        parts += trace[-150:]
        return "\n".join(parts) + "\n"

    def fake_log_size(self):
        try:
            return os.path.getsize(self.fake_log)
        except OSError:
            return 0

    # -- the fake's control interface --------------------------------------------

    def control(self, method, signature="", args=()):
        return self.conn.call_blocking(BLUEZ, CONTROL_PATH, CONTROL, method, signature, args,
                                       timeout=TIMEOUT)

    def state(self):
        return json.loads(str(self.control("GetState")))

    # -- the CLI ------------------------------------------------------------------

    def cli(self, args, xdg=None, timeout=60, stdin=None):
        """Runs `bluezscript ARGS` (owner commands read the config; the client
        commands use XDG_CONFIG_HOME=xdg); returns the CompletedProcess."""
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.bus.address,
                   BLUEZSCRIPT_CONFIG=self.config)
        if xdg is not None:
            env["XDG_CONFIG_HOME"] = xdg
            env["HOME"] = xdg
        return subprocess.run([os.path.join(self.bin, "bluezscript")] + list(args), env=env,
                              input=stdin, capture_output=True, text=True, timeout=timeout)

    def check_cli(self, args, **kwargs):
        done = self.cli(args, **kwargs)
        if done.returncode != 0:
            raise AssertionError("bluezscript %s: exit %d\nstdout: %s\nstderr: %s" % (
                " ".join(args), done.returncode, done.stdout, done.stderr))
        return done

    def pair(self, name, actions=("mark",)):
        """`pair add NAME --actions ... --no-qr --json`: the Pairing of the new device."""
        done = self.check_cli(["pair", "add", name, "--actions", ",".join(actions), "--no-qr",
                               "--json"])
        reply = json.loads(done.stdout)
        if reply["device"]["name"] != name:
            raise AssertionError("pair add answered %r" % reply)
        return Pairing(reply["uri"])

    def client(self, pairing):
        """A fresh client configuration folder with this pairing imported."""
        self.clients += 1
        xdg = os.path.join(self.dir, "client%d" % self.clients)
        os.mkdir(xdg, 0o700)
        self.check_cli(["client", "import", "-"], xdg=xdg, stdin=pairing.uri + "\n")
        return xdg

    def paired_client(self, name, actions=("mark",)):
        pairing = self.pair(name, actions)
        return pairing, self.client(pairing)

    def trigger(self, xdg, action, args=(), adapter="hci1", timeout=90):
        argv = ["trigger", action, "--adapter", adapter, "--timeout", "20", "--wait", "30"]
        for arg in args:
            argv += ["--arg=" + arg]
        return self.cli(argv, xdg=xdg, timeout=timeout)

    def audit(self, device=None):
        """`bluezscript log --json` rows (newest first), optionally of one device."""
        argv = ["log", "--json", "--limit", "1000"]
        if device:
            argv += ["--device", device]
        return json.loads(self.check_cli(argv).stdout)


CONFIG_TEMPLATE = """\
[daemon]
state_dir = "state"
actions_dir = "actions"
pi_name = "e2e-pi"
log_level = "debug"

# No web UI in these tests: it would listen on the LAN port (issue 4 tests it).
[web]
enabled = false

[ble]
adapter = "hci0"
require_bonding = true

# The suite sends many refused frames on purpose: the Pi-wide limits must not
# turn later tests' commands into rate_limited.
[limits]
global_max_attempts_per_minute = 10000
global_max_failures_per_minute = 10000
"""

MARK_SCRIPT = """\
#!/bin/sh
f="{markers}/$BLUEZSCRIPT_DEVICE_NAME.$BLUEZSCRIPT_REQUEST_ID"
{{ env; for a in "$@"; do printf 'ARG=%s\\n' "$a"; done; }} > "$f.tmp" && mv "$f.tmp" "$f"
echo "marked $#"
"""

# Recognisable outputs longer than one notification at any MTU: 25 lines of 12 bytes,
# and 50 lines (600 bytes, more than a response can carry).
LONG_OUTPUT = "".join("line-%03d-ok\n" % i for i in range(25))
HUGE_OUTPUT = "".join("huge-%03d-ok\n" % i for i in range(50))


# ---------------------------------------------------------------------------
# A raw GATT central in this process (hci1)
# ---------------------------------------------------------------------------


def spin_until(predicate, timeout=TIMEOUT, what="an event"):
    """Runs the GLib main loop until predicate() holds; fails after `timeout` s."""
    expired = []
    source = GLib.timeout_add(int(timeout * 1000), lambda: expired.append(1) and False)
    try:
        context = GLib.MainContext.default()
        while not predicate():
            if expired:
                raise AssertionError("timed out after %.0f s waiting for %s" % (timeout, what))
            context.iteration(True)
    finally:
        if not expired:
            GLib.source_remove(source)


def ay(data):
    return dbus.Array([dbus.Byte(b) for b in data], signature="y")


class CentralAgent(dbus.service.Object):
    """An Agent1 for this process's connection: confirms numeric comparison."""

    def __init__(self, conn, path):
        super().__init__(conn, path)
        self.requests = []

    @dbus.service.method("org.bluez.Agent1", in_signature="ou", out_signature="")
    def RequestConfirmation(self, device, passkey):
        self.requests.append(("RequestConfirmation", int(passkey)))

    @dbus.service.method("org.bluez.Agent1", in_signature="o", out_signature="")
    def RequestAuthorization(self, device):
        self.requests.append(("RequestAuthorization", None))

    @dbus.service.method("org.bluez.Agent1", in_signature="", out_signature="")
    def Cancel(self):
        self.requests.append(("Cancel", None))

    @dbus.service.method("org.bluez.Agent1", in_signature="", out_signature="")
    def Release(self):
        pass


class RawCentral:
    """Talks to the Pi through the fake's central API on hci1, like a phone
    would, but lets the test choose every byte it writes."""

    def __init__(self, address, adapter="/org/bluez/hci1"):
        self.conn = dbus.bus.BusConnection(address)
        self.adapter = adapter
        self.device = adapter + "/dev_02_BD_5C_00_00_10"
        self.objects = {}
        self.fragments = []  # notification payloads received on Result
        self.chars = {}
        self.agent = None
        self.conn.add_signal_receiver(self._added, "InterfacesAdded", OM, BLUEZ, "/",
                                      byte_arrays=True)
        self.conn.add_signal_receiver(self._removed, "InterfacesRemoved", OM, BLUEZ, "/")
        self.conn.add_signal_receiver(self._changed, "PropertiesChanged", PROPS, BLUEZ,
                                      path_keyword="path", byte_arrays=True)
        self.objects = {str(p): {str(i): dict(v) for i, v in ifaces.items()} for p, ifaces in
                        self.call("/", OM, "GetManagedObjects").items()}

    def close(self):
        self.conn.close()

    # -- object mirror ----------------------------------------------------------

    def _added(self, path, interfaces):
        self.objects.setdefault(str(path), {}).update(
            {str(i): dict(v) for i, v in interfaces.items()})

    def _removed(self, path, interfaces):
        entry = self.objects.get(str(path), {})
        for iface in interfaces:
            entry.pop(str(iface), None)
        if not entry:
            self.objects.pop(str(path), None)

    def _changed(self, iface, changed, invalidated, path=None):
        props = self.objects.get(str(path), {}).get(str(iface))
        if props is not None:
            props.update({str(k): v for k, v in changed.items()})
        if (str(iface) == CHRC and "Value" in changed and
                str(path) == self.chars.get(RESULT_UUID)):
            self.fragments.append(bytes(changed["Value"]))

    def prop(self, path, iface, name, default=None):
        return self.objects.get(path, {}).get(iface, {}).get(name, default)

    # -- calls --------------------------------------------------------------------

    def call(self, path, iface, method, signature="", args=(), timeout=TIMEOUT):
        """A call that keeps the main loop running while it waits (so our agent
        can be called back)."""
        result = {}
        self.conn.call_async(BLUEZ, path, iface, method, signature, args,
                             lambda *r: result.setdefault("ok", r),
                             lambda e: result.setdefault("error", e),
                             timeout=timeout, byte_arrays=True)
        spin_until(lambda: result, timeout + 1, "the reply to %s.%s" % (iface, method))
        if "error" in result:
            raise result["error"]
        values = result["ok"]
        return values[0] if len(values) == 1 else (values or None)

    # -- link -----------------------------------------------------------------------

    def connect(self):
        """Finds the Pi (scanning when hci1 does not know it yet), connects and
        locates the four characteristics by UUID."""
        if DEVICE not in self.objects.get(self.device, {}):
            self.call(self.adapter, ADAPTER, "StartDiscovery")
            spin_until(lambda: SVC_UUID in self.prop(self.device, DEVICE, "UUIDs", []),
                       what="the Pi's advertisement on %s" % self.adapter)
            self.call(self.adapter, ADAPTER, "StopDiscovery")
        self.call(self.device, DEVICE, "Connect")
        spin_until(lambda: bool(self.prop(self.device, DEVICE, "ServicesResolved")),
                   what="ServicesResolved")
        self.chars = {}
        for path, ifaces in self.objects.items():
            if path.startswith(self.device + "/") and CHRC in ifaces:
                uuid = str(ifaces[CHRC]["UUID"])
                if uuid in (INFO_UUID, CHALLENGE_UUID, COMMAND_UUID, RESULT_UUID):
                    if uuid in self.chars:
                        raise AssertionError("two characteristics with UUID %s" % uuid)
                    self.chars[uuid] = path
        if len(self.chars) != 4:
            raise AssertionError("the Pi's service is incomplete: %r" % self.chars)

    def paired(self):
        return bool(self.prop(self.device, DEVICE, "Paired", False))

    def bond(self):
        """Pairs through the fake (numeric comparison with the daemon's agent)
        unless hci1 already has a bond with the Pi."""
        if self.paired():
            return
        if self.agent is None:
            self.agent = CentralAgent(self.conn, "/e2e/agent")
            self.call("/org/bluez", "org.bluez.AgentManager1", "RegisterAgent", "os",
                      (dbus.ObjectPath("/e2e/agent"), "KeyboardDisplay"))
        self.call(self.device, DEVICE, "Pair", timeout=30)
        spin_until(self.paired, what="Paired")

    def disconnect(self):
        self.call(self.device, DEVICE, "Disconnect")
        spin_until(lambda: not self.prop(self.device, DEVICE, "Connected"), what="Connected false")

    def subscribe(self):
        self.call(self.chars[RESULT_UUID], CHRC, "StartNotify")

    def read(self, uuid, options=None):
        return bytes(self.call(self.chars[uuid], CHRC, "ReadValue", "a{sv}",
                               (dbus.Dictionary(options or {}, signature="sv"),)))

    def write(self, data, offset=None, uuid=COMMAND_UUID):
        options = {} if offset is None else {"offset": dbus.UInt16(offset)}
        self.call(self.chars[uuid], CHRC, "WriteValue", "aya{sv}",
                  (ay(data), dbus.Dictionary(options, signature="sv")))

    def challenge(self):
        value = self.read(CHALLENGE_UUID)
        if len(value) != 16:
            raise AssertionError("challenge of %d bytes" % len(value))
        return value

    def next_response(self, timeout=TIMEOUT):
        """Waits for the next complete response frame notified on Result (fragments
        received before this call count) and decodes it."""
        reassembler = Reassembler()
        frames = []

        def complete():
            while self.fragments:
                frame = reassembler.feed(self.fragments.pop(0))
                if frame is not None:
                    frames.append(frame)
            return bool(frames)

        spin_until(complete, timeout, "a response on Result")
        return decode_response(frames[0])

    def drain(self):
        """Lets queued signals arrive, then forgets received fragments."""
        context = GLib.MainContext.default()
        while context.iteration(False):
            pass
        self.fragments.clear()
