// SPDX-License-Identifier: GPL-3.0-or-later
#include "actions/registry.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <regex>
#include <set>
#include <utility>

#include "core/protocol/names.h"
#include "util/unique_fd.h"

namespace bzs::actions {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kMetaSuffix = ".toml";
std::string octal_mode(mode_t mode) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
    return buf;
}

/// Why a file with this status must not be trusted, or "" if it may be.
std::string unsafe_reason(const struct stat& st, std::string_view what) {
    const uid_t self = geteuid();
    if (st.st_uid != self && st.st_uid != 0) {
        return std::string(what) + " is owned by uid " + std::to_string(st.st_uid) +
               ", not by root or the daemon's user (uid " + std::to_string(self) + ")";
    }
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
        return std::string(what) + " is writable by group or others (mode " +
               octal_mode(st.st_mode) + ")";
    }
    return {};
}

std::vector<std::string> directory_names(int dfd, const std::string& where) {
    const int copy = ::fcntl(dfd, F_DUPFD_CLOEXEC, 0);
    DIR* d = copy < 0 ? nullptr : ::fdopendir(copy);
    if (d == nullptr) {
        const int err = errno;
        if (copy >= 0) {
            ::close(copy);
        }
        throw config::ConfigError(where +
                                  ": cannot list the actions directory: " + std::strerror(err));
    }
    std::vector<std::string> names;
    errno = 0;
    while (const dirent* e = ::readdir(d)) {
        const std::string_view n = e->d_name;
        if (n != "." && n != "..") {
            names.emplace_back(n);
        }
        errno = 0;
    }
    const int err = errno;
    ::closedir(d);
    if (err != 0) {
        throw config::ConfigError(where +
                                  ": cannot list the actions directory: " + std::strerror(err));
    }
    std::sort(names.begin(), names.end());
    return names;
}

}  // namespace

struct Registry::Data {
    fs::path dir;
    std::vector<Action> actions;  // sorted by name
    std::vector<Problem> problems;
};

std::string_view problem_kind_name(Problem::Kind kind) {
    switch (kind) {
        case Problem::Kind::Ignored:
            return "ignored";
        case Problem::Kind::Refused:
            return "refused";
        case Problem::Kind::BadMetadata:
            return "bad metadata";
    }
    return "unknown";
}

std::optional<std::string> check_arguments(const Action& action,
                                           const std::vector<std::string>& args) {
    if (args.empty()) {
        return std::nullopt;
    }
    if (!action.allow_args) {
        return "action " + action.name + " takes no arguments";
    }
    if (args.size() > action.max_args) {
        return "action " + action.name + " takes at most " + std::to_string(action.max_args) +
               " arguments, got " + std::to_string(args.size());
    }
    if (!action.arg_choices.empty()) {
        for (std::size_t i = 0; i < args.size(); ++i) {
            if (std::find(action.arg_choices.begin(), action.arg_choices.end(), args[i]) ==
                action.arg_choices.end()) {
                return "argument " + std::to_string(i + 1) +
                       " is not one of the choices of action " + action.name;
            }
        }
        return std::nullopt;
    }
    const std::regex re(action.arg_pattern.value_or(std::string(config::kDefaultArgPattern)),
                        std::regex::ECMAScript);
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (!std::regex_match(args[i], re)) {
            return "argument " + std::to_string(i + 1) + " does not match the pattern of action " +
                   action.name;
        }
    }
    return std::nullopt;
}

Registry::Registry() : data_(std::make_shared<const Data>()) {}

Registry::Registry(std::shared_ptr<const Data> data) : data_(std::move(data)) {}

