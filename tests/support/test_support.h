// SPDX-License-Identifier: GPL-3.0-or-later
// Small helpers shared by the test binaries: temporary folders, reading files and
// their modes, splitting lines, running a command and capturing its output.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace bzs::test {

/// A fresh private (0700) folder under $TMPDIR, removed on destruction.
class TempDir {
  public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    [[nodiscard]] const std::filesystem::path& path() const { return path_; }
    std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

  private:
    std::filesystem::path path_;
};

std::string read_file(const std::filesystem::path& p);
void write_file(const std::filesystem::path& p, const std::string& content, unsigned mode = 0600);

/// The permission bits (07777) of `p`, or 0xFFFFFFFF if it cannot be stat'ed.
unsigned mode_of(const std::filesystem::path& p);

/// `s` split at its newlines (a final newline does not add an empty line).
std::vector<std::string> lines_of(const std::string& s);

struct CommandResult {
    int exit_code = -1;  ///< exit status, or 128+signal
    std::string out;
    std::string err;
};
/// Runs argv (no shell) with optional extra environment entries ("K=V"),
/// capturing stdout and stderr.
CommandResult run_command(const std::vector<std::string>& argv,
                          const std::vector<std::string>& env = {},
                          const std::string& stdin_data = {});

/// True if an executable with this name is on PATH.
bool have_program(const std::string& name);

}  // namespace bzs::test
