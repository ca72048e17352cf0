// SPDX-License-Identifier: GPL-3.0-or-later
#include "client/pairing_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>
#include <system_error>
#include <utility>

#include "core/crypto/crypto.h"
#include "util/clock.h"
#include "util/private_file.h"
#include "util/unique_fd.h"

namespace bzs::client {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int kFormatVersion = 1;
constexpr std::size_t kMinIdPrefix = 4;

[[noreturn]] void throw_errno(const std::string& what) {
    throw std::system_error(errno, std::generic_category(), what);
}

std::string mode_text(mode_t mode) {
    std::array<char, 8> buf{};
    std::snprintf(buf.data(), buf.size(), "%04o", static_cast<unsigned>(mode & 07777));
    return buf.data();
}

// Wipes a string that held secret text before it is freed.
void wipe(std::string& s) {
    if (!s.empty()) {
        core::crypto::cleanse(s.data(), s.size());
    }
    s.clear();
}

// Creates `dir` (and missing parents) with mode 0700; existing folders are left alone.
void make_private_dirs(const fs::path& dir) {
    if (dir.empty() || fs::is_directory(dir)) {
        return;
    }
    make_private_dirs(dir.parent_path());
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
        throw_errno("cannot create " + dir.string());
    }
}

// Holds an exclusive flock on the pairings folder: serialises read-modify-write
// cycles of concurrent bluezscript processes (a file lock would not survive the
// rename that replaces the file).
class DirLock {
  public:
    explicit DirLock(const fs::path& dir)
        : fd_(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) {
        if (fd_.get() < 0) {
            throw_errno("cannot open " + dir.string());
        }
        while (::flock(fd_.get(), LOCK_EX) != 0) {
            if (errno != EINTR) {
                throw_errno("cannot lock " + dir.string());
            }
        }
    }
    [[nodiscard]] int fd() const { return fd_.get(); }

  private:
    util::UniqueFd fd_;
};

// Writes `text` to `file` atomically, 0600 and durable (util::write_private_file).
void write_atomically(const fs::path& file, const std::string& text) {
    try {
        util::write_private_file(file, text);
    } catch (const util::FileError& e) {
        throw std::system_error(e.code(), std::generic_category(),
                                "cannot " + e.step() + " " + file.string());
    }
}

std::string file_name_for(const core::protocol::Pairing& p) {
    return core::crypto::hex_encode(p.pi_id) + "-" + core::crypto::hex_encode(p.device_id) +
           ".json";
}

std::string serialize(const ClientPairing& c) {
    std::string secret = core::crypto::base32_encode(c.pairing.secret.view(), false);
    json j{{"version", kFormatVersion},
           {"name", c.name},
           {"pi_id", core::crypto::hex_encode(c.pairing.pi_id)},
           {"pi_name", c.pairing.pi_name},
           {"device_id", core::crypto::hex_encode(c.pairing.device_id)},
           {"device_label", c.pairing.device_name},
           {"secret", secret},
           {"totp",
            {{"alg", core::crypto::hash_name(c.pairing.totp.hash)},
             {"digits", c.pairing.totp.digits},
             {"period", c.pairing.totp.step_seconds}}},
           {"counter", c.counter},
           {"imported", c.imported}};
    wipe(secret);
    j["last_accepted_step"] = c.last_accepted_step ? json(*c.last_accepted_step) : json(nullptr);
    std::string text;
    try {
        text = j.dump(2) + "\n";
    } catch (const json::exception&) {
        wipe(j["secret"].get_ref<std::string&>());
        throw PairingStoreError(
            "the pairing's Pi name or device label is not valid UTF-8 text; it cannot be stored");
    }
    wipe(j["secret"].get_ref<std::string&>());
    return text;
}

template <class T>
T field(const json& j, const char* key, const fs::path& file) {
    const auto it = j.find(key);
    if (it == j.end()) {
        throw PairingStoreError("pairing file " + file.string() + ": field '" + key +
                                "' is missing");
    }
    try {
        return it->get<T>();
    } catch (const json::exception&) {
        throw PairingStoreError("pairing file " + file.string() + ": field '" + key +
                                "' has the wrong type");
    }
}

