// SPDX-License-Identifier: GPL-3.0-or-later
#include "store/keyfile.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <limits>
#include <utility>
#include <vector>

#include "util/private_file.h"

namespace bzs::store {

namespace {

constexpr std::size_t kMaxKeyFileSize = std::size_t{64} * 1024;

std::string errno_text(int err) {
    return std::strerror(err);
}

std::string mode_text(mode_t mode) {
    std::array<char, 8> buf{};
    std::snprintf(buf.data(), buf.size(), "%04o", static_cast<unsigned>(mode & 07777));
    return buf.data();
}

/// The privacy rule shared by require_private and the key file loader (which
/// checks the descriptor it reads, so the file cannot be swapped in between).
void check_private(const struct stat& st, const std::filesystem::path& path,
                   std::string_view what) {
    const bool dir = S_ISDIR(st.st_mode);
    const std::string name =
        (what.empty() ? std::string(dir ? "folder" : "file") : std::string(what)) + " " +
        path.string();
    if (st.st_uid != ::geteuid()) {
        throw KeyFileError(name + " is owned by uid " + std::to_string(st.st_uid) +
                           ", not by the current user (uid " + std::to_string(::geteuid()) +
                           "); run chown " + std::to_string(::geteuid()) + " " + path.string());
    }
    if ((st.st_mode & 077) != 0) {
        const char* how = (st.st_mode & 044) != 0   ? "readable"
                          : (st.st_mode & 022) != 0 ? "writable"
                                                    : "accessible";
        throw KeyFileError(name + " is " + how + " by group/others (mode " + mode_text(st.st_mode) +
                           "); run chmod " + (dir ? "700 " : "600 ") + path.string());
    }
}

/// One parsed line: id and the base64url key text (cleansed on destruction).
struct KeyLine {
    std::uint32_t id = 0;
    std::string key_b64;
    KeyLine() = default;
    KeyLine(std::uint32_t i, std::string k) : id(i), key_b64(std::move(k)) {}
    KeyLine(const KeyLine&) = default;
    KeyLine& operator=(const KeyLine&) = default;
    KeyLine(KeyLine&&) = default;
    KeyLine& operator=(KeyLine&&) = default;
    ~KeyLine() { core::crypto::cleanse(key_b64.data(), key_b64.size()); }
};

/// A string holding key material, wiped when it goes out of scope.
struct WipedString {
    std::string s;
    WipedString() = default;
    WipedString(const WipedString&) = delete;
    WipedString& operator=(const WipedString&) = delete;
    ~WipedString() { core::crypto::cleanse(s.data(), s.size()); }
};

void read_private_file(const std::filesystem::path& path, WipedString& out) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        const int err = errno;
        throw KeyFileError("cannot open master key file " + path.string() + ": " + errno_text(err));
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        const int err = errno;
        ::close(fd);
        throw KeyFileError("cannot stat master key file " + path.string() + ": " + errno_text(err));
    }
    try {
        if (!S_ISREG(st.st_mode)) {
            throw KeyFileError("master key file " + path.string() + " is not a regular file");
        }
        check_private(st, path, "master key file");
        if (static_cast<std::size_t>(st.st_size) > kMaxKeyFileSize) {
            throw KeyFileError("master key file " + path.string() + " is too large (" +
                               std::to_string(st.st_size) + " bytes)");
        }
        std::array<char, 4096> buf{};
        for (;;) {
            const ssize_t n = ::read(fd, buf.data(), buf.size());
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                const int err = errno;
                throw KeyFileError("cannot read master key file " + path.string() + ": " +
                                   errno_text(err));
            }
            if (n == 0) {
                break;
            }
            out.s.append(buf.data(), static_cast<std::size_t>(n));
            if (out.s.size() > kMaxKeyFileSize) {
                throw KeyFileError("master key file " + path.string() + " is too large");
            }
        }
        core::crypto::cleanse(buf.data(), buf.size());
    } catch (...) {
        ::close(fd);
        throw;
    }
    ::close(fd);
}

