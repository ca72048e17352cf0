// SPDX-License-Identifier: GPL-3.0-or-later
// The one way the tree writes a file that holds something private (master key, TLS
// key, the client's pairings): mode 0600 whatever the umask, never half-written, and
// durable once the call returns.
#pragma once

#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>

namespace bzs::util {

/// A failed write: which step failed ("create", "chmod", "write", "fsync", "close",
/// "rename", "link") and errno. what() is "<step> <file>: <strerror>".
class FileError : public std::runtime_error {
  public:
    FileError(std::string step, const std::filesystem::path& file, int err);
    [[nodiscard]] const std::string& step() const { return step_; }
    [[nodiscard]] int code() const { return code_; }

  private:
    std::string step_;
    int code_;
};

/// Replace: rename over an existing file. IfAbsent: create only if `path` does not
/// exist yet (link(), which never overwrites: a racing writer's file is kept).
enum class WriteMode { Replace, IfAbsent };

/// Writes `content` to `path`: a fresh hidden temporary file beside it (mkostemp),
/// fchmod 0600, the whole content, fsync, then rename (or link) into place and fsync
/// of the folder so the new name is durable too. The temporary file never remains,
/// and on failure `path` is unchanged. Returns false only for IfAbsent when `path`
/// already existed. Throws FileError.
bool write_private_file(const std::filesystem::path& path, std::string_view content,
                        WriteMode mode = WriteMode::Replace);

/// fsync of a folder, so that a rename, link or unlink in it survives a power cut.
/// Best effort: a folder that cannot be opened is skipped (the data itself is synced).
void fsync_dir(const std::filesystem::path& dir);

}  // namespace bzs::util
