# SPDX-License-Identifier: GPL-3.0-or-later
"""Exported objects: the traced D-Bus object base, properties, the root."""

import dbus
import dbus.lowlevel
import dbus.service

from .constants import BLUEZ, ERROR, INTROSPECT_IFACE, OM_IFACE, PROPS_IFACE
from .helpers import BluezError, dbus_strings, fmt, log, props_dict


class TracedObject(dbus.service.Object):
    """dbus.service.Object that logs each incoming call and, like gdbus,
    refuses a call whose argument signature is not the method's."""

    def _message_cb(self, connection, message):
        if isinstance(message, dbus.lowlevel.MethodCallMessage):
            member, iface = message.get_member(), message.get_interface()
            log("call %s -> %s %s.%s%s" % (
                message.get_sender(), message.get_path(), iface, member,
                fmt(tuple(message.get_args_list(byte_arrays=True)))))
            try:
                parent = dbus.service._method_lookup(self, member, iface)[1]
            except Exception:  # unknown method: the base class answers it
                parent = None
            expected = getattr(parent, "_dbus_in_signature", None)
            if expected is not None and str(message.get_signature() or "") != expected:
                if iface and iface.startswith(BLUEZ):
                    name, text = ERROR + "InvalidArguments", "Invalid arguments in method call"
                else:
                    name, text = "org.freedesktop.DBus.Error.InvalidArgs", "Invalid arguments"
                log("  -> error %s (signature %r, expected %r)" % (
                    name, str(message.get_signature()), expected))
                connection.send_message(dbus.lowlevel.ErrorMessage(message, name, text))
                return
        super()._message_cb(connection, message)


class ExportedObject(TracedObject):
    """An org.bluez object with org.freedesktop.DBus.Properties.

    self.props maps interface -> {name: typed D-Bus value}; a property missing
    from the dict does not exist (BlueZ's "exists" callbacks). Writable
    properties have a setter in self.setters[(iface, name)] = (type, func)."""

    def __init__(self, fake, path):
        super().__init__(fake.bus, path)
        self.fake = fake
        self.path = path
        self.props = {}
        self.setters = {}
        self.published = False

    def interfaces_and_properties(self):
        out = {iface: props_dict(p) for iface, p in self.props.items()}
        out[INTROSPECT_IFACE] = props_dict({})
        out[PROPS_IFACE] = props_dict({})
        return dbus.Dictionary(out, signature="sa{sv}")

    def publish(self):
        """Announce the object (InterfacesAdded) and list it in GetManagedObjects."""
        self.published = True
        self.fake.objects[self.path] = self
        log("InterfacesAdded %s %s" % (self.path, sorted(self.props)))
        self.fake.root.InterfacesAdded(self.path, self.interfaces_and_properties())

    def unpublish(self):
        """Remove the object from the bus (InterfacesRemoved)."""
        if self.published:
            self.published = False
            self.fake.objects.pop(self.path, None)
            ifaces = list(self.props) + [INTROSPECT_IFACE, PROPS_IFACE]
            log("InterfacesRemoved %s" % self.path)
            self.fake.root.InterfacesRemoved(self.path, dbus_strings(ifaces))
        self.remove_from_connection()

    def set_prop(self, iface, name, value, force=False):
        """Set a property; emits PropertiesChanged when the value changed (or
        always with force, as BlueZ does for every notification)."""
        current = self.props.setdefault(iface, {})
        if not force and name in current and current[name] == value:
            return
        current[name] = value
        if self.published:
            log("PropertiesChanged %s %s.%s = %s" % (self.path, iface, name, fmt(value)))
            self.PropertiesChanged(iface, props_dict({name: value}), dbus_strings([]))

    def drop_prop(self, iface, name):
        """Make a property cease to exist (PropertiesChanged 'invalidated')."""
        if name in self.props.get(iface, {}):
            del self.props[iface][name]
            if self.published:
                log("PropertiesChanged %s %s.%s invalidated" % (self.path, iface, name))
                self.PropertiesChanged(iface, props_dict({}), dbus_strings([name]))

    def prop(self, iface, name, default=None):
        return self.props.get(iface, {}).get(name, default)

    @dbus.service.method(PROPS_IFACE, in_signature="ss", out_signature="v")
    def Get(self, iface, name):
        if iface not in self.props:
            raise BluezError("org.freedesktop.DBus.Error.InvalidArgs",
                             "No such interface '%s'" % iface)
        if name not in self.props[iface]:
            raise BluezError("org.freedesktop.DBus.Error.InvalidArgs",
                             "No such property '%s'" % name)
        return self.props[iface][name]

    @dbus.service.method(PROPS_IFACE, in_signature="s", out_signature="a{sv}")
    def GetAll(self, iface):
        if iface not in self.props:
            raise BluezError("org.freedesktop.DBus.Error.InvalidArgs",
                             "No such interface '%s'" % iface)
        return props_dict(self.props[iface])

    @dbus.service.method(PROPS_IFACE, in_signature="ssv", out_signature="",
                         sender_keyword="sender")
    def Set(self, iface, name, value, sender=None):
        if iface not in self.props:
            raise BluezError("org.freedesktop.DBus.Error.InvalidArgs",
                             "No such interface '%s'" % iface)
        if name not in self.props[iface]:
            raise BluezError("org.freedesktop.DBus.Error.InvalidArgs",
                             "No such property '%s'" % name)
        setter = self.setters.get((iface, name))
        if setter is None:
            raise BluezError("org.freedesktop.DBus.Error.PropertyReadOnly",
                             "Property '%s' is not writable" % name)
        expected_type, func = setter
        if not isinstance(value, expected_type):
            raise BluezError("org.freedesktop.DBus.Error.InvalidArgs",
                             "Invalid argument type: '%s'" % type(value).__name__)
        func(value, sender)

    @dbus.service.signal(PROPS_IFACE, signature="sa{sv}as")
    def PropertiesChanged(self, iface, changed, invalidated):
        pass


class Root(TracedObject):
    """The ObjectManager at "/" (BlueZ's root)."""

    def __init__(self, fake):
        super().__init__(fake.bus, "/")
        self.fake = fake

    @dbus.service.method(OM_IFACE, in_signature="", out_signature="a{oa{sa{sv}}}")
    def GetManagedObjects(self):
        return dbus.Dictionary(
            {dbus.ObjectPath(p): o.interfaces_and_properties()
             for p, o in sorted(self.fake.objects.items())},
            signature="oa{sa{sv}}")

    @dbus.service.signal(OM_IFACE, signature="oa{sa{sv}}")
    def InterfacesAdded(self, path, interfaces):
        pass

    @dbus.service.signal(OM_IFACE, signature="oas")
    def InterfacesRemoved(self, path, interfaces):
        pass