template <std::size_t N>
std::array<std::uint8_t, N> hex_field(const json& j, const char* key, const fs::path& file) {
    const auto bytes = core::crypto::hex_decode(field<std::string>(j, key, file));
    if (!bytes || bytes->size() != N) {
        throw PairingStoreError("pairing file " + file.string() + ": field '" + key + "' is not " +
                                std::to_string(N * 2) + " hex digits");
    }
    std::array<std::uint8_t, N> out{};
    std::copy(bytes->begin(), bytes->end(), out.begin());
    return out;
}

ClientPairing parse(const std::string& text, const fs::path& file) {
    json j;
    try {
        j = json::parse(text);
    } catch (const json::exception&) {
        throw PairingStoreError("pairing file " + file.string() + " is not valid JSON");
    }
    if (!j.is_object()) {
        throw PairingStoreError("pairing file " + file.string() + " is not a JSON object");
    }
    if (field<int>(j, "version", file) != kFormatVersion) {
        throw PairingStoreError("pairing file " + file.string() +
                                " has an unknown format version (a newer bluezscript wrote it)");
    }
    ClientPairing c;
    c.file = file;
    c.name = field<std::string>(j, "name", file);
    c.pairing.pi_id = hex_field<16>(j, "pi_id", file);
    c.pairing.pi_name = field<std::string>(j, "pi_name", file);
    c.pairing.device_id = hex_field<core::protocol::kDeviceIdLen>(j, "device_id", file);
    c.pairing.device_name = field<std::string>(j, "device_label", file);
    {
        auto& secret_text = j["secret"];
        if (!secret_text.is_string()) {
            throw PairingStoreError("pairing file " + file.string() +
                                    ": field 'secret' is missing or not a string");
        }
        auto raw = core::crypto::base32_decode(secret_text.get_ref<const std::string&>());
        wipe(secret_text.get_ref<std::string&>());
        if (!raw || raw->size() < 20) {
            if (raw) {
                core::crypto::cleanse(raw->data(), raw->size());
            }
            throw PairingStoreError("pairing file " + file.string() +
                                    ": field 'secret' is not base32 of at least 20 bytes");
        }
        c.pairing.secret = core::crypto::SecretBytes(*raw);
        core::crypto::cleanse(raw->data(), raw->size());
    }
    const auto totp_it = j.find("totp");
    if (totp_it == j.end() || !totp_it->is_object()) {
        throw PairingStoreError("pairing file " + file.string() + ": field 'totp' is missing");
    }
    const auto hash = core::crypto::parse_hash(field<std::string>(*totp_it, "alg", file));
    if (!hash) {
        throw PairingStoreError("pairing file " + file.string() +
                                ": totp 'alg' is not SHA1, SHA256 or SHA512");
    }
    c.pairing.totp.hash = *hash;
    c.pairing.totp.digits = field<int>(*totp_it, "digits", file);
    c.pairing.totp.step_seconds = field<int>(*totp_it, "period", file);
    if (c.pairing.totp.digits < 6 || c.pairing.totp.digits > 8) {
        throw PairingStoreError("pairing file " + file.string() + ": totp 'digits' is not 6..8");
    }
    if (c.pairing.totp.step_seconds < 15 || c.pairing.totp.step_seconds > 300) {
        throw PairingStoreError("pairing file " + file.string() + ": totp 'period' is not 15..300");
    }
    c.counter = field<std::uint64_t>(j, "counter", file);
    c.imported = field<std::int64_t>(j, "imported", file);
    const auto step = j.find("last_accepted_step");
    if (step != j.end() && !step->is_null()) {
        c.last_accepted_step = field<std::int64_t>(j, "last_accepted_step", file);
    }
    return c;
}