Registry Registry::load(const fs::path& dir, const config::ActionsSection& defaults) {
    auto data = std::make_shared<Data>();
    std::error_code ec;
    data->dir = fs::absolute(dir, ec);
    if (ec) {
        throw config::ConfigError(dir.string() +
                                  ": cannot make the path absolute: " + ec.message());
    }
    const std::string where = data->dir.string();

    const util::UniqueFd dfd(::open(data->dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dfd.get() < 0) {
        throw config::ConfigError(where +
                                  ": cannot open the actions directory: " + std::strerror(errno));
    }
    struct stat dst {};
    if (::fstat(dfd.get(), &dst) < 0) {
        throw config::ConfigError(where +
                                  ": cannot stat the actions directory: " + std::strerror(errno));
    }
    // Whoever can write the directory can replace any action in it.
    if (std::string why = unsafe_reason(dst, "the actions directory"); !why.empty()) {
        data->problems.push_back({Problem::Kind::Refused, "", why + "; no action is loaded"});
        return Registry(std::move(data));
    }

    const std::vector<std::string> names = directory_names(dfd.get(), where);
    const std::set<std::string> present(names.begin(), names.end());
    auto note = [&](Problem::Kind kind, const std::string& file, std::string reason) {
        data->problems.push_back({kind, file, std::move(reason)});
    };

    for (const std::string& name : names) {
        if (name.front() == '.') {
            note(Problem::Kind::Ignored, name, "hidden file");
            continue;
        }
        if (name.ends_with(kMetaSuffix)) {
            const std::string owner = name.substr(0, name.size() - kMetaSuffix.size());
            if (!present.contains(owner)) {
                note(Problem::Kind::Ignored, name, "metadata without an action file " + owner);
            }
            continue;
        }
        if (!core::protocol::valid_action_name(name)) {
            note(Problem::Kind::Ignored, name,
                 "not a valid action name (1-64 letters, digits, '.', '_' or '-', starting "
                 "with a letter or digit)");
            continue;
        }
        struct stat st {};
        if (::fstatat(dfd.get(), name.c_str(), &st, 0) < 0) {
            note(Problem::Kind::Ignored, name,
                 errno == ENOENT ? std::string("broken symbolic link")
                                 : std::string("cannot stat: ") + std::strerror(errno));
            continue;
        }
        if (!S_ISREG(st.st_mode)) {
            note(Problem::Kind::Ignored, name, "not a regular file");
            continue;
        }
        if (::faccessat(dfd.get(), name.c_str(), X_OK, AT_EACCESS) != 0) {
            note(Problem::Kind::Ignored, name, "not executable");
            continue;
        }
        if (std::string why = unsafe_reason(st, "the file"); !why.empty()) {
            note(Problem::Kind::Refused, name, std::move(why));
            continue;
        }

        config::ActionMeta meta = config::default_action_meta(defaults);
        const std::string meta_name = name + std::string(kMetaSuffix);
        if (present.contains(meta_name)) {
            struct stat mst {};
            if (::fstatat(dfd.get(), meta_name.c_str(), &mst, 0) < 0 || !S_ISREG(mst.st_mode)) {
                note(Problem::Kind::BadMetadata, name, meta_name + " is not a regular file");
                continue;
            }
            // Metadata decides the argument rules, so it needs the same protection.
            if (std::string why = unsafe_reason(mst, meta_name); !why.empty()) {
                note(Problem::Kind::Refused, name, std::move(why));
                continue;
            }
            try {
                meta = config::load_action_meta(data->dir / meta_name, defaults);
            } catch (const config::ConfigError& e) {
                note(Problem::Kind::BadMetadata, name, e.what());
                continue;
            }
        }
        data->actions.push_back(Action{
            .name = name,
            .path = data->dir / name,
            .description = std::move(meta.description),
            .timeout = meta.timeout,
            .output_limit = meta.output_limit,
            .allow_args = meta.allow_args,
            .arg_pattern = std::move(meta.arg_pattern),
            .arg_choices = std::move(meta.arg_choices),
            .max_args = meta.max_args,
            .concurrent = meta.concurrent,
            .confirm = meta.confirm,
        });
    }
    return Registry(std::move(data));
}

const fs::path& Registry::dir() const {
    return data_->dir;
}

const Action* Registry::find(std::string_view name) const {
    const auto& v = data_->actions;
    const auto it = std::lower_bound(
        v.begin(), v.end(), name, [](const Action& a, std::string_view n) { return a.name < n; });
    return it != v.end() && it->name == name ? &*it : nullptr;
}

const std::vector<Action>& Registry::list() const {
    return data_->actions;
}

const std::vector<Problem>& Registry::problems() const {
    return data_->problems;
}

std::optional<core::auth::ActionRules> Registry::rules(std::string_view name) const {
    const Action* a = find(name);
    if (a == nullptr) {
        return std::nullopt;
    }
    return core::auth::ActionRules{.allow_args = a->allow_args,
                                   .arg_pattern = a->arg_pattern,
                                   .arg_choices = a->arg_choices,
                                   .max_args = a->max_args};
}

std::vector<core::protocol::CatalogueEntry> Registry::catalogue(
    const std::vector<std::string>& permitted) const {
    std::vector<core::protocol::CatalogueEntry> out;
    for (const Action& a : data_->actions) {
        if (std::find(permitted.begin(), permitted.end(), a.name) == permitted.end()) {
            continue;
        }
        core::protocol::CatalogueEntry e;
        e.name = a.name;
        e.description = a.description;
        e.confirm = a.confirm;
        if (!a.allow_args) {
            e.kind = core::protocol::ArgKind::None;
        } else if (!a.arg_choices.empty()) {
            e.kind = core::protocol::ArgKind::Choices;
            e.choices = a.arg_choices;
        } else if (a.arg_pattern) {
            e.kind = core::protocol::ArgKind::Pattern;
            e.pattern = *a.arg_pattern;
        } else {
            e.kind = core::protocol::ArgKind::Free;
        }
        e.max_args = static_cast<std::uint8_t>(a.max_args);
        out.push_back(std::move(e));
        if (out.size() == core::protocol::kMaxCatalogueEntries) {
            break;
        }
    }
    return out;
}

core::auth::ActionLookup Registry::lookup() const {
    return [snapshot = *this](const std::string& name) { return snapshot.rules(name); };
}

}  // namespace bzs::actions
