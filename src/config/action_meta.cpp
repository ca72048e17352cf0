// SPDX-License-Identifier: GPL-3.0-or-later
#include "config/action_meta.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <regex>
#include <utility>
#include <vector>

#include <toml++/toml.h>

#include "config/toml_support.h"

#include "core/protocol/protocol.h"

namespace bzs::config {

namespace {

using detail::has_control_chars;
using detail::type_phrase;

constexpr std::size_t kMaxMetaFileBytes = std::size_t{64} * 1024;
constexpr std::string_view kKnownKeys =
    "description, timeout, output_limit, allow_args, arg_pattern, arg_choices, max_args, "
    "concurrent, confirm";
constexpr std::size_t kMaxChoices = 8;
constexpr std::size_t kMaxChoiceBytes = 32;

/// The shared collector, with messages of the form "file:line: key: what".
class Problems : public detail::Problems {
  public:
    using detail::Problems::add;
    using detail::Problems::Problems;
    void add(const toml::node& at, std::string_view key, const std::string& what) {
        add(detail::line_of(at), std::string(key) + ": " + what);
    }
    void add_unknown(const toml::node& at, std::string_view key) {
        add(at, key, "unknown key (known keys: " + std::string(kKnownKeys) + ")");
    }
};

std::optional<bool> get_bool(const toml::node& n, std::string_view key, Problems& p) {
    if (const auto* b = n.as_boolean()) {
        return b->get();
    }
    p.add(n, key, "expected true or false, got " + type_phrase(n));
    return std::nullopt;
}

std::optional<std::int64_t> get_int(const toml::node& n, std::string_view key, std::int64_t lo,
                                    std::int64_t hi, Problems& p) {
    const std::string expected =
        "expected an integer in " + std::to_string(lo) + ".." + std::to_string(hi);
    const auto* i = n.as_integer();
    if (i == nullptr) {
        p.add(n, key, expected + ", got " + type_phrase(n));
        return std::nullopt;
    }
    if (i->get() < lo || i->get() > hi) {
        p.add(n, key, expected + ", got " + std::to_string(i->get()));
        return std::nullopt;
    }
    return i->get();
}

std::optional<std::string> get_string(const toml::node& n, std::string_view key,
                                      std::size_t max_bytes, Problems& p) {
    const auto* s = n.as_string();
    if (s == nullptr) {
        p.add(n, key, "expected a string, got " + type_phrase(n));
        return std::nullopt;
    }
    if (s->get().size() > max_bytes) {
        p.add(n, key, "longer than " + std::to_string(max_bytes) + " bytes");
        return std::nullopt;
    }
    if (has_control_chars(s->get())) {
        p.add(n, key, "contains control characters");
        return std::nullopt;
    }
    return s->get();
}

}  // namespace

ActionMeta default_action_meta(const ActionsSection& defaults) {
    ActionMeta m;
    m.timeout = std::chrono::seconds(defaults.default_timeout_seconds);
    m.output_limit = defaults.default_output_limit_bytes;
    return m;
}

ActionMeta parse_action_meta(std::string_view toml_text, std::string_view source_name,
                             const ActionsSection& defaults) {
    const std::string source(source_name);
    toml::table table;
    try {
        table = toml::parse(toml_text, source);
    } catch (const toml::parse_error& e) {
        throw ConfigError(source + ":" + std::to_string(e.source().begin.line) +
                          ": invalid TOML: " + std::string(e.description()));
    }

    ActionMeta m = default_action_meta(defaults);
    Problems problems(source);
    const toml::node* pattern_node = nullptr;
    const toml::node* choices_node = nullptr;
    const toml::node* max_args_node = nullptr;
    std::optional<std::int64_t> max_args;

    for (auto&& [key, node] : table) {
        const std::string_view k = key.str();
        if (k == "description") {
            if (auto v = get_string(node, k, kMaxDescriptionBytes, problems)) {
                m.description = std::move(*v);
            }
        } else if (k == "timeout") {
            if (auto v = get_int(node, k, 1, kMaxActionTimeoutSeconds, problems)) {
                m.timeout = std::chrono::seconds(*v);
            }
        } else if (k == "output_limit") {
            if (auto v = get_int(node, k, 0, kMaxActionOutputLimit, problems)) {
                m.output_limit = static_cast<std::size_t>(*v);
            }
        } else if (k == "allow_args") {
            if (auto v = get_bool(node, k, problems)) {
                m.allow_args = *v;
            }
        } else if (k == "arg_pattern") {
            pattern_node = &node;
            if (auto v = get_string(node, k, kMaxArgPatternBytes, problems)) {
                if (v->empty()) {
                    problems.add(node, k, "must not be empty");
                    continue;
                }
                try {
                    const std::regex re(*v, std::regex::ECMAScript);
                    m.arg_pattern = std::move(*v);
                } catch (const std::regex_error& e) {
                    problems.add(node, k,
                                 std::string("not a valid ECMAScript regular expression (") +
                                     e.what() + ")");
                }
            }
        } else if (k == "max_args") {
            max_args_node = &node;
            max_args =
                get_int(node, k, 0, static_cast<std::int64_t>(core::protocol::kMaxArgs), problems);
        } else if (k == "arg_choices") {
            choices_node = &node;
            const auto* arr = node.as_array();
            if (arr == nullptr) {
                problems.add(node, k, "expected an array of strings, got " + type_phrase(node));
                continue;
            }
            if (arr->empty() || arr->size() > kMaxChoices) {
                problems.add(node, k,
                             "expected 1 to " + std::to_string(kMaxChoices) + " choices, got " +
                                 std::to_string(arr->size()));
                continue;
            }
            std::vector<std::string> choices;
            bool ok = true;
            for (const auto& item : *arr) {
                auto v = get_string(item, k, kMaxChoiceBytes, problems);
                if (!v) {
                    ok = false;
                    break;
                }
                if (v->empty() || std::find(choices.begin(), choices.end(), *v) != choices.end()) {
                    problems.add(item, k,
                                 v->empty() ? "a choice is empty" : "a choice is repeated");
                    ok = false;
                    break;
                }
                choices.push_back(std::move(*v));
            }
            if (ok) {
                m.arg_choices = std::move(choices);
            }
        } else if (k == "confirm") {
            if (auto v = get_bool(node, k, problems)) {
                m.confirm = *v;
            }
        } else if (k == "concurrent") {
            if (auto v = get_bool(node, k, problems)) {
                m.concurrent = *v;
            }
        } else {
            problems.add_unknown(node, k);
        }
    }

    // Argument settings without allow_args would be silently ignored: say so instead.
    if (!m.allow_args) {
        if (pattern_node != nullptr) {
            problems.add(*pattern_node, "arg_pattern", "set but allow_args is not true");
        }
        if (choices_node != nullptr) {
            problems.add(*choices_node, "arg_choices", "set but allow_args is not true");
        }
        if (max_args_node != nullptr && max_args.value_or(0) != 0) {
            problems.add(*max_args_node, "max_args", "set but allow_args is not true");
        }
        m.arg_pattern.reset();
        m.arg_choices.clear();
        m.max_args = 0;
    } else {
        if (choices_node != nullptr && pattern_node != nullptr) {
            problems.add(*choices_node, "arg_choices",
                         "set together with arg_pattern; an argument rule is one or the other");
        }
        if (max_args_node != nullptr && max_args == 0) {
            problems.add(*max_args_node, "max_args", "is 0 but allow_args is true");
        }
        if (!m.arg_pattern && m.arg_choices.empty()) {
            m.arg_pattern = std::string(kDefaultArgPattern);
        }
        m.max_args = static_cast<std::size_t>(
            max_args.value_or(static_cast<std::int64_t>(core::protocol::kMaxArgs)));
    }
    problems.raise_if_any();
    return m;
}

ActionMeta load_action_meta(const std::filesystem::path& path, const ActionsSection& defaults) {
    const std::string source = path.string();
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw ConfigError(source + ": cannot open the metadata file: " + std::strerror(errno));
    }
    std::string text;
    text.resize(kMaxMetaFileBytes + 1);
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    if (in.bad()) {
        throw ConfigError(source + ": cannot read the metadata file: " + std::strerror(errno));
    }
    text.resize(static_cast<std::size_t>(in.gcount()));
    if (text.size() > kMaxMetaFileBytes) {
        throw ConfigError(source + ": larger than " + std::to_string(kMaxMetaFileBytes) +
                          " bytes, not an action metadata file");
    }
    return parse_action_meta(text, source, defaults);
}

}  // namespace bzs::config
