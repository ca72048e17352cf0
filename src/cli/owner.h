// SPDX-License-Identifier: GPL-3.0-or-later
// The owner's subcommands of `bluezscript`: pairing, devices, actions, audit log
// and master key rotation. They work on the same database as the daemon (SQLite
// in WAL mode allows both at once).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace bzs::cli {

/// Options every owner command shares.
struct Common {
    std::string config_flag;  ///< --config; empty = $BLUEZSCRIPT_CONFIG or the default
    bool json = false;        ///< --json: machine-readable output
};

/// `pair add` and `pair code` (which uses only name, no_qr and ascii_qr).
struct PairAddOptions {
    std::string name;  ///< the new device's name; for `pair code`, a name or id
    std::vector<std::string> actions;
    bool no_qr = false;
    bool ascii_qr = false;  ///< no ANSI colours (for dumb terminals and files)
};

struct LogOptions {
    std::optional<std::string> device;
    std::optional<bool> accepted;
    std::optional<std::string> status;
    std::optional<std::string>
        since;  ///< "YYYY-MM-DD", "YYYY-MM-DDTHH:MM:SS" (UTC) or "Ns/Nm/Nh/Nd" ago
    std::int64_t limit = 50;
    std::int64_t page = 1;
};

/// Each returns the process exit status; errors are printed to stderr.
int pair_add(const Common& c, const PairAddOptions& o);
/// A new one-time code for a pending device; prints like pair_add.
int pair_code(const Common& c, const PairAddOptions& o);
int pair_list(const Common& c, bool include_revoked);
int pair_revoke(const Common& c, const std::string& device);
int pair_rename(const Common& c, const std::string& device, const std::string& new_name);
int pair_allow(const Common& c, const std::string& device, const std::vector<std::string>& actions,
               bool allow);
int actions_list(const Common& c);
int actions_run(const Common& c, const std::string& name, const std::vector<std::string>& args);
int show_log(const Common& c, const LogOptions& o);
int keys_rotate(const Common& c);

}  // namespace bzs::cli