std::vector<KeyLine> parse_keyfile(const std::filesystem::path& path, std::string_view text) {
    std::vector<KeyLine> lines;
    std::size_t lineno = 0;
    std::size_t pos = 0;
    while (pos < text.size()) {
        std::size_t end = text.find('\n', pos);
        if (end == std::string_view::npos) {
            end = text.size();
        }
        std::string_view line = text.substr(pos, end - pos);
        pos = end + 1;
        ++lineno;
        if (!line.empty() && line.back() == '\r') {
            line.remove_suffix(1);
        }
        const auto first = line.find_first_not_of(" \t");
        if (first == std::string_view::npos || line[first] == '#') {
            continue;
        }
        line.remove_prefix(first);
        const std::string where =
            "master key file " + path.string() + ", line " + std::to_string(lineno) + ": ";
        const auto sp = line.find_first_of(" \t");
        if (sp == std::string_view::npos) {
            throw KeyFileError(where + "expected \"<id> <base64url key>\"");
        }
        const std::string_view id_text = line.substr(0, sp);
        std::string_view key = line.substr(sp);
        key.remove_prefix(std::min(key.size(), key.find_first_not_of(" \t")));
        while (!key.empty() && (key.back() == ' ' || key.back() == '\t')) {
            key.remove_suffix(1);
        }
        std::uint64_t id = 0;
        bool id_ok = !id_text.empty() && id_text.size() <= 10;
        for (char c : id_text) {
            if (c < '0' || c > '9') {
                id_ok = false;
                break;
            }
            id = id * 10 + static_cast<std::uint64_t>(c - '0');
        }
        if (!id_ok || id == 0 || id > std::numeric_limits<std::uint32_t>::max()) {
            // The id is not secret, but it may be a mangled key: do not echo it.
            throw KeyFileError(where + "the key id must be a number from 1 to 4294967295");
        }
        if (key.empty() || key.find_first_of(" \t") != std::string_view::npos) {
            throw KeyFileError(where + "expected \"<id> <base64url key>\"");
        }
        for (const auto& l : lines) {
            if (l.id == id) {
                throw KeyFileError(where + "key id " + std::to_string(id) + " appears twice");
            }
        }
        if (!core::crypto::Fernet::from_base64(key)) {
            throw KeyFileError(where + "key " + std::to_string(id) +
                               " is not a valid Fernet key (32 bytes, base64url)");
        }
        lines.emplace_back(static_cast<std::uint32_t>(id), std::string(key));
    }
    if (lines.empty()) {
        throw KeyFileError("master key file " + path.string() + " contains no keys");
    }
    return lines;
}

KeyRing ring_from(const std::vector<KeyLine>& lines) {
    KeyRing ring;
    for (const auto& l : lines) {
        auto f = core::crypto::Fernet::from_base64(l.key_b64);
        ring.add(l.id, std::move(*f));
    }
    return ring;
}

void render(const std::vector<KeyLine>& lines, WipedString& out) {
    out.s =
        "# BlueZscript master keys: \"<id> <base64url Fernet key>\", the highest id is current.\n"
        "# Keep this file private (chmod 600). Losing it makes every pairing unusable.\n";
    for (const auto& l : lines) {
        out.s += std::to_string(l.id);
        out.s += ' ';
        out.s += l.key_b64;
        out.s += '\n';
    }
}

/// Writes `content` to a fresh 0600 file at `path` (util::write_private_file):
/// replacing it, or only if absent. Returns false when !replace and `path` exists.
bool write_atomic(const std::filesystem::path& path, const std::string& content, bool replace) {
    try {
        return util::write_private_file(
            path, content, replace ? util::WriteMode::Replace : util::WriteMode::IfAbsent);
    } catch (const util::FileError& e) {
        const char* verb = e.step() == "rename" ? "replace"
                           : e.step() == "link" ? "create"
                                                : "write";
        throw KeyFileError(std::string("cannot ") + verb + " master key file " + path.string() +
                           " (" + e.step() + "): " + errno_text(e.code()));
    }
}

