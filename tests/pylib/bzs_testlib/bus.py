# SPDX-License-Identifier: GPL-3.0-or-later
"""A private D-Bus daemon with the fake org.bluez (bzs_testlib.fake_bluetoothd) on
it, for tests and demos.

As a module:
    bus = start_bus()                 # PrivateBus: .address, .stop()
    fake = start_fake(bus.address, ["--adapters", "2"], log_path=...)
    ...                               # DBUS_SYSTEM_BUS_ADDRESS=bus.address for the code under test
    stop_process(fake); bus.stop()

    with private_bus() as bus, fake_bluez(bus.address) as fake: ...

As a command (run with /usr/bin/python3, which has python3-dbus and python3-gi, and
tests/pylib on PYTHONPATH):
    python3 -m bzs_testlib.bus [--log FILE] run [FAKE_OPTIONS...] -- CMD [ARGS...]
        starts a bus and the fake, runs CMD with DBUS_SYSTEM_BUS_ADDRESS set to
        the private bus, tears everything down and exits with CMD's status.
    python3 -m bzs_testlib.bus [--log FILE] shell [FAKE_OPTIONS...]
        starts a bus and the fake, prints the `export DBUS_SYSTEM_BUS_ADDRESS=...`
        line to paste in other terminals, and keeps them running until Ctrl-C.
    python3 -m bzs_testlib.bus shell --bus-only
        the same without the fake: start (and restart) `python3 -m
        bzs_testlib.fake_bluetoothd` yourself on that bus.

The bus never is the system bus: it listens on a socket in a fresh temporary
directory, allows everything (it is private to the user running it) and
authenticates with EXTERNAL (the peer's uid).
"""

import contextlib
import os
import selectors
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

# tests/pylib, the folder that holds this package: the fake's PYTHONPATH.
LIB_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Debian's interpreter: it has python3-dbus and python3-gi.
PYTHON = "/usr/bin/python3"
# The fake as a program (its --address and options follow); it needs lib_env().
FAKE = [PYTHON, "-m", "bzs_testlib.fake_bluetoothd"]
READY_LINE = "fake-bluetoothd ready"

CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
"""


def lib_env(base=None, **extra):
    """`base` (default os.environ) with LIB_DIR first on PYTHONPATH, for children
    that import this library (the fake); keyword arguments are set as well."""
    env = dict(os.environ if base is None else base, **extra)
    env["PYTHONPATH"] = os.pathsep.join([LIB_DIR] + [p for p in env.get(
        "PYTHONPATH", "").split(os.pathsep) if p and p != LIB_DIR])
    return env


class HarnessError(RuntimeError):
    """The bus or the fake did not come up."""


def _read_line(proc, timeout, what):
    """First stdout line of proc, waiting at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    buf = b""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise HarnessError("%s: no output within %.0f s" % (what, timeout))
            if not sel.select(left):
                continue
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                raise HarnessError("%s exited (status %s) before it was ready" % (
                    what, proc.wait()))
            buf += chunk
    return buf.split(b"\n", 1)[0].decode("utf-8", "replace").strip()


def stop_process(proc, timeout=5.0):
    """SIGTERM, then SIGKILL after `timeout` seconds; returns the exit status."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for stream in (proc.stdout, proc.stderr, proc.stdin):
        if stream is not None:
            stream.close()
    return proc.returncode


class PrivateBus:
    """A dbus-daemon on a socket in its own temporary directory."""

    def __init__(self, timeout=10.0):
        self.tmpdir = tempfile.mkdtemp(prefix="bluezscript-bus-")
        self.socket = os.path.join(self.tmpdir, "bus")
        self.config = os.path.join(self.tmpdir, "bus.conf")
        with open(self.config, "w", encoding="utf-8") as out:
            out.write(CONFIG.format(socket=self.socket))
        # dbus-daemon's own messages (e.g. about fd limits) go to a file that
        # is shown only if it fails to start.
        self.log = os.path.join(self.tmpdir, "dbus-daemon.log")
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                ["dbus-daemon", "--config-file=" + self.config, "--print-address=1",
                 "--nofork"],
                stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, stderr=log)
        try:
            self.address = _read_line(self.proc, timeout, "dbus-daemon")
        except HarnessError as exc:
            with open(self.log, "rb") as log:
                details = log.read().decode("utf-8", "replace").strip()
            self.stop()
            raise HarnessError("%s: %s" % (exc, details)) from None
        if not self.address.startswith("unix:"):
            self.stop()
            raise HarnessError("dbus-daemon printed an unexpected address: %r" % self.address)

    def stop(self):
        stop_process(self.proc)
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def start_bus(timeout=10.0):
    """Start a private bus; returns a PrivateBus (its .address is the bus address)."""
    return PrivateBus(timeout)


def start_fake(address, args=(), log_path=None, timeout=10.0):
    """Start the fake org.bluez on `address`; returns the Popen once it printed
    its ready line (it owns org.bluez then). Its trace goes to `log_path`
    (appended) or to this process's stderr."""
    log = open(log_path, "ab") if log_path else None
    env = lib_env(DBUS_SYSTEM_BUS_ADDRESS=address)
    try:
        proc = subprocess.Popen(FAKE + ["--address", address] + list(args),
                                stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                stderr=log, env=env)
    finally:
        if log is not None:
            log.close()
    try:
        line = _read_line(proc, timeout, "the fake org.bluez")
    except HarnessError:
        stop_process(proc)
        raise
    if line != READY_LINE:
        stop_process(proc)
        raise HarnessError("the fake printed %r instead of %r" % (line, READY_LINE))
    return proc


