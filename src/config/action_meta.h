// SPDX-License-Identifier: GPL-3.0-or-later
// Optional metadata beside an action: for the executable actions.d/NAME, the TOML file
// actions.d/NAME.toml. Parsed strictly: unknown keys, wrong types and out-of-range
// values are errors, because a mistyped argument rule must not silently fall back to a
// default.
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "config/error.h"

namespace bzs::config {

/// Argument pattern used when allow_args is true and arg_pattern is not given.
inline constexpr std::string_view kDefaultArgPattern = "[A-Za-z0-9._:-]{1,64}";
inline constexpr std::int64_t kMaxActionTimeoutSeconds = 3600;
inline constexpr std::size_t kMaxActionOutputLimit = 65536;
inline constexpr std::size_t kMaxDescriptionBytes = 256;
inline constexpr std::size_t kMaxArgPatternBytes = 256;

/// An action's settings, after defaults are applied.
struct ActionMeta {
    std::string description;
    std::chrono::seconds timeout{30};  ///< 1..3600
    std::size_t output_limit = 4096;   ///< bytes of output kept, 0..65536
    bool allow_args = false;
    /// ECMAScript regex each argument must fully match; set iff allow_args.
    std::optional<std::string> arg_pattern;
    /// When not empty: each argument must be one of these (1..8 choices of 1..32
    /// bytes, no control characters); excludes arg_pattern. The phone offers a list.
    std::vector<std::string> arg_choices;
    std::size_t max_args = 0;  ///< 0..8; 0 when allow_args is false
    bool concurrent = false;   ///< may run while another run of it is in progress
    bool confirm = false;      ///< the phone asks for a confirmation tap before sending

    bool operator==(const ActionMeta&) const = default;
};

/// The metadata of an action without a .toml file.
ActionMeta default_action_meta(const ActionsSection& defaults);

/// Parses metadata TOML text. Keys: description (string), timeout (integer seconds,
/// 1..3600), output_limit (integer bytes, 0..65536), allow_args (bool), arg_pattern
/// (string regex; needs allow_args), arg_choices (array of 1..8 strings of 1..32 bytes;
/// needs allow_args; excludes arg_pattern), max_args (integer 0..8; needs allow_args;
/// default 8), concurrent (bool), confirm (bool). Throws ConfigError naming `source_name`, the
/// line, the key and the problem (every problem of the file, one per line).
ActionMeta parse_action_meta(std::string_view toml_text, std::string_view source_name,
                             const ActionsSection& defaults);

/// Reads and parses the metadata file at `path`. Throws ConfigError.
ActionMeta load_action_meta(const std::filesystem::path& path, const ActionsSection& defaults);

}  // namespace bzs::config
