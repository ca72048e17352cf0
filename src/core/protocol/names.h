// SPDX-License-Identifier: GPL-3.0-or-later
// The naming rules every part of BlueZscript shares: what an action name and a
// device name may be. Defined once here; the registry, the store, the web UI, the
// client and the wire decoder all call these, and docs/protocol.md and
// docs/actions.md state the same rules.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bzs::core::protocol {

/// The action-name rule in words, for error messages.
inline constexpr std::string_view kActionNameRule =
    "1-64 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit, "
    "not ending in .toml";

/// True for an action name: ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ and not ending in
/// ".toml" (that suffix names an action's metadata file in the actions folder, so
/// such an action could never exist). ASCII only, whatever the locale.
bool valid_action_name(std::string_view name);

/// True for a command argument: any bytes but control characters (0x00-0x1F, 0x7F).
/// Arguments become argv entries: exec cannot carry NUL, and control characters only
/// confuse logs and terminals. Bytes 0x80-0xFF are allowed (UTF-8 text).
bool valid_argument(std::string_view arg);

/// Longest device name, in Unicode code points.
inline constexpr std::size_t kMaxDeviceNameChars = 64;

/// Why `name` cannot name a device, or nullopt when it can: valid UTF-8, 1-64 code
/// points, no control or line/direction-changing characters (a name must not be
/// able to disguise itself as another in a listing), no leading or trailing space.
std::optional<std::string> device_name_problem(std::string_view name);

/// Decodes UTF-8 into code points; nullopt if malformed (overlong, surrogate, out of
/// range, truncated).
std::optional<std::vector<char32_t>> utf8_decode(std::string_view s);

/// `s` in single quotes with control bytes as \xNN, safe to put in an error message.
std::string quote_for_message(std::string_view s);

}  // namespace bzs::core::protocol
