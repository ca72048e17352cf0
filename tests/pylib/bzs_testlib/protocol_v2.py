# SPDX-License-Identifier: GPL-3.0-or-later
"""The name protocol version 2 had while it lived beside version 1; it is
bzs_testlib.protocol now. Kept so that references to it (spec/vectors/v2/README.md,
docs/design/protocol-v2.md) still resolve until the switch's doc moves."""

from .protocol import *  # noqa: F401,F403 pylint: disable=wildcard-import,unused-wildcard-import
