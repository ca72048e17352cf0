# SPDX-License-Identifier: GPL-3.0-or-later
"""Checks the shipped systemd unit, its GPIO drop-in and the D-Bus policy.

Everything runs offline: systemd-analyze reads the unit files, and a private
dbus-daemon (never the system bus) parses and enforces the policy.
"""
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import unittest

SOURCE_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
UNIT = os.path.join(SOURCE_DIR, "packaging", "systemd", "bluezscriptd.service")
GPIO_DROPIN = os.path.join(SOURCE_DIR, "packaging", "systemd", "gpio.conf.example")
POLICY = os.path.join(SOURCE_DIR, "packaging", "dbus", "bluezscript.conf")
MAX_EXPOSURE = 2.0


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=120, **kw)


def exposure(unit_path, env=None):
    """Runs the offline security review; returns (score, process)."""
    p = run(["systemd-analyze", "security", "--offline=true", "--threshold=20",
             "--no-pager", unit_path], env=env)
    m = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", p.stdout)
    if m is None:
        raise AssertionError("no 'Overall exposure level' line in:\n" + p.stdout + p.stderr)
    return float(m.group(1)), p


def unit_settings(path):
    """Key -> list of values, per the unit's own lines (comments skipped)."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;[":
                continue
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def daemon_binary():
    bin_dir = os.environ.get("BZS_BIN_DIR", "")
    path = os.path.join(bin_dir, "bluezscriptd")
    if not bin_dir or not os.access(path, os.X_OK):
        raise AssertionError(f"built bluezscriptd not found at '{path}': set BZS_BIN_DIR "
                             "to the build folder and build the target bluezscriptd")
    return path


class UnitTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="bzs-unit-")
        self.addCleanup(shutil.rmtree, self.tmp)

    def copy_unit(self, exec_path, dropin=None, extra_service_line=None):
        """The unit with ExecStart pointed at exec_path (verify checks it exists)."""
        with open(UNIT, encoding="utf-8") as f:
            text = f.read()
        self.assertIn("ExecStart=/usr/bin/bluezscriptd ", text)
        text = text.replace("ExecStart=/usr/bin/bluezscriptd ", f"ExecStart={exec_path} ")
        if extra_service_line:
            text = text.replace("[Service]\n", "[Service]\n" + extra_service_line + "\n")
        path = os.path.join(self.tmp, "bluezscriptd.service")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        if dropin:
            os.mkdir(path + ".d")
            shutil.copy(dropin, os.path.join(path + ".d", "gpio.conf"))
        return path

    def verify(self, path):
        p = run(["systemd-analyze", "verify", "--man=no", path])
        # verify exits 0 on unknown keys and bad values, only warning: any output counts.
        return p.returncode, (p.stdout + p.stderr).strip()

    def test_exposure_is_at_most_2(self):
        score, p = exposure(UNIT)
        print(f"\nbluezscriptd.service: overall exposure {score}")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertLessEqual(score, MAX_EXPOSURE, p.stdout)

    def test_required_settings(self):
        s = unit_settings(UNIT)
        expected = {
            "Type": "notify", "NotifyAccess": "main",
            "ExecStart": "/usr/bin/bluezscriptd --config /etc/bluezscript/bluezscript.toml",
            "ExecReload": "/bin/kill -HUP $MAINPID", "Restart": "on-failure",
            "WatchdogSec": "30s",
            "User": "bluezscript", "Group": "bluezscript", "SupplementaryGroups": "bluetooth",
            "StateDirectory": "bluezscript", "StateDirectoryMode": "0700",
            "ConfigurationDirectory": "bluezscript", "UMask": "0077",
            "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
            "PrivateDevices": "yes", "DevicePolicy": "closed", "NoNewPrivileges": "yes",
            "CapabilityBoundingSet": "", "AmbientCapabilities": "",
            "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
            "SystemCallErrorNumber": "EPERM", "SystemCallArchitectures": "native",
            "MemoryDenyWriteExecute": "yes", "LockPersonality": "yes",
            "RestrictRealtime": "yes", "RestrictSUIDSGID": "yes", "RestrictNamespaces": "yes",
            "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
            "ProtectKernelLogs": "yes", "ProtectControlGroups": "yes", "ProtectClock": "yes",
            "ProtectHostname": "yes", "ProtectProc": "invisible", "ProcSubset": "pid",
            "KeyringMode": "private", "RemoveIPC": "yes",
        }
        for key, value in expected.items():
            with self.subTest(key=key):
                self.assertEqual(s.get(key), [value])
        self.assertEqual(s.get("SystemCallFilter", [None])[0], "@system-service")
        # The web UI must stay reachable, and the daemon must never run as root.
        for absent in ("IPAddressDeny", "PrivateNetwork", "PrivateUsers", "DynamicUser"):
            with self.subTest(absent=absent):
                self.assertNotIn(absent, s)

    def test_verify_is_clean(self):
        code, out = self.verify(self.copy_unit(daemon_binary()))
        self.assertEqual((code, out), (0, ""))

    def test_verify_check_catches_a_bad_setting(self):
        # The control for the check above: a misspelt key must not pass silently.
        code, out = self.verify(self.copy_unit(daemon_binary(), extra_service_line="ProtectSytem=strict"))
        self.assertIn("Unknown key 'ProtectSytem'", out)

    def test_gpio_dropin_opens_gpiochip_only(self):
        path = self.copy_unit(daemon_binary(), dropin=GPIO_DROPIN)
        self.assertEqual(self.verify(path), (0, ""))
        score, p = exposure(path)
        print(f"\nbluezscriptd.service + gpio.conf: overall exposure {score}")
        self.assertEqual(p.returncode, 0, p.stderr)
        # The drop-in really is applied: its device ACL shows up, and nothing else widens.
        acl = [l for l in p.stdout.splitlines() if l.startswith("✗ DeviceAllow=")]
        self.assertEqual(len(acl), 1, p.stdout)
        self.assertRegex(acl[0], r"char-rtc:r char-gpiochip:rw\s")
        self.assertLessEqual(score, MAX_EXPOSURE, p.stdout)


BUS_BASE = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <!-- The default policy of Debian's system.conf: method calls denied unless allowed. -->
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <!-- Test only: lets the stand-in for bluetoothd take the name. -->
    <allow own="org.bluez"/>
  </policy>
  {include}
</busconfig>
"""