@contextlib.contextmanager
def private_bus(timeout=10.0):
    bus = start_bus(timeout)
    try:
        yield bus
    finally:
        bus.stop()


@contextlib.contextmanager
def fake_bluez(address, args=(), log_path=None, timeout=10.0):
    proc = start_fake(address, args, log_path, timeout)
    try:
        yield proc
    finally:
        stop_process(proc)


PROG = "python3 -m bzs_testlib.bus"
USAGE = """usage: {prog} [--log FILE] run [FAKE_OPTIONS...] -- CMD [ARGS...]
       {prog} [--log FILE] shell [FAKE_OPTIONS...]
       {prog} shell --bus-only
FAKE_OPTIONS are passed to the fake (python3 -m bzs_testlib.fake_bluetoothd --help).""".format(
    prog=PROG)


def main(argv):
    log_path = None
    if argv[:1] == ["--log"]:
        if len(argv) < 2:
            sys.stderr.write(USAGE + "\n")
            return 2
        log_path, argv = argv[1], argv[2:]
    if not argv or argv[0] not in ("run", "shell"):
        sys.stderr.write(USAGE + "\n")
        return 2
    mode, rest = argv[0], argv[1:]
    if mode == "run":
        if "--" not in rest or rest.index("--") == len(rest) - 1:
            sys.stderr.write("bzs_testlib.bus run: give the command after --\n" + USAGE + "\n")
            return 2
        split = rest.index("--")
        fake_args, command = rest[:split], rest[split + 1:]
    else:
        fake_args, command = rest, None

    if command is None and fake_args == ["--bus-only"]:
        return bus_only_shell()
    try:
        with private_bus() as bus, fake_bluez(bus.address, fake_args, log_path) as fake:
            if command is None:
                print("export DBUS_SYSTEM_BUS_ADDRESS=%s" % shlex.quote(bus.address))
                print("# fake-bluetoothd pid %d on a private bus; Ctrl-C stops both"
                      % fake.pid, flush=True)
                try:
                    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
                    fake.wait()
                    sys.stderr.write("bzs_testlib.bus: the fake exited (status %s)\n"
                                     % fake.returncode)
                    return 1
                except KeyboardInterrupt:
                    return 0
            env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=bus.address)
            try:
                return subprocess.call(command, env=env)
            except KeyboardInterrupt:
                return 130
            except OSError as exc:
                sys.stderr.write("bzs_testlib.bus: cannot run %s: %s\n" % (command[0], exc))
                return 127
    except HarnessError as exc:
        sys.stderr.write("bzs_testlib.bus: %s\n" % exc)
        return 1


def bus_only_shell():
    try:
        with private_bus() as bus:
            print("export DBUS_SYSTEM_BUS_ADDRESS=%s" % shlex.quote(bus.address))
            print("# private bus without org.bluez: start PYTHONPATH=%s %s yourself; Ctrl-C "
                  "stops the bus" % (shlex.quote(LIB_DIR), " ".join(FAKE)), flush=True)
            signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
            try:
                bus.proc.wait()
            except KeyboardInterrupt:
                return 0
            sys.stderr.write("bzs_testlib.bus: dbus-daemon exited (status %s)\n"
                             % bus.proc.returncode)
            return 1
    except HarnessError as exc:
        sys.stderr.write("bzs_testlib.bus: %s\n" % exc)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
