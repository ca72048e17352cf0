# SPDX-License-Identifier: GPL-3.0-or-later
"""The real daemon and CLI for the tests: `Stack` is a private bus with the fake
org.bluez, a state/config folder with test actions and a running bluezscriptd on
hci0, plus the `bluezscript` CLI (owner commands, and the client on hci1).
BZS_BIN_DIR names the build folder (ctest sets it)."""

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

import dbus

from .bus import start_bus, start_fake, stop_process
from .bluez import BLUEZ, CONTROL, CONTROL_PATH
from .central import RawCentral
from .phone import Phone
from .protocol import SVC_UUID, Link
from .wait import TIMEOUT


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

    def __init__(self, extra_config="", fake_args=("--temporary-timeout", "0"), limits=None,
                 daemon_env=None, extra_actions=None):
        """`limits`: the [limits] table as a dict (default: so high that the suite's
        refused frames never limit later tests). `daemon_env`: extra environment of
        bluezscriptd (e.g. the clock hook BLUEZSCRIPT_TEST_CLOCK, docs/testing.md).
        `extra_actions`: {name: (script, metadata TOML or None)} beside the usual ones."""
        self.extra_actions = dict(extra_actions or {})
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
            out.write(config_text(limits, extra_config))
        self.daemon_env = dict(daemon_env or {})
        self.bus = None
        self.fake = None
        self.daemon = None
        self.log = None
        self.clients = 0
        try:
            self.bus = start_bus()
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
        metadata = {"mark": 'description = "records its environment and arguments"\n'
                            'allow_args = true\n'}
        for name, (body, meta) in getattr(self, "extra_actions", {}).items():
            scripts[name] = body
            if meta is not None:
                metadata[name] = meta
        for name, body in scripts.items():
            path = os.path.join(actions, name)
            with open(path, "w", encoding="utf-8") as out:
                out.write(body)
            os.chmod(path, 0o700)
        for name, meta in metadata.items():
            path = os.path.join(actions, name + ".toml")
            with open(path, "w", encoding="utf-8") as out:
                out.write(meta)
            os.chmod(path, 0o600)

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
        self.fake = start_fake(self.bus.address, self.fake_args, self.fake_log)

    def stop_fake(self, kill=False):
        if kill and self.fake.poll() is None:
            self.fake.kill()
        status = stop_process(self.fake)
        self.fake = None
        return status

    def start_daemon(self):
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.bus.address,
                   BLUEZSCRIPT_CONFIG=self.config)
        env.pop("BLUEZSCRIPT_TEST_CLOCK", None)
        env.update(self.daemon_env)
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

    def stop_daemon(self):
        """SIGTERM to bluezscriptd; waits for it (its log too) and returns its exit
        status. start_daemon() starts it again."""
        status = stop_process(self.daemon, timeout=30)
        self.log.thread.join(5)
        self.daemon = None
        return status

    def close(self):
        daemon_status = None
        if self.daemon is not None:
            daemon_status = stop_process(self.daemon, timeout=10)
            self.log.thread.join(5)
        if self.fake is not None:
            stop_process(self.fake)
        if self.bus is not None:
            self.bus.stop()
        return daemon_status

    def close_pairing_window(self):
        """`pair add` opened the owner's pairing window; closes it in the daemon's
        real database (there is no command for that). Returns the rows changed."""
        db = sqlite3.connect(os.path.join(self.dir, "state", "bluezscript.db"), timeout=10)
        try:
            with db:
                return db.execute("UPDATE settings SET value = '0' "
                                  "WHERE key = 'pairing_window_until'").rowcount
        finally:
            db.close()

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
        """`pair add NAME --actions ... --no-qr --json`: the new pending device's link
        (a protocol.Link; `.reply` is the whole JSON answer)."""
        done = self.check_cli(["pair", "add", name, "--actions", ",".join(actions), "--no-qr",
                               "--json"])
        reply = json.loads(done.stdout)
        if reply["device"]["name"] != name or reply["device"].get("state") != "pending":
            raise AssertionError("pair add answered %r" % reply)
        link = Link(reply["uri"])
        link.reply = reply
        return link

    def device(self, name):
        """The device's `pair list --json` entry."""
        listed = json.loads(self.check_cli(["pair", "list", "--json"]).stdout)
        found = [d for d in listed if d["name"] == name]
        if len(found) != 1:
            raise AssertionError("pair list has %d devices named %r: %r" % (len(found), name,
                                                                          listed))
        return found[0]

    def ready_central(self, adapter="/org/bluez/hci1"):
        """A raw central on the fake radio: connected, bonded, subscribed to Result."""
        central = RawCentral(self.bus.address, adapter)
        try:
            central.connect()
            central.bond()
            central.subscribe()
            central.drain()
        except BaseException:
            central.close()
            raise
        return central

    def paired_phone(self, name, actions=("mark",), central=None):
        """`pair add`, then the pairing exchange over `central` (ready: connected,
        bonded, subscribed) or, without one, over a fresh central on hci1 that is
        disconnected afterwards. Returns the paired Phone (`.link` is the link)."""
        link = self.pair(name, actions)
        phone = Phone(link)
        own = central is None
        if own:
            central = self.ready_central()
        try:
            answer = phone.pair(central)
        finally:
            if own:
                central.disconnect()
                central.close()
        if not (answer["authentic"] and answer["status"] == "ok"):
            raise AssertionError("pairing %r answered %r" % (name, answer))
        return phone

    def client(self, link, adapter="hci1"):
        """A fresh client configuration folder paired with this link by the real
        client: `bluezscript client pair LINK` runs the exchange over `adapter`."""
        self.clients += 1
        xdg = os.path.join(self.dir, "client%d" % self.clients)
        os.mkdir(xdg, 0o700)
        self.check_cli(["client", "pair", link.uri, "--adapter", adapter], xdg=xdg, timeout=90)
        return xdg

    def paired_client(self, name, actions=("mark",)):
        """(link, client folder) of a device paired by the real client."""
        link = self.pair(name, actions)
        return link, self.client(link)

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

"""

# The suite sends many refused frames on purpose, all from hci1's one address: the
# limits must not turn later tests' commands into rate_limited (the flood test
# sets its own).
PERMISSIVE_LIMITS = {"link_max_failures_per_minute": 10000,
                     "global_max_failures_per_minute": 100000}

def config_text(limits=None, extra_config=""):
    """The daemon's configuration: the template, the [limits] table (default
    PERMISSIVE_LIMITS) and `extra_config`."""
    table = PERMISSIVE_LIMITS if limits is None else limits
    return (CONFIG_TEMPLATE + "[limits]\n" +
            "".join("%s = %d\n" % kv for kv in sorted(table.items())) + extra_config)


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
