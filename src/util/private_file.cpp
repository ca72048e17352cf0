// SPDX-License-Identifier: GPL-3.0-or-later
#include "util/private_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/unique_fd.h"

namespace bzs::util {

namespace fs = std::filesystem;

FileError::FileError(std::string step, const fs::path& file, int err)
    : std::runtime_error(step + " " + file.string() + ": " + std::strerror(err)),
      step_(std::move(step)),
      code_(err) {}

namespace {

fs::path folder_of(const fs::path& path) {
    auto dir = path.parent_path();
    return dir.empty() ? fs::path(".") : dir;
}

// Removes the temporary file unless disarmed: every failure path leaves nothing behind.
class TempFile {
  public:
    explicit TempFile(std::string name) : name_(std::move(name)) {}
    ~TempFile() {
        if (!name_.empty()) {
            ::unlink(name_.c_str());
        }
    }
    TempFile(const TempFile&) = delete;
    TempFile& operator=(const TempFile&) = delete;
    [[nodiscard]] const std::string& name() const { return name_; }

  private:
    std::string name_;
};

}  // namespace

bool write_private_file(const fs::path& path, std::string_view content, WriteMode mode) {
    const fs::path dir = folder_of(path);
    std::string tmpl = (dir / ("." + path.filename().string() + ".tmp.XXXXXX")).string();
    UniqueFd fd(::mkostemp(tmpl.data(), O_CLOEXEC));
    if (fd.get() < 0) {
        throw FileError("create", path, errno);
    }
    const TempFile tmp(tmpl);
    // mkostemp already uses 0600; fchmod makes that independent of any umask.
    if (::fchmod(fd.get(), 0600) != 0) {
        throw FileError("chmod", path, errno);
    }
    std::size_t done = 0;
    while (done < content.size()) {
        const ssize_t n = ::write(fd.get(), content.data() + done, content.size() - done);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            throw FileError("write", path, errno);
        }
        done += static_cast<std::size_t>(n);
    }
    if (::fsync(fd.get()) != 0) {
        throw FileError("fsync", path, errno);
    }
    if (::close(fd.release()) != 0) {
        throw FileError("close", path, errno);
    }
    bool written = true;
    if (mode == WriteMode::Replace) {
        if (::rename(tmp.name().c_str(), path.c_str()) != 0) {
            throw FileError("rename", path, errno);
        }
    } else if (::link(tmp.name().c_str(), path.c_str()) != 0) {
        if (errno != EEXIST) {
            throw FileError("link", path, errno);
        }
        written = false;
    }
    fsync_dir(dir);
    return written;
}

void fsync_dir(const fs::path& dir) {
    const UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd.get() >= 0) {
        ::fsync(fd.get());
    }
}

}  // namespace bzs::util
