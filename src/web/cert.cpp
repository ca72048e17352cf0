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
#include "util/private_file.h"
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
    try {
        util::write_private_file(p, text);
    } catch (const util::FileError& e) {
        throw WebError(p.string() + ": cannot " + e.step() + ": " + std::strerror(e.code()));
    }
}

}  // namespace

std::string ensure_certificate(const config::Config& cfg, bool* created) {
    if (created != nullptr) {
        *created = false;
    }
    const fs::path cert = cfg.web_cert_path();
    const fs::path key = cfg.web_key_path();
    std::error_code ec;
    const bool own = !cfg.web.cert_file.empty();
    if (!own && !fs::exists(cert, ec) && !fs::exists(key, ec)) {
        const auto made = core::crypto::make_self_signed(cfg.daemon.pi_name);
        write_private(key, made.key_pem);
        write_private(cert, made.cert_pem);
        if (created != nullptr) {
            *created = true;
        }
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
