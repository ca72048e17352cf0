// SPDX-License-Identifier: GPL-3.0-or-later
// Opening the Pi's state the same way in the daemon and the CLI: the private state
// folder, the master key file and the database, each checked before use.
#pragma once

#include <memory>

#include "config/config.h"
#include "store/store.h"

namespace bzs::service {

/// Creates the state folder (0700) if absent, refuses it (and the key and
/// database files) when group or others can read them, creates the master key on
/// first use, and opens the database. Throws store::KeyFileError or
/// store::StoreError with a message that says what to fix.
std::unique_ptr<store::Store> open_state(const config::Config& cfg);

}  // namespace bzs::service
