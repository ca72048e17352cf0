# SPDX-License-Identifier: GPL-3.0-or-later
"""GATT bridge for the phone app's browser test (phone_app.test.mjs).

Chromium's BluetoothEmulation presents a fake peripheral to the page; this process
makes that peripheral's answers real: it starts a private dbus-daemon with the fake
org.bluez (bzs_testlib.bus), and forwards every GATT operation the page performs to
the real bluezscriptd (on hci0) through a central on hci1 (bzs_testlib.central's
RawCentral, as in the BLE end-to-end tests), like the phone's Bluetooth stack would.

Protocol on stdin/stdout, one JSON object per line:
  out: {"event": "ready", "bus": "<address>"}           once the fake owns org.bluez
  in:  {"id": n, "op": "connect"}                         scan, connect, find the service
       {"id": n, "op": "read", "uuid": U}                -> {"id": n, "ok": true, "data": hex}
       {"id": n, "op": "write", "uuid": U, "data": hex}  -> {"id": n, "ok": true}
       {"id": n, "op": "disconnect"}
  out: {"id": n, "ok": false, "error": "org.bluez.Error.X: message"} on failure
End of stdin stops the fake and the bus. Run with Debian's /usr/bin/python3 and
tests/pylib on PYTHONPATH (phone_app.test.mjs sets it).
"""

import json
import sys

from bzs_testlib import bus as bus_harness
from bzs_testlib.bluez import DEVICE
from bzs_testlib.central import RawCentral


def reply(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main():
    log_path = sys.argv[1] if len(sys.argv) > 1 else None
    bus = bus_harness.start_bus()
    fake = None
    central = None
    try:
        fake = bus_harness.start_fake(bus.address, ["--temporary-timeout", "0"], log_path)
        reply({"event": "ready", "bus": bus.address})
        for line in sys.stdin:
            if not line.strip():
                continue
            req = json.loads(line)
            try:
                if req["op"] == "connect":
                    if central is None:
                        central = RawCentral(bus.address)
                    if not central.prop(central.device, DEVICE, "Connected", False):
                        central.connect()
                    reply({"id": req["id"], "ok": True})
                elif req["op"] == "read":
                    reply({"id": req["id"], "ok": True, "data": central.read(req["uuid"]).hex()})
                elif req["op"] == "write":
                    central.write(bytes.fromhex(req["data"]), uuid=req["uuid"])
                    reply({"id": req["id"], "ok": True})
                elif req["op"] == "disconnect":
                    if central is not None and central.prop(central.device, DEVICE,
                                                            "Connected", False):
                        central.disconnect()
                    reply({"id": req["id"], "ok": True})
                else:
                    reply({"id": req["id"], "ok": False, "error": "unknown op %r" % req["op"]})
            except Exception as e:  # every failure goes back to the test, named
                name = getattr(e, "get_dbus_name", lambda: type(e).__name__)()
                reply({"id": req.get("id"), "ok": False, "error": "%s: %s" % (name, e)})
    finally:
        if central is not None:
            central.close()
        if fake is not None:
            bus_harness.stop_process(fake)
        bus.stop()


if __name__ == "__main__":
    main()
