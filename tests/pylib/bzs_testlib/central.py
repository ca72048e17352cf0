# SPDX-License-Identifier: GPL-3.0-or-later
"""A raw GATT central in the test's process (dbus-python on hci1): talks to the Pi
through org.bluez like a phone would, but lets the test choose every byte it
writes (replays, partial writes, garbage)."""

import dbus
import dbus.service

from .bluez import ADAPTER, BLUEZ, CHRC, DEVICE, OM, ay
from .mirror import ObjectMirror
from .protocol import (
    CHALLENGE_UUID, COMMAND_UUID, INFO_UUID, RESULT_UUID, SVC_UUID, Reassembler,
    open_response)
from .wait import TIMEOUT, call, drain, spin_until


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


class RawCentral(ObjectMirror):
    """Talks to the Pi through the fake's central API on hci1, like a phone
    would, but lets the test choose every byte it writes."""

    def __init__(self, address, adapter="/org/bluez/hci1"):
        super().__init__(dbus.bus.BusConnection(address))
        self.adapter = adapter
        # The fake names adapter hciN 02:BD:5C:00:00:(0x10+N): the Pi is on hci0.
        self.device = adapter + "/dev_02_BD_5C_00_00_10"
        self.fragments = []  # notification payloads received on Result, not yet read
        self.reassembler = Reassembler()
        self.frames = []  # complete frames reassembled, not yet returned
        self.chars = {}
        self.agent = None
        self.load(self.call("/", OM, "GetManagedObjects"))

    def close(self):
        self.conn.close()

    def on_changed(self, path, iface, name, value):
        if iface == CHRC and name == "Value" and path == self.chars.get(RESULT_UUID):
            self.fragments.append(bytes(value))

    def call(self, path, iface, method, signature="", args=(), timeout=TIMEOUT):
        """A call to org.bluez that keeps the main loop running while it waits (so
        our agent can be called back)."""
        return call(self.conn, BLUEZ, path, iface, method, signature, args, timeout)

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

    def next_frame(self, timeout=TIMEOUT):
        """Waits for the next complete frame notified on Result (fragments received
        before this call count) and returns its bytes."""
        def complete():
            while self.fragments:
                frame = self.reassembler.feed(self.fragments.pop(0))
                if frame is not None:
                    self.frames.append(frame)
            return bool(self.frames)

        spin_until(complete, timeout, "a response on Result")
        return self.frames.pop(0)

    def next_response(self, key=None, request=b"", timeout=TIMEOUT):
        """The next frame on Result as protocol.open_response() reads it: opened with
        `key` as the answer to `request` (without a key only a plain refusal reads)."""
        return open_response(self.next_frame(timeout), key or bytes(32), request)

    def drain(self):
        """Lets queued signals arrive, then forgets received fragments."""
        drain()
        self.fragments.clear()
        self.frames.clear()
        self.reassembler = Reassembler()
