// SPDX-License-Identifier: GPL-3.0-or-later
// A temporary install for the built binaries: a config file, the actions folder and
// the state folder it names, all in one private TempDir. Header-only; it needs no
// module of ours.
#pragma once

#include <filesystem>
#include <string>

#include "test_support.h"

namespace bzs::test {

/// Mix into a fixture (`class T : public ::testing::Test, protected StateDir`); its
/// SetUp makes actions_dir (0700) and writes the config. The state folder is left for
/// the binary under test to create.
struct StateDir {
    TempDir dir;
    std::filesystem::path config = dir / "bluezscript.toml";
    std::filesystem::path actions_dir = dir / "actions";
    std::filesystem::path state_dir = dir / "state";
    std::filesystem::path db_path = state_dir / "bluezscript.db";
    std::filesystem::path key_path = state_dir / "master.key";

    /// An action script: `body` after a /bin/sh shebang.
    void script(const std::string& name, const std::string& body, unsigned mode = 0700) const {
        write_file(actions_dir / name, "#!/bin/sh\n" + body, mode);
    }

    /// The config: state and actions next to it, BLE and web off. `daemon_extra` ends
    /// the [daemon] table; `extra` ends the file (inside [ble] unless it opens a table).
    void write_config(const std::string& extra, const std::string& daemon_extra = "") const {
        write_file(config,
                   "[daemon]\n"
                   "state_dir = \"state\"\n"
                   "actions_dir = \"actions\"\n"
                   "pi_name = \"test-pi\"\n" +
                       daemon_extra +
                       "[web]\n"
                       "enabled = false\n"
                       "[ble]\n"
                       "enabled = false\n" +
                       extra,
                   0600);
    }
};

}  // namespace bzs::test
