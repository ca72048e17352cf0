# SPDX-License-Identifier: GPL-3.0-or-later
"""Bounded waits that run the GLib main loop: every wait ends on an event (a D-Bus
signal or reply) or fails after its timeout; there are no sleeps."""

from gi.repository import GLib

TIMEOUT = 15.0  # default bound of one wait; generous for a loaded 2-core machine


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


def call(conn, dest, path, iface, method, signature="", args=(), timeout=TIMEOUT):
    """A method call that keeps the main loop running while it waits, so this
    process's own objects (an application, an agent) can be called back. Returns
    the single value, a tuple of several, or None; raises the D-Bus error."""
    result = {}
    conn.call_async(dest, path, iface, method, signature, args,
                    lambda *r: result.setdefault("ok", r),
                    lambda e: result.setdefault("error", e),
                    timeout=timeout, byte_arrays=True)
    spin_until(lambda: result, timeout + 1, "the reply to %s.%s" % (iface, method))
    if "error" in result:
        raise result["error"]
    values = result["ok"]
    return values[0] if len(values) == 1 else (values or None)


def drain():
    """Runs what the main loop has ready (queued signals, replies) without waiting."""
    context = GLib.MainContext.default()
    while context.iteration(False):
        pass
