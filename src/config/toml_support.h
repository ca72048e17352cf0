// SPDX-License-Identifier: GPL-3.0-or-later
// Pieces shared by the two TOML readers of this folder (config.cpp, action_meta.cpp):
// how a value's type is named in messages, the control-character check, and the
// collector that reports every problem of a file at once.
#pragma once

#include <toml++/toml.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/error.h"

namespace bzs::config::detail {

inline bool has_control_chars(std::string_view s) {
    return std::any_of(s.begin(), s.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u < 0x20 || u == 0x7f;
    });
}

/// "a string", "an integer", ... for "expected X, got Y" messages.
inline std::string type_phrase(const toml::node& n) {
    switch (n.type()) {
        case toml::node_type::table:
            return "a table";
        case toml::node_type::array:
            return "an array";
        case toml::node_type::string:
            return "a string";
        case toml::node_type::integer:
            return "an integer";
        case toml::node_type::floating_point:
            return "a floating-point number";
        case toml::node_type::boolean:
            return "a boolean";
        case toml::node_type::date:
            return "a date";
        case toml::node_type::time:
            return "a time";
        case toml::node_type::date_time:
            return "a date-time";
        case toml::node_type::none:
            break;
    }
    return "nothing";
}

inline std::uint32_t line_of(const toml::node& n) {
    return n.source().begin.line;
}

/// Collects every problem of one file ("file:line: what"), so that a single run
/// shows them all, in line order.
class Problems {
  public:
    explicit Problems(std::string source) : source_(std::move(source)) {}

    void add(std::uint32_t line, const std::string& what) {
        std::string msg = source_;
        if (line > 0) {
            msg += ":" + std::to_string(line);
        }
        items_.emplace_back(line, msg + ": " + what);
    }
    [[nodiscard]] bool empty() const { return items_.empty(); }
    [[nodiscard]] const std::string& source() const { return source_; }
    /// Throws ConfigError with every problem, one per line.
    [[noreturn]] void raise() {
        std::stable_sort(items_.begin(), items_.end(),
                         [](const auto& a, const auto& b) { return a.first < b.first; });
        std::string all;
        for (const auto& item : items_) {
            if (!all.empty()) {
                all += '\n';
            }
            all += item.second;
        }
        throw ConfigError(all);
    }
    void raise_if_any() {
        if (!empty()) {
            raise();
        }
    }

  private:
    std::string source_;
    std::vector<std::pair<std::uint32_t, std::string>> items_;
};

}  // namespace bzs::config::detail
