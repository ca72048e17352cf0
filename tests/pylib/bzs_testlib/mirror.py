# SPDX-License-Identifier: GPL-3.0-or-later
"""The one mirror of org.bluez's objects: GetManagedObjects once, then kept up to
date by InterfacesAdded, InterfacesRemoved and PropertiesChanged (the way a BlueZ
client such as the daemon or a phone's stack follows it)."""

from .bluez import BLUEZ, OM, PROPS


class ObjectMirror:
    """`objects`: {path: {interface: {property: value}}} with str keys.

    sender: the signals' sender (org.bluez; None takes any, for a bus where the
    service restarts and a fresh owner's first signals can beat dbus-python's
    name-owner cache). byte_arrays: byte arrays as bytes. path_prefix: property
    changes are taken only on paths below it. Subclasses hear of changes through
    on_changed() and on_removed()."""

    def __init__(self, conn, sender=BLUEZ, byte_arrays=True, path_prefix=None):
        self.conn = conn
        self.objects = {}
        self.path_prefix = path_prefix
        conn.add_signal_receiver(self._added, "InterfacesAdded", OM, sender, "/",
                                 byte_arrays=byte_arrays)
        conn.add_signal_receiver(self._removed, "InterfacesRemoved", OM, sender, "/")
        conn.add_signal_receiver(self._changed, "PropertiesChanged", PROPS, sender,
                                 path_keyword="path", byte_arrays=byte_arrays)

    def load(self, managed):
        """Replaces the mirror with a GetManagedObjects reply."""
        self.objects = {str(p): {str(i): dict(v) for i, v in ifaces.items()}
                        for p, ifaces in managed.items()}

    def _added(self, path, interfaces):
        self.objects.setdefault(str(path), {}).update(
            {str(i): dict(v) for i, v in interfaces.items()})

    def _removed(self, path, interfaces):
        self.on_removed(str(path))
        entry = self.objects.get(str(path), {})
        for iface in interfaces:
            entry.pop(str(iface), None)
        if not entry:
            self.objects.pop(str(path), None)

    def _changed(self, iface, changed, invalidated, path=None):
        if self.path_prefix is not None and not str(path).startswith(self.path_prefix):
            return
        props = self.objects.get(str(path), {}).get(str(iface))
        for name, value in changed.items():
            self.on_changed(str(path), str(iface), str(name), value)
            if props is not None:
                props[str(name)] = value
        for name in invalidated:
            if props is not None:
                props.pop(str(name), None)

    def on_changed(self, path, iface, name, value):
        """A property changed (before the mirror takes the new value)."""

    def on_removed(self, path):
        """InterfacesRemoved for `path` (before the mirror drops them)."""

    def prop(self, path, iface, name, default=None):
        return self.objects.get(path, {}).get(iface, {}).get(name, default)
