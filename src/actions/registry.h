// SPDX-License-Identifier: GPL-3.0-or-later
// The actions directory: every executable file in it is an action named after the
// file, with optional metadata in NAME.toml beside it. Files other users could edit
// are refused, since running them would hand those users the daemon's privileges.
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/action_meta.h"
#include "config/config.h"
#include "core/auth/verifier.h"
#include "core/protocol/catalogue.h"

namespace bzs::actions {

/// One runnable action.
struct Action {
    std::string name;            ///< the file name; what commands ask for
    std::filesystem::path path;  ///< absolute path of the executable
    std::string description;
    std::chrono::seconds timeout{30};
    std::size_t output_limit = 4096;
    bool allow_args = false;
    std::optional<std::string> arg_pattern;  ///< set when allow_args and no arg_choices
    std::vector<std::string> arg_choices;    ///< when not empty: the allowed arguments
    std::size_t max_args = 0;
    bool concurrent = false;
    bool confirm = false;  ///< the phone asks for a confirmation tap

    bool operator==(const Action&) const = default;
};

/// A file of the actions directory that did not become an action, and why.
struct Problem {
    enum class Kind {
        Ignored,      ///< not an action candidate (hidden, bad name, not executable, ...)
        Refused,      ///< would be an action but is unsafe (writable by others, foreign owner)
        BadMetadata,  ///< its NAME.toml is invalid; the action is not loaded
    };
    Kind kind = Kind::Ignored;
    std::string file;    ///< file name inside the directory ("" = the directory itself)
    std::string reason;  ///< a sentence for people

    bool operator==(const Problem&) const = default;
};
/// "ignored", "refused", "bad metadata".
std::string_view problem_kind_name(Problem::Kind kind);

/// Why `args` may not be passed to `action` (allow_args, max_args, arg_pattern), or
/// nullopt if they may. The verifier checks the pattern too; this also guards the CLI.
std::optional<std::string> check_arguments(const Action& action,
                                           const std::vector<std::string>& args);

/// An immutable snapshot of the actions directory. Cheap to copy; lookups made by
/// lookup() keep their snapshot alive.
class Registry {
  public:
    /// An empty registry (no actions).
    Registry();

    /// Scans `dir` (made absolute). Files that do not become actions are listed in
    /// problems(); only an unreadable directory throws (config::ConfigError). A directory
    /// that others can write to (or owned by someone else) yields no actions and one
    /// Refused problem with file "".
    static Registry load(const std::filesystem::path& dir, const config::ActionsSection& defaults);

    [[nodiscard]] const std::filesystem::path& dir() const;
    /// The action called `name`, or nullptr.
    [[nodiscard]] const Action* find(std::string_view name) const;
    /// All actions, sorted by name.
    [[nodiscard]] const std::vector<Action>& list() const;
    /// Files that were ignored or refused, sorted by file name.
    [[nodiscard]] const std::vector<Problem>& problems() const;

    /// The verifier's view of one action, or nullopt if there is no such action.
    [[nodiscard]] std::optional<core::auth::ActionRules> rules(std::string_view name) const;
    /// rules() as the verifier's ActionLookup; holds this snapshot, not the Registry.
    [[nodiscard]] core::auth::ActionLookup lookup() const;
    /// The catalogue a device with these permitted actions reads over BLE: the
    /// loaded actions it may run, by name, as the phone draws them (at most
    /// core::protocol::kMaxCatalogueEntries). Actions it may run but that are not
    /// loaded are left out.
    [[nodiscard]] std::vector<core::protocol::CatalogueEntry> catalogue(
        const std::vector<std::string>& permitted) const;

  private:
    struct Data;
    explicit Registry(std::shared_ptr<const Data> data);
    std::shared_ptr<const Data> data_;
};

}  // namespace bzs::actions
