// SPDX-License-Identifier: GPL-3.0-or-later
// `bluezscript admin passwd` (the web UI's admin password) and `bluezscript status`.
#pragma once

#include "cli/owner.h"

namespace bzs::cli {

struct PasswdOptions {
    bool from_stdin = false;  ///< read one line from stdin instead of the terminal
};

/// Sets the admin password (scrypt hash in the store) and signs every web session out.
int admin_passwd(const Common& c, const PasswdOptions& o);
/// BLE state (as the daemon last published it), web URLs, certificate fingerprint, devices.
int status(const Common& c);

}  // namespace bzs::cli
