// SPDX-License-Identifier: GPL-3.0-or-later
#include "service/state.h"

#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace bzs::service {

std::unique_ptr<store::Store> open_state(const config::Config& cfg) {
    const auto& dir = cfg.daemon.state_dir;
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
        throw store::KeyFileError("cannot create state folder " + dir.string() + ": " +
                                  std::strerror(errno));
    }
    store::require_private(dir, "state folder");
    // The key file is checked (and created 0600) by the Store as it loads it.
    return std::make_unique<store::Store>(cfg.db_path(), cfg.keyfile_path());
}

}  // namespace bzs::service
