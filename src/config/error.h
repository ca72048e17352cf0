// SPDX-License-Identifier: GPL-3.0-or-later
// The one exception type of the config module: a configuration or metadata file is
// unreadable or invalid. The message names the file, the key and the problem.
#pragma once

#include <stdexcept>

namespace bzs::config {

/// A configuration file (daemon config or action metadata) is invalid or unreadable.
class ConfigError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

}  // namespace bzs::config