struct Loaded {
    fs::path file;
    std::optional<ClientPairing> pairing;
    std::string problem;  ///< why it is unusable (mode, damage); empty when fine
    bool unsafe_mode = false;
};

// Reads one pairing file. A file readable by others is still parsed (so that it can
// be listed and removed) but marked unsafe; only find() refuses it.
Loaded load_file(const fs::path& file) {
    Loaded out;
    out.file = file;
    util::UniqueFd fd(::open(file.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (fd.get() < 0) {
        out.problem = std::string("cannot open: ") + std::strerror(errno);
        return out;
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
        out.problem = "not a regular file";
        return out;
    }
    if (st.st_uid != ::geteuid()) {
        out.unsafe_mode = true;
        out.problem = "owned by another user (uid " + std::to_string(st.st_uid) +
                      "); it must belong to you: chown $(id -u) " + file.string();
    } else if ((st.st_mode & 077) != 0) {
        out.unsafe_mode = true;
        out.problem = "readable or writable by others (mode " + mode_text(st.st_mode) +
                      "); it holds a secret: chmod 600 " + file.string();
    }
    std::string text;
    std::array<char, 4096> buf{};
    for (;;) {
        const ssize_t n = ::read(fd.get(), buf.data(), buf.size());
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            out.problem = std::string("cannot read: ") + std::strerror(errno);
            wipe(text);
            return out;
        }
        if (n == 0) {
            break;
        }
        text.append(buf.data(), static_cast<std::size_t>(n));
    }
    core::crypto::cleanse(buf.data(), buf.size());
    try {
        out.pairing = parse(text, file);
    } catch (const PairingStoreError& e) {
        if (out.problem.empty()) {
            out.problem = e.what();
        }
    }
    wipe(text);
    return out;
}

std::vector<fs::path> pairing_files(const fs::path& dir) {
    std::vector<fs::path> out;
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
        return out;
    }
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
        const auto name = entry.path().filename().string();
        if (!name.empty() && name[0] != '.' && entry.path().extension() == ".json") {
            out.push_back(entry.path());
        }
    }
    std::sort(out.begin(), out.end());
    return out;
}

ClientPairingSummary summarize(const ClientPairing& c) {
    ClientPairingSummary s;
    s.name = c.name;
    s.pi_name = c.pairing.pi_name;
    s.pi_id_hex = core::crypto::hex_encode(c.pairing.pi_id);
    s.device_id_hex = core::crypto::hex_encode(c.pairing.device_id);
    s.device_label = c.pairing.device_name;
    s.counter = c.counter;
    s.imported = c.imported;
    s.file = c.file;
    return s;
}

bool is_hex(std::string_view s) {
    return std::all_of(s.begin(), s.end(),
                       [](char ch) { return std::isxdigit(static_cast<unsigned char>(ch)) != 0; });
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& ch : out) {
        ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    }
    return out;
}

std::string names_of(const std::vector<const Loaded*>& v) {
    std::string out;
    for (const auto* l : v) {
        if (!out.empty()) {
            out += ", ";
        }
        out += "'" + l->pairing->name + "'";
    }
    return out;
}

