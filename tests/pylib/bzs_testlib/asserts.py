# SPDX-License-Identifier: GPL-3.0-or-later
"""unittest assertions about D-Bus errors, for the suites' TestCase classes."""

import dbus


class DBusAssertions:
    """Mixin for a unittest.TestCase."""

    def assertDBusError(self, name, message, func, *args, **kwargs):
        """func(*args, **kwargs) raises the D-Bus error `name`, with exactly
        `message` unless that is None."""
        with self.assertRaises(dbus.DBusException) as ctx:
            func(*args, **kwargs)
        self.assertEqual(ctx.exception.get_dbus_name(), name)
        if message is not None:
            self.assertEqual(ctx.exception.get_dbus_message(), message)
