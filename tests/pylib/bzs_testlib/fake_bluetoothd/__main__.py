# SPDX-License-Identifier: GPL-3.0-or-later
"""`python3 -m bzs_testlib.fake_bluetoothd [OPTIONS]`: runs the fake (see --help)."""

import sys

from .main import main

sys.exit(main(sys.argv[1:]))