// The selection rules of ClientStore::find, on already loaded files.
const Loaded& select(const std::vector<Loaded>& all, std::string_view selector) {
    std::vector<const Loaded*> usable;
    std::size_t damaged = 0;
    for (const auto& l : all) {
        if (l.pairing) {
            usable.push_back(&l);
        } else {
            ++damaged;
        }
    }
    const std::string damaged_note =
        damaged == 0 ? ""
                     : " (" + std::to_string(damaged) +
                           " pairing file(s) could not be read: see bluezscript client list)";
    if (selector.empty()) {
        if (usable.size() == 1) {
            return *usable.front();
        }
        if (usable.empty()) {
            throw PairingStoreError(
                "no pairings yet: import one with `bluezscript client import URI`" + damaged_note);
        }
        throw PairingStoreError("there are several pairings (" + names_of(usable) +
                                "): choose one with --pi NAME");
    }
    for (const auto* l : usable) {
        if (l->pairing->name == selector) {
            return *l;
        }
    }
    std::vector<const Loaded*> hits;
    for (const auto* l : usable) {
        if (l->pairing->pairing.pi_name == selector) {
            hits.push_back(l);
        }
    }
    if (hits.empty() && selector.size() >= kMinIdPrefix && is_hex(selector)) {
        const std::string prefix = lower(selector);
        for (const auto* l : usable) {
            if (core::crypto::hex_encode(l->pairing->pairing.pi_id).rfind(prefix, 0) == 0) {
                hits.push_back(l);
            }
        }
    }
    if (hits.size() == 1) {
        return *hits.front();
    }
    if (hits.size() > 1) {
        throw PairingStoreError("'" + std::string(selector) + "' matches several pairings (" +
                                names_of(hits) + "): use the pairing's name");
    }
    throw PairingStoreError("no pairing named '" + std::string(selector) +
                            "' or for a Pi of that name or id (see: bluezscript client list)" +
                            damaged_note);
}

std::vector<Loaded> load_all(const fs::path& dir) {
    std::vector<Loaded> out;
    for (const auto& f : pairing_files(dir)) {
        out.push_back(load_file(f));
    }
    return out;
}

// Reads the pairing back from its file for a read-modify-write (under the lock).
ClientPairing reload(const ClientPairing& p) {
    auto l = load_file(p.file);
    if (!l.pairing) {
        if (!fs::exists(p.file)) {
            throw PairingStoreError("pairing '" + p.name + "' was removed (" + p.file.string() +
                                    ")");
        }
        throw PairingStoreError("pairing file " + p.file.string() + ": " + l.problem);
    }
    if (l.unsafe_mode) {
        throw PairingStoreError("pairing file " + p.file.string() + " is " + l.problem);
    }
    return std::move(*l.pairing);
}

}  // namespace

std::string check_pairing_name(std::string_view name) {
    if (name.empty() || name.size() > 64) {
        return "a pairing name must be 1..64 bytes";
    }
    for (const char ch : name) {
        const auto u = static_cast<unsigned char>(ch);
        if (u < 0x20 || u == 0x7F) {
            return "a pairing name must not contain control characters";
        }
        if (ch == '/') {
            return "a pairing name must not contain '/'";
        }
    }
    return {};
}

PairingStore::PairingStore(std::filesystem::path root) : root_(std::move(root)) {}

std::filesystem::path PairingStore::default_root() {
    const char* xdg = std::getenv("XDG_CONFIG_HOME");
    // The XDG spec says a relative value is invalid and must be ignored.
    if (xdg != nullptr && xdg[0] == '/') {
        return fs::path(xdg) / "bluezscript";
    }
    const char* home = std::getenv("HOME");
    if (home == nullptr || home[0] == '\0') {
        throw PairingStoreError(
            "cannot find the configuration folder: set HOME or XDG_CONFIG_HOME");
    }
    return fs::path(home) / ".config" / "bluezscript";
}