# Stands in for bluetoothd: owns org.bluez and answers every method call with an
# empty reply, so a caller sees either that reply or the bus's AccessDenied.
FAKE_BLUEZ = r"""
import sys, dbus, dbus.bus, dbus.lowlevel
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib
DBusGMainLoop(set_as_default=True)
bus = dbus.bus.BusConnection(sys.argv[1])
def answer(conn, msg):
    if isinstance(msg, dbus.lowlevel.MethodCallMessage):
        conn.send_message(dbus.lowlevel.MethodReturnMessage(msg))
        return dbus.lowlevel.HANDLER_RESULT_HANDLED
    return dbus.lowlevel.HANDLER_RESULT_NOT_YET_HANDLED
bus.add_message_filter(answer)
bus.request_name("org.bluez", dbus.bus.NAME_FLAG_DO_NOT_QUEUE)
print("ready", flush=True)
GLib.MainLoop().run()
"""


class PolicyTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="bzs-dbus-")
        self.addCleanup(shutil.rmtree, self.tmp)
        self.socket = os.path.join(self.tmp, "bus")

    def start_bus(self, policy_text):
        """Starts a private dbus-daemon; returns (address or None, stderr, process)."""
        include = ""
        if policy_text is not None:
            policy = os.path.join(self.tmp, "bluezscript.conf")
            with open(policy, "w", encoding="utf-8") as f:
                f.write(policy_text)
            include = f"<include>{policy}</include>"
        config = os.path.join(self.tmp, "bus.conf")
        with open(config, "w", encoding="utf-8") as f:
            f.write(BUS_BASE.format(socket=self.socket, include=include))
        p = subprocess.Popen(["dbus-daemon", "--nofork", "--nopidfile", "--print-address",
                              f"--config-file={config}"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        address = p.stdout.readline().strip()  # the address once listening, EOF on error
        if not address:
            p.wait(timeout=60)
            err = p.stderr.read()
            p.stdout.close()
            p.stderr.close()
            return None, err, p
        self.addCleanup(self.stop, p)
        return address, "", p

    @staticmethod
    def stop(p):
        p.terminate()
        p.wait(timeout=60)
        for f in (p.stdout, p.stderr):
            if f:
                f.close()

    def policy_for_current_user(self):
        with open(POLICY, encoding="utf-8") as f:
            text = f.read()
        self.assertEqual(text.count('<policy user="bluezscript">'), 1)
        me = pwd.getpwuid(os.getuid()).pw_name
        return text.replace('<policy user="bluezscript">', f'<policy user="{me}">')

    def start_fake_bluez(self, address):
        p = subprocess.Popen(["/usr/bin/python3", "-c", FAKE_BLUEZ, address],
                             stdout=subprocess.PIPE, text=True)
        self.addCleanup(self.stop, p)
        self.assertEqual(p.stdout.readline().strip(), "ready")

    def call(self, address, interface, member="Anything"):
        p = run(["dbus-send", f"--bus={address}", "--print-reply", "--dest=org.bluez",
                 "/org/bluez/hci0", f"{interface}.{member}"])
        return p.returncode, p.stdout + p.stderr

    def test_policy_parses(self):
        with open(POLICY, encoding="utf-8") as f:
            address, err, _ = self.start_bus(f.read())
        self.assertIsNotNone(address, err)
        self.assertTrue(address.startswith("unix:path="), address)

    def test_bad_policy_is_refused(self):
        # The control for the check above: dbus-daemon must reject a broken file.
        with open(POLICY, encoding="utf-8") as f:
            text = f.read().replace("send_destination=", "send_destinaton=", 1)
        address, err, p = self.start_bus(text)
        self.assertIsNone(address)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("send_destinaton", err)

    def test_policy_allows_exactly_the_calls_the_daemon_makes(self):
        address, err, _ = self.start_bus(self.policy_for_current_user())
        self.assertIsNotNone(address, err)
        self.start_fake_bluez(address)
        for interface in ("org.bluez.GattManager1", "org.bluez.LEAdvertisingManager1",
                          "org.bluez.AgentManager1", "org.freedesktop.DBus.ObjectManager",
                          "org.freedesktop.DBus.Properties"):
            with self.subTest(allowed=interface):
                code, out = self.call(address, interface)
                self.assertEqual(code, 0, out)
        for interface in ("org.bluez.Adapter1", "org.bluez.Device1",
                          "org.freedesktop.DBus.Introspectable"):
            with self.subTest(denied=interface):
                code, out = self.call(address, interface)
                self.assertNotEqual(code, 0)
                self.assertIn("org.freedesktop.DBus.Error.AccessDenied", out)

    def test_without_the_policy_the_calls_are_denied(self):
        # Shows the allowances above come from bluezscript.conf, not the base policy.
        address, err, _ = self.start_bus(None)
        self.assertIsNotNone(address, err)
        self.start_fake_bluez(address)
        code, out = self.call(address, "org.bluez.GattManager1", "RegisterApplication")
        self.assertNotEqual(code, 0)
        self.assertIn("org.freedesktop.DBus.Error.AccessDenied", out)



class WatchdogTest(unittest.TestCase):
    """The unit's WatchdogSec= works only if the daemon's loop sends WATCHDOG=1."""

    def test_daemon_reports_ready_then_pings_the_watchdog(self):
        tmp = tempfile.mkdtemp(prefix="bzs-watchdog-")
        os.chmod(tmp, 0o700)
        proc = None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            os.mkdir(os.path.join(tmp, "actions"), 0o700)
            config = os.path.join(tmp, "bluezscript.toml")
            with open(config, "w", encoding="utf-8") as f:
                f.write('[daemon]\nstate_dir = "state"\nactions_dir = "actions"\n'
                        'pi_name = "wd"\n[web]\nenabled = false\n[ble]\nenabled = false\n')
            os.chmod(config, 0o600)
            sock_path = os.path.join(tmp, "notify.sock")
            sock.bind(sock_path)
            sock.settimeout(15)  # a safety net only: messages are awaited, not slept for
            env = dict(os.environ, NOTIFY_SOCKET=sock_path, WATCHDOG_USEC="200000")
            env.pop("WATCHDOG_PID", None)
            proc = subprocess.Popen([daemon_binary(), "--config", config], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            # The loop must keep pinging once the daemon is ready: wait for READY=1,
            # then for a WATCHDOG=1 after it (recv fails the test on the safety net).
            seen = []
            while "READY=1" not in seen or "WATCHDOG=1" not in seen[seen.index("READY=1"):]:
                seen.extend(sock.recv(4096).decode().split("\n"))
        finally:
            sock.close()
            if proc is not None:
                proc.terminate()
                self.assertEqual(proc.wait(timeout=15), 0)
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
