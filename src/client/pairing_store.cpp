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

constexpr int kFormatVersion = 2;
constexpr int kProtocol1Format = 1;
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

std::string file_name_for(const core::protocol::PiId& pi, const core::protocol::DeviceId& dev) {
    return core::crypto::hex_encode(pi) + "-" + core::crypto::hex_encode(dev) + ".json";
}

std::string serialize(const ClientPairing& c) {
    const Credential& k = c.credential;
    std::string secret = core::crypto::base32_encode(k.secret.view(), false);
    json j{{"version", kFormatVersion},
           {"name", c.name},
           {"pi_id", core::crypto::hex_encode(k.pi_id)},
           {"pi_name", k.pi_name},
           {"pi_public", core::crypto::hex_encode(k.pi_public)},
           {"device_id", core::crypto::hex_encode(k.device_id)},
           {"device_label", k.label},
           {"secret", secret},
           {"totp",
            {{"alg", core::crypto::hash_name(k.totp.hash)},
             {"digits", k.totp.digits},
             {"period", k.totp.step_seconds}}},
           {"counter", c.counter},
           {"paired", c.paired}};
    wipe(secret);
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

// A file of format 1: a pairing of protocol 1, which no Pi speaks any more.
class Protocol1File : public PairingStoreError {
  public:
    Protocol1File(const fs::path& file, std::string name)
        : PairingStoreError("pairing file " + file.string() +
                            " was made with protocol 1; pair again with a new link "
                            "(`bluezscript client pair LINK`)"),
          name_(std::move(name)) {}
    [[nodiscard]] const std::string& name() const { return name_; }

  private:
    std::string name_;
};

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
    const int version = field<int>(j, "version", file);
    if (version == kProtocol1Format) {
        const auto n = j.find("name");
        if (j.contains("secret")) {
            wipe(j["secret"].get_ref<std::string&>());
        }
        throw Protocol1File(file, n != j.end() && n->is_string() ? n->get<std::string>() : "");
    }
    if (version != kFormatVersion) {
        throw PairingStoreError("pairing file " + file.string() +
                                " has an unknown format version (a newer bluezscript wrote it)");
    }
    ClientPairing c;
    Credential& k = c.credential;
    c.file = file;
    c.name = field<std::string>(j, "name", file);
    k.pi_id = hex_field<16>(j, "pi_id", file);
    k.pi_name = field<std::string>(j, "pi_name", file);
    k.pi_public = hex_field<core::protocol::kP256PublicKeyLen>(j, "pi_public", file);
    k.device_id = hex_field<core::protocol::kDeviceIdLen>(j, "device_id", file);
    k.label = field<std::string>(j, "device_label", file);
    {
        auto& secret_text = j["secret"];
        if (!secret_text.is_string()) {
            throw PairingStoreError("pairing file " + file.string() +
                                    ": field 'secret' is missing or not a string");
        }
        auto raw = core::crypto::base32_decode(secret_text.get_ref<const std::string&>());
        wipe(secret_text.get_ref<std::string&>());
        if (!raw || raw->size() != 32) {
            if (raw) {
                core::crypto::cleanse(raw->data(), raw->size());
            }
            throw PairingStoreError("pairing file " + file.string() +
                                    ": field 'secret' is not base32 of 32 bytes");
        }
        k.secret = core::crypto::SecretBytes(*raw);
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
    k.totp.hash = *hash;
    k.totp.digits = field<int>(*totp_it, "digits", file);
    k.totp.step_seconds = field<int>(*totp_it, "period", file);
    if (k.totp.digits < 6 || k.totp.digits > 8) {
        throw PairingStoreError("pairing file " + file.string() + ": totp 'digits' is not 6..8");
    }
    if (k.totp.step_seconds < 15 || k.totp.step_seconds > 300) {
        throw PairingStoreError("pairing file " + file.string() + ": totp 'period' is not 15..300");
    }
    c.counter = field<std::uint64_t>(j, "counter", file);
    c.paired = field<std::int64_t>(j, "paired", file);
    return c;
}

struct Loaded {
    fs::path file;
    std::optional<ClientPairing> pairing;
    std::string problem;  ///< why it is unusable (mode, damage); empty when fine
    bool unsafe_mode = false;
    /// A file of protocol 1: the pairing's name, for messages and removal.
    std::optional<std::string> protocol1_name;
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
    } catch (const Protocol1File& e) {
        out.protocol1_name = e.name();
        out.problem = e.what();
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
    s.pi_name = c.credential.pi_name;
    s.pi_id_hex = core::crypto::hex_encode(c.credential.pi_id);
    s.device_id_hex = core::crypto::hex_encode(c.credential.device_id);
    s.device_label = c.credential.label;
    s.counter = c.counter;
    s.paired = c.paired;
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

// The selection rules of PairingStore::find, on already loaded files. A file of
// protocol 1 is chosen by its name only with `protocol1` (to remove it); else naming
// it gives the reason it cannot be used.
const Loaded& select(const std::vector<Loaded>& all, std::string_view selector,
                     bool protocol1 = false) {
    std::vector<const Loaded*> usable;
    std::size_t damaged = 0;
    std::size_t old = 0;
    for (const auto& l : all) {
        if (l.pairing) {
            usable.push_back(&l);
        } else if (l.protocol1_name) {
            ++old;
        } else {
            ++damaged;
        }
    }
    std::string note;
    if (damaged > 0) {
        note += " (" + std::to_string(damaged) +
                " pairing file(s) could not be read: see bluezscript client list)";
    }
    if (old > 0) {
        note += " (" + std::to_string(old) +
                " pairing(s) were made with protocol 1: pair again with a new link, `bluezscript "
                "client pair LINK`)";
    }
    if (selector.empty()) {
        if (usable.size() == 1) {
            return *usable.front();
        }
        if (usable.empty()) {
            throw PairingStoreError("no pairings yet: pair with `bluezscript client pair LINK`" +
                                    note);
        }
        throw PairingStoreError("there are several pairings (" + names_of(usable) +
                                "): choose one with --pi NAME");
    }
    for (const auto* l : usable) {
        if (l->pairing->name == selector) {
            return *l;
        }
    }
    for (const auto& l : all) {
        if (l.protocol1_name && *l.protocol1_name == selector) {
            if (protocol1) {
                return l;
            }
            throw PairingStoreError("pairing '" + std::string(selector) +
                                    "' was made with protocol 1; pair again with a new link "
                                    "(`bluezscript client pair LINK`)");
        }
    }
    std::vector<const Loaded*> hits;
    for (const auto* l : usable) {
        if (l->pairing->credential.pi_name == selector) {
            hits.push_back(l);
        }
    }
    if (hits.empty() && selector.size() >= kMinIdPrefix && is_hex(selector)) {
        const std::string prefix = lower(selector);
        for (const auto* l : usable) {
            if (core::crypto::hex_encode(l->pairing->credential.pi_id).rfind(prefix, 0) == 0) {
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
                            note);
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

namespace {

// Whether a pairing named `n` exists among `all` (protocol 1 files included).
bool name_taken(const std::vector<Loaded>& all, const std::string& n) {
    return std::any_of(all.begin(), all.end(), [&](const Loaded& l) {
        return (l.pairing && l.pairing->name == n) || (l.protocol1_name && *l.protocol1_name == n);
    });
}

// The checks of check_new on loaded files.
void check_new_in(const std::vector<Loaded>& all, const fs::path& file,
                  const core::protocol::PiId& pi, const core::protocol::DeviceId& device,
                  const std::string& name) {
    if (!name.empty()) {
        if (auto err = check_pairing_name(name); !err.empty()) {
            throw PairingStoreError("--name '" + name + "': " + err);
        }
        if (name_taken(all, name)) {
            throw PairingStoreError("another pairing is already named '" + name +
                                    "' (see: bluezscript client list)");
        }
    }
    for (const auto& l : all) {
        if (l.pairing && l.pairing->credential.pi_id == pi &&
            l.pairing->credential.device_id == device) {
            throw PairingStoreError(
                "this device of this Pi is already paired here as '" + l.pairing->name +
                "'; remove it first (`bluezscript client remove " + l.pairing->name + "`)");
        }
    }
    std::error_code ec;
    if (fs::exists(file, ec)) {
        throw PairingStoreError("a pairing file for this Pi and device exists (" + file.string() +
                                "); remove it first (`bluezscript client remove`)");
    }
}

}  // namespace

void PairingStore::check_new(const core::protocol::PiId& pi, const core::protocol::DeviceId& device,
                             const std::string& name) const {
    const auto all = load_all(pairings_dir());
    check_new_in(all, pairings_dir() / file_name_for(pi, device), pi, device, name);
}

ClientPairing PairingStore::add(const Credential& k, const std::string& name,
                                std::uint64_t counter) {
    make_private_dirs(pairings_dir());
    DirLock lock(pairings_dir());
    const auto all = load_all(pairings_dir());
    const fs::path file = pairings_dir() / file_name_for(k.pi_id, k.device_id);
    check_new_in(all, file, k.pi_id, k.device_id, name);

    ClientPairing c;
    c.credential = k;
    c.file = file;
    c.counter = counter;
    c.paired = util::wall_clock_now();
    if (!name.empty()) {
        c.name = name;
    } else {
        std::string base = k.pi_name;
        if (!check_pairing_name(base).empty()) {
            base = "pi-" + core::crypto::hex_encode(k.pi_id).substr(0, 8);
        }
        c.name = base;
        for (int i = 2; name_taken(all, c.name); ++i) {
            c.name = base + "-" + std::to_string(i);
        }
    }
    write_atomically(file, serialize(c));
    return c;
}

std::vector<ClientPairingSummary> PairingStore::list() const {
    std::vector<ClientPairingSummary> out;
    for (auto& l : load_all(pairings_dir())) {
        ClientPairingSummary s;
        if (l.pairing) {
            s = summarize(*l.pairing);
        } else if (l.protocol1_name && !l.protocol1_name->empty()) {
            s.name = *l.protocol1_name;
            s.file = l.file;
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
    const Loaded& l = select(all, selector, /*protocol1=*/true);
    ClientPairingSummary s;
    if (l.pairing) {
        s = summarize(*l.pairing);
    } else {
        s.name = l.protocol1_name.value_or("");
        s.file = l.file;
    }
    if (::unlink(l.file.c_str()) != 0) {
        throw_errno("cannot remove " + l.file.string());
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

}  // namespace bzs::client