PairingStore::Imported PairingStore::import(const core::protocol::Pairing& p,
                                            const std::string& name, bool force) {
    if (!name.empty()) {
        if (auto err = check_pairing_name(name); !err.empty()) {
            throw PairingStoreError("--name '" + name + "': " + err);
        }
    }
    make_private_dirs(pairings_dir());
    DirLock lock(pairings_dir());
    const auto all = load_all(pairings_dir());
    const fs::path file = pairings_dir() / file_name_for(p);

    Imported out;
    ClientPairing& c = out.pairing;
    c.pairing = p;
    c.file = file;
    c.imported = util::wall_clock_now();

    const Loaded* same = nullptr;
    for (const auto& l : all) {
        if (l.pairing && l.pairing->pairing.pi_id == p.pi_id &&
            l.pairing->pairing.device_id == p.device_id) {
            same = &l;
        }
    }
    if (same == nullptr && fs::exists(file)) {
        // Damaged file of the same pairing: only --force may replace it.
        if (!force) {
            throw PairingStoreError("a damaged pairing file for this Pi and device exists (" +
                                    file.string() + "); use --force to replace it");
        }
    }
    if (same != nullptr) {
        if (!force) {
            throw PairingStoreError("this pairing (Pi '" + p.pi_name + "', device " +
                                    core::crypto::hex_encode(p.device_id).substr(0, 8) +
                                    ") is already imported as '" + same->pairing->name +
                                    "'; use --force to replace it");
        }
        out.replaced = true;
        // The Pi only accepts counters above the last one it saw: never go back.
        c.counter = same->pairing->counter;
        c.last_accepted_step = same->pairing->last_accepted_step;
        c.name = same->pairing->name;
    }

    auto taken = [&](const std::string& n) {
        return std::any_of(all.begin(), all.end(), [&](const Loaded& l) {
            return l.pairing && l.pairing->name == n && &l != same;
        });
    };
    if (!name.empty()) {
        if (taken(name)) {
            throw PairingStoreError("another pairing is already named '" + name +
                                    "' (see: bluezscript client list)");
        }
        c.name = name;
    } else if (c.name.empty()) {
        std::string base = p.pi_name;
        if (!check_pairing_name(base).empty()) {
            base = "pi-" + core::crypto::hex_encode(p.pi_id).substr(0, 8);
        }
        c.name = base;
        for (int i = 2; taken(c.name); ++i) {
            c.name = base + "-" + std::to_string(i);
        }
    }
    write_atomically(file, serialize(c));
    return out;
}

std::vector<ClientPairingSummary> PairingStore::list() const {
    std::vector<ClientPairingSummary> out;
    for (auto& l : load_all(pairings_dir())) {
        ClientPairingSummary s;
        if (l.pairing) {
            s = summarize(*l.pairing);
        } else {
            // A damaged file has no name of its own: show its file name instead.
            s.name = l.file.stem().string();
            s.file = l.file;
        }
        s.problem = l.problem;
        out.push_back(std::move(s));
    }
    std::sort(out.begin(), out.end(),
              [](const ClientPairingSummary& a, const ClientPairingSummary& b) {
                  return a.name < b.name;
              });
    return out;
}

ClientPairing PairingStore::find(std::string_view selector) const {
    auto all = load_all(pairings_dir());
    const Loaded& l = select(all, selector);
    if (l.unsafe_mode) {
        throw PairingStoreError("refusing to use pairing file " + l.pairing->file.string() +
                                ": it is " + l.problem);
    }
    return *l.pairing;
}

ClientPairingSummary PairingStore::remove(std::string_view selector) {
    if (!fs::is_directory(pairings_dir())) {
        throw PairingStoreError("no pairings yet: nothing to remove");
    }
    DirLock lock(pairings_dir());
    auto all = load_all(pairings_dir());
    if (selector.empty()) {
        throw PairingStoreError("name the pairing to remove (see: bluezscript client list)");
    }
    const Loaded& l = select(all, selector);
    ClientPairingSummary s = summarize(*l.pairing);
    if (::unlink(l.pairing->file.c_str()) != 0) {
        throw_errno("cannot remove " + l.pairing->file.string());
    }
    util::fsync_dir(pairings_dir());
    return s;
}

std::uint64_t PairingStore::reserve_counter(const ClientPairing& p) {
    DirLock lock(pairings_dir());
    ClientPairing c = reload(p);
    if (c.counter == UINT64_MAX) {
        throw PairingStoreError("pairing '" + c.name + "' has used every counter: pair again");
    }
    ++c.counter;
    write_atomically(c.file, serialize(c));
    return c.counter;
}

void PairingStore::record_accepted_step(const ClientPairing& p, std::int64_t step) {
    DirLock lock(pairings_dir());
    ClientPairing c = reload(p);
    if (c.last_accepted_step && *c.last_accepted_step >= step) {
        return;
    }
    c.last_accepted_step = step;
    write_atomically(c.file, serialize(c));
}

}  // namespace bzs::client
