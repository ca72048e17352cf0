// SPDX-License-Identifier: GPL-3.0-or-later
// The client's subcommands of `bluezscript`, for a computer that sends commands
// to a Pi over BLE: `client pair|list|remove` manage its pairings
// (client/pairing_store.h), `client actions` reads a Pi's catalogue and `trigger`
// runs one action on a Pi (client/trigger.h). docs/client.md describes them and
// their exit codes.
#pragma once

#include <string>
#include <vector>

namespace bzs::cli {

struct ClientPairOptions {
    std::string link;     ///< pairing link or app URL; empty or "-" = read one line from stdin
    std::string name;     ///< local pairing name; empty = the Pi's name
    std::string adapter;  ///< "hciN"; empty = the first powered adapter
    int timeout = 20;     ///< seconds to find the Pi
    bool quiet = false;   ///< no progress lines on stderr
};

struct ClientActionsOptions {
    std::string pi;       ///< pairing selector; empty = the only pairing
    std::string adapter;  ///< "hciN"; empty = the first powered adapter
    int timeout = 20;     ///< seconds to find the Pi
    bool json = false;
    bool quiet = false;
};

struct TriggerCliOptions {
    std::string action;
    std::vector<std::string> args;
    std::string pi;       ///< pairing selector; empty = the only pairing
    std::string adapter;  ///< "hciN"; empty = the first powered adapter
    int timeout = 20;     ///< seconds to find the Pi
    int wait = 60;        ///< seconds to wait for the answer once the command is sent
    bool quiet = false;   ///< no progress lines on stderr
};

/// Each returns the process exit status; errors are printed to stderr.
int client_pair(const ClientPairOptions& o);
int client_actions(const ClientActionsOptions& o);
int client_list(bool json);
int client_remove(const std::string& name);
int trigger(const TriggerCliOptions& o);

}  // namespace bzs::cli