/// Holds an exclusive flock on "<path>.lock" for the lifetime of the object.
class RotationLock {
  public:
    explicit RotationLock(const std::filesystem::path& path) {
        const std::string lock = path.string() + ".lock";
        fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd_ < 0) {
            const int err = errno;
            throw KeyFileError("cannot open lock file " + lock + ": " + errno_text(err));
        }
        while (::flock(fd_, LOCK_EX) != 0) {
            if (errno != EINTR) {
                const int err = errno;
                ::close(fd_);
                throw KeyFileError("cannot lock " + lock + ": " + errno_text(err));
            }
        }
    }
    ~RotationLock() { ::close(fd_); }
    RotationLock(const RotationLock&) = delete;
    RotationLock& operator=(const RotationLock&) = delete;

  private:
    int fd_ = -1;
};

std::vector<KeyLine> load_lines(const std::filesystem::path& path) {
    WipedString text;
    read_private_file(path, text);
    return parse_keyfile(path, text.s);
}

}  // namespace

void KeyRing::add(std::uint32_t id, core::crypto::Fernet key) {
    if (id == 0) {
        throw KeyFileError("master key id 0 is not allowed (ids start at 1)");
    }
    if (!keys_.emplace(id, std::move(key)).second) {
        throw KeyFileError("master key id " + std::to_string(id) + " is already in the key ring");
    }
}

std::uint32_t KeyRing::current_id() const {
    if (keys_.empty()) {
        throw KeyFileError("no master key is loaded");
    }
    return keys_.rbegin()->first;
}

const core::crypto::Fernet& KeyRing::current() const {
    if (keys_.empty()) {
        throw KeyFileError("no master key is loaded");
    }
    return keys_.rbegin()->second;
}

const core::crypto::Fernet* KeyRing::find(std::uint32_t id) const {
    auto it = keys_.find(id);
    return it == keys_.end() ? nullptr : &it->second;
}

void require_private(const std::filesystem::path& path, std::string_view what) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        const int err = errno;
        throw KeyFileError("cannot check permissions of " +
                           (what.empty() ? std::string() : std::string(what) + " ") +
                           path.string() + ": " + errno_text(err));
    }
    check_private(st, path, what);
}

KeyRing load_keyfile(const std::filesystem::path& path) {
    return ring_from(load_lines(path));
}

KeyRing load_or_create_keyfile(const std::filesystem::path& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        if (errno != ENOENT) {
            const int err = errno;
            throw KeyFileError("cannot access master key file " + path.string() + ": " +
                               errno_text(err));
        }
        std::vector<KeyLine> lines;
        lines.emplace_back(1, core::crypto::Fernet::generate_key_base64());
        WipedString content;
        render(lines, content);
        // When another process won the race, write_atomic keeps its file and we
        // load that one below.
        write_atomic(path, content.s, /*replace=*/false);
    }
    return load_keyfile(path);
}

std::uint32_t rotate_keyfile(const std::filesystem::path& path,
                             const std::function<void(const KeyRing&)>& reencrypt) {
    RotationLock lock(path);
    std::vector<KeyLine> lines = load_lines(path);
    std::uint32_t max_id = 0;
    for (const auto& l : lines) {
        max_id = std::max(max_id, l.id);
    }
    if (max_id == std::numeric_limits<std::uint32_t>::max()) {
        throw KeyFileError("master key file " + path.string() + ": no key id left to rotate to");
    }
    const std::uint32_t new_id = max_id + 1;
    lines.emplace_back(new_id, core::crypto::Fernet::generate_key_base64());
    {
        WipedString both;
        render(lines, both);
        write_atomic(path, both.s, /*replace=*/true);
    }
    // Both keys are on disk now, so a crash from here on loses nothing: tokens
    // under either key decrypt.
    reencrypt(ring_from(lines));
    std::vector<KeyLine> only_new;
    only_new.push_back(lines.back());
    WipedString fresh;
    render(only_new, fresh);
    write_atomic(path, fresh.s, /*replace=*/true);
    return new_id;
}

}  // namespace bzs::store
