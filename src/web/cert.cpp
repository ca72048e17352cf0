// SPDX-License-Identifier: GPL-3.0-or-later
// The web UI's certificate files: created once in the state folder (0600, written
// to a temporary file and renamed so a crash never leaves half a key).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/crypto/tls_cert.h"
#include "web/server.h"

namespace bzs::web {

namespace {

namespace fs = std::filesystem;

std::string read_text(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) {
        throw WebError(p.string() + ": cannot read: " + std::strerror(errno));
    }
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

void write_private(const fs::path& p, const std::string& text) {
    const fs::path tmp = p.string() + ".tmp";
    ::unlink(tmp.c_str());
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        throw WebError(tmp.string() + ": cannot create: " + std::strerror(errno));
    }
    std::size_t done = 0;
    while (done < text.size()) {
        const auto n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            const int e = errno;
            ::close(fd);
            ::unlink(tmp.c_str());
            throw WebError(tmp.string() + ": cannot write: " + std::strerror(e));
        }
        done += static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0 || ::close(fd) != 0) {
        const int e = errno;
        ::unlink(tmp.c_str());
        throw WebError(tmp.string() + ": cannot write: " + std::strerror(e));
    }
    if (::rename(tmp.c_str(), p.c_str()) != 0) {
        const int e = errno;
        ::unlink(tmp.c_str());
        throw WebError(p.string() + ": cannot rename into place: " + std::strerror(e));
    }
}

}  // namespace

std::string ensure_certificate(const config::Config& cfg, bool* created) {
    if (created != nullptr) *created = false;
    const fs::path cert = cfg.web_cert_path();
    const fs::path key = cfg.web_key_path();
    std::error_code ec;
    const bool own = !cfg.web.cert_file.empty();
    if (!own && !fs::exists(cert, ec) && !fs::exists(key, ec)) {
        const auto made = core::crypto::make_self_signed(cfg.daemon.pi_name);
        write_private(key, made.key_pem);
        write_private(cert, made.cert_pem);
        if (created != nullptr) *created = true;
    } else if (!fs::exists(key, ec)) {
        throw WebError(key.string() + ": the TLS key file is missing (certificate " +
                       cert.string() + ")");
    }
    try {
        return core::crypto::fingerprint_sha256(read_text(cert));
    } catch (const core::crypto::TlsError& e) {
        throw WebError(cert.string() + ": " + e.what());
    }
}

}  // namespace bzs::web
