// SPDX-License-Identifier: GPL-3.0-or-later
// BLE round-trip benchmark: how long protocol v2's exchanges take through BlueZ's
// D-Bus API (tests/tools/fake_bluetoothd.py on a private bus in practice:
// bench/run-ble-roundtrip.sh sets everything up), driven by the client's own
// Exchange (src/client/exchange.h) over one connection.
//
//   setup:   the owner's `bluezscript pair add` made a pending device; its link is
//            in --link-file (read once, never on the command line)
//   client:  scan on the central's adapter, connect; pair ONE device by the
//            exchange (timed); then per command one whole Exchange: read Info,
//            subscribe (once), read Challenge, seal, write Command, the sealed
//            result reassembled and opened
//   report:  the pairing exchange's time; min, p50, p90, p99, max, mean of the
//            whole command exchange and of its write -> result part.
//
// Figures are printed, never judged: this is a measurement, not a test.
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bluez/names.h"
#include "bluez/object_mirror.h"
#include "client/exchange.h"
#include "core/crypto/crypto.h"
#include "core/protocol/link.h"
#include "core/protocol/protocol.h"
#include "dbus/bus.h"
#include "loop/event_loop.h"

namespace bzs::bench {

namespace {

using client::GattError;
using client::GattTransport;
using Clock = std::chrono::steady_clock;

using namespace bzs::bluez::names;  // D-Bus names (bluez/names.h)
constexpr std::uint64_t kCallTimeoutUsec = 30'000'000;
// Consecutive failed commands after which the run stops: something is broken
// (configuration, daemon), and waiting out every timeout would take long.
constexpr int kMaxConsecutiveFailures = 10;

/// A problem that ends the run; the message says what went wrong.
class BenchError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

struct Options {
    std::filesystem::path link_file;
    int count = 200;
    int warmup = 10;
    std::string action = "noop";
    std::string adapter = "hci1";
    std::chrono::seconds find_timeout{60};
    std::chrono::seconds reply_timeout{10};
};

const char* const kUsage =
    "usage: bzs_bench_ble --link-file PATH [--count N] [--warmup N] [--action NAME]\n"
    "                     [--adapter hciN] [--find-timeout S] [--reply-timeout S]\n"
    "As a BLE central on the system bus ($DBUS_SYSTEM_BUS_ADDRESS): finds the Pi,\n"
    "pairs the pending device of the link in PATH by the pairing exchange, sends\n"
    "warmup+count commands with it and prints the latencies (protocol v2). Run it\n"
    "through bench/run-ble-roundtrip.sh.\n";

int parse_int(const std::string& flag, const std::string& text, int lo, int hi) {
    std::size_t used = 0;
    long v = 0;
    try {
        v = std::stol(text, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    if (used != text.size() || text.empty() || v < lo || v > hi) {
        throw BenchError(flag + ": expected an integer in " + std::to_string(lo) + ".." +
                         std::to_string(hi) + ", got '" + text + "'");
    }
    return static_cast<int>(v);
}

Options parse_args(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string flag = argv[i];
        if (flag == "-h" || flag == "--help") {
            std::cout << kUsage;
            std::exit(0);
        }
        if (i + 1 >= argc) {
            throw BenchError(flag + ": unknown option or missing value");
        }
        const std::string value = argv[++i];
        if (flag == "--link-file") {
            o.link_file = value;
        } else if (flag == "--count") {
            o.count = parse_int(flag, value, 1, 100000);
        } else if (flag == "--warmup") {
            o.warmup = parse_int(flag, value, 0, 10000);
        } else if (flag == "--action") {
            o.action = value;
        } else if (flag == "--adapter") {
            o.adapter = value;
        } else if (flag == "--find-timeout") {
            o.find_timeout = std::chrono::seconds(parse_int(flag, value, 1, 3600));
        } else if (flag == "--reply-timeout") {
            o.reply_timeout = std::chrono::seconds(parse_int(flag, value, 1, 3600));
        } else {
            throw BenchError("unknown option '" + flag + "'");
        }
    }
    if (o.link_file.empty()) {
        throw BenchError("--link-file is required");
    }
    if (const auto err = client::check_command(o.action, {}); !err.empty()) {
        throw BenchError("--action: " + err);
    }
    const bool hci = o.adapter.size() > 3 && o.adapter.rfind("hci", 0) == 0 &&
                     std::all_of(o.adapter.begin() + 3, o.adapter.end(),
                                 [](char c) { return c >= '0' && c <= '9'; });
    if (!hci) {
        throw BenchError("--adapter '" + o.adapter + "': expected hciN, e.g. hci1");
    }
    return o;
}

std::int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

double ms_between(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

// The pairing link the owner's `pair add` wrote, first line of the file.
core::protocol::PairingLink read_link(const std::filesystem::path& file) {
    std::ifstream in(file);
    std::string line;
    if (!in || !std::getline(in, line)) {
        throw BenchError("cannot read a pairing link from " + file.string());
    }
    auto parsed = core::protocol::parse_link(line);
    core::crypto::cleanse(line.data(), line.size());
    if (!parsed.link) {
        throw BenchError(file.string() + ": not a valid pairing link: " + parsed.error);
    }
    return std::move(*parsed.link);
}

// ------------------------------------------------------------------ waiting

// Runs the loop until `done`, a fatal D-Bus problem, or `timeout`.
class Waiter {
  public:
    explicit Waiter(loop::EventLoop& loop) : loop_(loop) {}
    ~Waiter() = default;
    Waiter(const Waiter&) = delete;
    Waiter& operator=(const Waiter&) = delete;

    /// Ends the run at the next check (e.g. the link dropped).
    void fail(const std::string& why) {
        if (fatal_.empty()) {
            fatal_ = why;
        }
    }

    /// For Bus::set_exception_sink: an exception escaping a D-Bus callback is fatal.
    dbus::ExceptionSink sink() {
        return [this](const std::exception& e) {
            if (fatal_.empty()) {
                fatal_ = std::string("unexpected D-Bus message: ") + e.what();
            }
        };
    }

    /// Returns false on timeout; throws BenchError on a fatal problem.
    bool wait(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
        bool expired = false;
        loop::Source t = loop_.add_timer_relative(timeout, [&expired] { expired = true; });
        loop_.run_until([&] { return done() || expired || !fatal_.empty(); });
        if (!fatal_.empty()) {
            throw BenchError(fatal_);
        }
        return done();
    }

    /// Like wait(), but a timeout is fatal: "<what> took longer than N s".
    void must(const std::function<bool()>& done, std::chrono::milliseconds timeout,
              const std::string& what) {
        if (!wait(done, timeout)) {
            throw BenchError(what + " took longer than " + std::to_string(timeout.count() / 1000) +
                             " s");
        }
    }

  private:
    loop::EventLoop& loop_;
    std::string fatal_;
};

// ------------------------------------------------------------------ central

// The minimal BLE central the benchmark needs, as a GattTransport: bluez::Trigger
// does one exchange per connection and keeps its transport private, while this run
// needs a thousand exchanges over a single connection.
class BluezCentral final : public GattTransport {
  public:
    BluezCentral(loop::EventLoop& loop, Waiter& waiter, std::string adapter)
        : loop_(loop), waiter_(waiter), adapter_("/org/bluez/" + std::move(adapter)) {}

    ~BluezCentral() override = default;
    BluezCentral(const BluezCentral&) = delete;
    BluezCentral& operator=(const BluezCentral&) = delete;

    /// Opens the system bus, scans until a device offering the BlueZscript service
    /// appears on the adapter, connects and finds the four characteristics.
    void connect(std::chrono::seconds find_timeout) {
        bus_ = dbus::Bus::open_system("bzs-bench-ble");
        bus_.attach(loop_.native());
        bus_.set_exception_sink(waiter_.sink());
        watch();
        bool listed = false;
        calls_.push_back(call("/", kObjectManagerIface, "GetManagedObjects", {},
                              [this, &listed](sd_bus_message* m, const dbus::RemoteError* e) {
                                  if (e != nullptr) {
                                      waiter_.fail("cannot talk to bluetoothd: " + e->to_string());
                                      return;
                                  }
                                  parse_objects(m);
                                  listed = true;
                              }));
        waiter_.must([&] { return listed; }, std::chrono::seconds(30), "GetManagedObjects");
        if (!adapters_.count(adapter_)) {
            throw BenchError("no adapter " + adapter_ + " on this bus");
        }
        if (!candidate()) {
            start_scan();
            waiter_.must([&] { return candidate().has_value(); }, find_timeout,
                         "finding the Pi (no device advertising the BlueZscript service on " +
                             adapter_ + "; did bluezscriptd start?)");
            stop_scan();
        }
        device_ = *candidate();

        bool connected = false;
        calls_.push_back(call(device_, kDeviceIface, "Connect", {},
                              [this, &connected](sd_bus_message*, const dbus::RemoteError* e) {
                                  if (e != nullptr &&
                                      e->name != "org.bluez.Error.AlreadyConnected") {
                                      waiter_.fail("cannot connect: " + e->to_string());
                                      return;
                                  }
                                  connected = true;
                              }));
        waiter_.must(
            [&] {
                const auto d = devices_.find(device_);
                return connected && d != devices_.end() && d->second.resolved;
            },
            std::chrono::seconds(30), "connecting and resolving services");
        link_watch_ = true;
        find_characteristics();
    }

    /// StopNotify and Disconnect, waiting briefly for BlueZ's answers.
    void close() {
        if (!bus_ || device_.empty()) {
            return;
        }
        link_watch_ = false;
        int pending = 0;
        auto done = [&pending](sd_bus_message*, const dbus::RemoteError*) { --pending; };
        try {
            if (subscribed_) {
                ++pending;
                calls_.push_back(call(paths_[Chrc::Result], kChrcIface, "StopNotify", {}, done));
            }
            ++pending;
            calls_.push_back(call(device_, kDeviceIface, "Disconnect", {}, done));
            waiter_.wait([&] { return pending == 0; }, std::chrono::seconds(3));
        } catch (const std::exception&) {
            // Tidying up only: the fake drops our sessions when we leave the bus.
        }
        calls_.clear();
    }

    /// Drops the slots of earlier calls; a call still pending is cancelled (its
    /// callback, which may point into a finished caller's frame, never runs).
    void drop_calls() { calls_.clear(); }

    [[nodiscard]] const std::string& device_path() const { return device_; }

    // --- GattTransport ---

    void read(Chrc chrc, ReadDone done) override {
        issue(paths_[chrc], "ReadValue", dbus::append_empty_dict,
              [done](sd_bus_message* m, const GattError* e) {
                  if (e != nullptr) {
                      done({}, e);
                      return;
                  }
                  done(dbus::read_bytes(m), nullptr);
              });
    }

    void write_command(core::protocol::ByteView frame, Done done) override {
        const core::protocol::Bytes value(frame.begin(), frame.end());
        last_write_ = Clock::now();
        issue(
            paths_[Chrc::Command], "WriteValue",
            [value](sd_bus_message* m) {
                dbus::append_bytes(m, value);
                // A write with response, as bluezscript trigger sends it.
                dbus::check(sd_bus_message_append(m, "a{sv}", 1, "type", "s", "request"),
                            "append write options");
            },
            [done](sd_bus_message*, const GattError* e) { done(e); });
    }

    // Each Exchange subscribes; the connection does it once and then only hands the
    // notifications to the newest Exchange.
    void subscribe_result(Notify on_value, Done done) override {
        on_value_ = std::move(on_value);
        if (subscribed_) {
            loop_.post([done] { done(nullptr); });
            return;
        }
        result_match_ = bluez::watch_characteristic_value(bus_, paths_[Chrc::Result],
                                                          [this](const dbus::Bytes& value) {
                                                              if (on_value_) {
                                                                  on_value_(value);
                                                              }
                                                          });
        issue(paths_[Chrc::Result], "StartNotify", {},
              [this, done](sd_bus_message*, const GattError* e) {
                  subscribed_ = e == nullptr;
                  done(e);
              });
    }

    /// When the last request was written (its WriteValue was sent).
    [[nodiscard]] Clock::time_point last_write() const { return last_write_; }

    [[nodiscard]] bool paired() const override { return false; }

    void pair(Done done) override {
        // The benchmark's configuration does not require bonding.
        loop_.post([done] {
            const GattError e{"org.bluez.Error.NotSupported", "the benchmark does not bond"};
            done(&e);
        });
    }

  private:
    struct DeviceState {
        std::vector<std::string> uuids;
        bool connected = false;
        bool resolved = false;
    };
    struct GattObject {
        std::string uuid;
        std::string parent;
    };
    using Reply = std::function<void(sd_bus_message* m, const GattError* e)>;

    dbus::Slot call(const std::string& path, const char* iface, const char* member,
                    const dbus::Builder& build, dbus::ReplyHandler on_reply) {
        return dbus::call_async(bus_, dbus::Target{kBluez, path, iface, member}, build,
                                std::move(on_reply), kCallTimeoutUsec);
    }

    // A characteristic call; errors (also local ones) reach `reply` from the loop.
    void issue(const std::string& path, const char* member, const dbus::Builder& build,
               const Reply& reply) {
        try {
            calls_.push_back(call(path, kChrcIface, member, build,
                                  [reply](sd_bus_message* m, const dbus::RemoteError* e) {
                                      if (e != nullptr) {
                                          const GattError g{e->name, e->message};
                                          reply(nullptr, &g);
                                          return;
                                      }
                                      reply(m, nullptr);
                                  }));
        } catch (const dbus::BusError& e) {
            const GattError g{"org.freedesktop.DBus.Error.Failed", e.what()};
            loop_.post([reply, g] { reply(nullptr, &g); });
        }
    }

    void watch() {
        const dbus::Bus& b = bus_;
        dbus::MatchRule om;
        om.sender = kBluez;
        om.interface = kObjectManagerIface;
        om.member = "InterfacesAdded";
        matches_.push_back(dbus::add_match(b, om, [this](sd_bus_message* m) {
            const std::string path = dbus::read_string(m, 'o');
            parse_interfaces(path, m);
        }));
        dbus::MatchRule pc;
        pc.sender = kBluez;
        pc.interface = kPropertiesIface;
        pc.member = "PropertiesChanged";
        pc.arg0 = kDeviceIface;
        matches_.push_back(dbus::add_match(b, pc, [this](sd_bus_message* m) {
            const char* raw = sd_bus_message_get_path(m);
            const std::string path = raw != nullptr ? raw : "";
            apply(path, dbus::read_string(m), m);
            if (link_watch_ && path == device_ && !devices_[path].connected) {
                waiter_.fail("the connection to the Pi dropped");
            }
        }));
    }

    void parse_objects(sd_bus_message* m) {
        dbus::check(sd_bus_message_enter_container(m, SD_BUS_TYPE_ARRAY, "{oa{sa{sv}}}"),
                    "enter objects");
        while (dbus::check(sd_bus_message_enter_container(m, SD_BUS_TYPE_DICT_ENTRY, "oa{sa{sv}}"),
                           "enter object") > 0) {
            const std::string path = dbus::read_string(m, 'o');
            parse_interfaces(path, m);
            dbus::check(sd_bus_message_exit_container(m), "exit object");
        }
        dbus::check(sd_bus_message_exit_container(m), "exit objects");
    }

    void parse_interfaces(const std::string& path, sd_bus_message* m) {
        dbus::check(sd_bus_message_enter_container(m, SD_BUS_TYPE_ARRAY, "{sa{sv}}"),
                    "enter interfaces");
        while (dbus::check(sd_bus_message_enter_container(m, SD_BUS_TYPE_DICT_ENTRY, "sa{sv}"),
                           "enter interface") > 0) {
            const std::string iface = dbus::read_string(m);
            apply(path, iface, m);
            dbus::check(sd_bus_message_exit_container(m), "exit interface");
        }
        dbus::check(sd_bus_message_exit_container(m), "exit interfaces");
    }

    // Reads the a{sv} of `iface` properties of `path`, keeping what we need.
    void apply(const std::string& path, const std::string& iface, sd_bus_message* m) {
        if (iface == kAdapterIface) {
            adapters_.insert(path);
            dbus::skip_value(m);
        } else if (iface == kDeviceIface) {
            DeviceState& d = devices_[path];
            dbus::read_dict(m, [&](const std::string& key, sd_bus_message* v) {
                if (key == "UUIDs") {
                    d.uuids = dbus::read_variant_strings(v).value_or(std::vector<std::string>{});
                    return true;
                }
                if (key == "Connected" || key == "ServicesResolved") {
                    if (auto b = dbus::read_variant_bool(v)) {
                        (key == "Connected" ? d.connected : d.resolved) = *b;
                    }
                    return true;
                }
                return false;
            });
        } else if (iface == kServiceIface || iface == kChrcIface) {
            GattObject& g = (iface == kServiceIface ? services_ : chrcs_)[path];
            const char* parent_key = iface == kServiceIface ? "Device" : "Service";
            dbus::read_dict(m, [&](const std::string& key, sd_bus_message* v) {
                if (key == "UUID" || key == parent_key) {
                    if (auto s = dbus::read_variant_string(v)) {
                        // UUIDs compare in lower case; object paths as they are.
                        if (key == "UUID") {
                            g.uuid = dbus::lower_ascii(*s);
                        } else {
                            g.parent = *s;
                        }
                    }
                    return true;
                }
                return false;
            });
        } else {
            dbus::skip_value(m);
        }
    }

    // A device of our adapter that offers the BlueZscript service.
    [[nodiscard]] std::optional<std::string> candidate() const {
        const std::string prefix = adapter_ + "/";
        for (const auto& [path, d] : devices_) {
            if (path.rfind(prefix, 0) != 0) {
                continue;
            }
            for (const auto& u : d.uuids) {
                if (dbus::lower_ascii(u) == core::protocol::kServiceUuid) {
                    return path;
                }
            }
        }
        return std::nullopt;
    }

    void start_scan() {
        bool started = false;
        calls_.push_back(call(
            adapter_, kAdapterIface, "SetDiscoveryFilter",
            [](sd_bus_message* m) {
                const std::string uuid(core::protocol::kServiceUuid);
                dbus::check(sd_bus_message_append(m, "a{sv}", 2, "UUIDs", "as", 1, uuid.c_str(),
                                                  "Transport", "s", "le"),
                            "append discovery filter");
            },
            [this, &started](sd_bus_message*, const dbus::RemoteError* e) {
                if (e != nullptr) {
                    waiter_.fail("cannot set the scan filter: " + e->to_string());
                    return;
                }
                calls_.push_back(
                    call(adapter_, kAdapterIface, "StartDiscovery", {},
                         [this, &started](sd_bus_message*, const dbus::RemoteError* e2) {
                             if (e2 != nullptr) {
                                 waiter_.fail("cannot start scanning: " + e2->to_string());
                                 return;
                             }
                             started = true;
                         }));
            }));
        waiter_.must([&] { return started; }, std::chrono::seconds(30), "starting a scan");
        scanning_ = true;
    }

    void stop_scan() {
        if (!scanning_) {
            return;
        }
        scanning_ = false;
        bool stopped = false;
        calls_.push_back(
            call(adapter_, kAdapterIface, "StopDiscovery", {},
                 [&stopped](sd_bus_message*, const dbus::RemoteError*) { stopped = true; }));
        waiter_.must([&] { return stopped; }, std::chrono::seconds(30), "stopping the scan");
    }

    void find_characteristics() {
        std::string service;
        for (const auto& [path, s] : services_) {
            if (s.parent == device_ && s.uuid == core::protocol::kServiceUuid) {
                service = path;
            }
        }
        if (service.empty()) {
            throw BenchError(device_ + " does not offer the BlueZscript service");
        }
        const std::pair<Chrc, std::string_view> wanted[] = {
            {Chrc::Info, core::protocol::kInfoUuid},
            {Chrc::Challenge, core::protocol::kChallengeUuid},
            {Chrc::Command, core::protocol::kCommandUuid},
            {Chrc::Result, core::protocol::kResultUuid}};
        for (const auto& [chrc, uuid] : wanted) {
            for (const auto& [path, c] : chrcs_) {
                if (c.parent == service && c.uuid == uuid) {
                    paths_[chrc] = path;
                }
            }
            if (!paths_.count(chrc)) {
                throw BenchError("the Pi's service has no characteristic " + std::string(uuid));
            }
        }
    }

    loop::EventLoop& loop_;
    Waiter& waiter_;
    std::string adapter_;
    dbus::Bus bus_;
    std::vector<dbus::Slot> matches_;
    std::vector<dbus::Slot> calls_;
    dbus::Slot result_match_;
    Notify on_value_;
    Clock::time_point last_write_{};
    std::set<std::string> adapters_;
    std::map<std::string, DeviceState> devices_;
    std::map<std::string, GattObject> services_;
    std::map<std::string, GattObject> chrcs_;
    std::map<Chrc, std::string> paths_;
    std::string device_;
    bool scanning_ = false;
    bool subscribed_ = false;
    bool link_watch_ = false;
};

// ------------------------------------------------------------------ exchanges

struct Sample {
    bool ok = false;
    double exchange_ms = 0;  ///< start of the Exchange -> its outcome
    double write_ms = 0;     ///< the request's write -> its outcome
    std::string failure;     ///< why it is not ok
};

// One whole client::Exchange on the open connection.
Sample run_exchange(loop::EventLoop& loop, BluezCentral& central, Waiter& waiter,
                    client::ExchangeRequest request, const client::ExchangeHooks& hooks,
                    const Options& o) {
    Sample s;
    // Whatever happens below, no callback of this exchange outlives its frame.
    struct DropCalls {
        BluezCentral& c;
        ~DropCalls() { c.drop_calls(); }
    } guard{central};
    client::ExchangeTiming timing;
    timing.response_timeout = o.reply_timeout;
    std::optional<client::ExchangeOutcome> out;
    Clock::time_point t1;
    client::Exchange ex(loop, central, std::move(request), hooks, timing,
                        [&](const client::ExchangeOutcome& r) {
                            t1 = Clock::now();
                            out = r;
                        });
    const auto t0 = Clock::now();
    ex.start();
    waiter.must([&] { return out.has_value(); }, o.reply_timeout + std::chrono::seconds(30),
                "an exchange");
    s.exchange_ms = ms_between(t0, t1);
    s.write_ms = ms_between(central.last_write(), t1);
    if (out->exit != client::TriggerExit::Ok) {
        s.failure = out->message.empty() ? "exit " + std::to_string(static_cast<int>(out->exit))
                                         : out->message;
        return s;
    }
    s.ok = true;
    return s;
}

// ------------------------------------------------------------------ report

// Nearest-rank percentile of sorted values.
double percentile(const std::vector<double>& sorted, double p) {
    const auto n = static_cast<double>(sorted.size());
    auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * n));
    rank = std::clamp<std::size_t>(rank, 1, sorted.size());
    return sorted[rank - 1];
}

std::string machine_line() {
    utsname u{};
    const std::string arch = ::uname(&u) == 0 ? u.machine : "unknown";
    return "machine: nproc " + std::to_string(::sysconf(_SC_NPROCESSORS_ONLN)) + ", " + arch;
}

void print_row(const char* what, const std::vector<double>& ms) {
    std::cout << std::left << std::setw(16) << what << std::right;
    if (ms.empty()) {
        std::cout << std::setw(7) << 0 << "   (no successful command)\n";
        return;
    }
    std::vector<double> s = ms;
    std::sort(s.begin(), s.end());
    const double mean = std::accumulate(s.begin(), s.end(), 0.0) / static_cast<double>(s.size());
    std::cout << std::fixed << std::setprecision(3) << std::setw(7) << s.size() << std::setw(9)
              << s.front() << std::setw(9) << percentile(s, 50) << std::setw(9) << percentile(s, 90)
              << std::setw(9) << percentile(s, 99) << std::setw(9) << s.back() << std::setw(9)
              << mean << '\n';
}

void print_report(const std::vector<Sample>& ok, const std::map<std::string, int>& failures,
                  int attempted, double seconds) {
    std::cout << machine_line() << '\n';
    int failed = 0;
    for (const auto& [why, n] : failures) {
        failed += n;
    }
    std::cout << "measured: " << attempted << " commands in " << std::fixed << std::setprecision(1)
              << seconds << " s (" << ok.size() << " ok, " << failed
              << " failed); latency over the ok ones, nearest-rank percentiles\n";
    std::cout << std::left << std::setw(16) << "" << std::right << std::setw(7) << "N"
              << std::setw(9) << "min" << std::setw(9) << "p50" << std::setw(9) << "p90"
              << std::setw(9) << "p99" << std::setw(9) << "max" << std::setw(9) << "mean"
              << "   (ms)\n";
    std::vector<double> whole;
    std::vector<double> write;
    for (const auto& s : ok) {
        whole.push_back(s.exchange_ms);
        write.push_back(s.write_ms);
    }
    print_row("exchange", whole);
    print_row("write->result", write);
    std::cout << "failures: " << failed << '\n';
    for (const auto& [why, n] : failures) {
        std::cout << "  " << n << " x " << why << '\n';
    }
}

int run(const Options& o) {
    const int total = o.warmup + o.count;
    core::protocol::PairingLink link = read_link(o.link_file);

    loop::EventLoop loop;
    Waiter waiter(loop);
    BluezCentral central(loop, waiter, o.adapter);
    central.connect(o.find_timeout);
    std::cout << "bzs_bench_ble: connected to " << central.device_path() << '\n';

    // Pair the one device of the link.
    std::optional<client::Credential> credential;
    std::uint64_t counter = 0;
    client::ExchangeHooks hooks;
    hooks.clock = unix_now;
    hooks.store_pairing = [&](const client::Credential& c, std::uint64_t last) {
        credential = c;
        counter = last;
    };
    hooks.reserve_counter = [&counter] { return ++counter; };
    client::ExchangeRequest pair;
    pair.kind = client::ExchangeKind::Pair;
    pair.link = std::move(link);
    const Sample paired = run_exchange(loop, central, waiter, std::move(pair), hooks, o);
    if (!paired.ok || !credential) {
        central.close();
        throw BenchError("pairing failed: " + paired.failure);
    }
    std::cout << "pairing exchange: " << std::fixed << std::setprecision(3) << paired.exchange_ms
              << " ms (Info, Challenge, P-256 key and derivation, write -> confirmed result; "
              << paired.write_ms << " ms of it write -> result)\n";

    std::vector<Sample> ok;
    ok.reserve(static_cast<std::size_t>(o.count));
    std::map<std::string, int> failures;
    std::map<std::string, int> warmup_failures;
    int consecutive = 0;
    int attempted = 0;
    Clock::time_point m0 = Clock::now();
    for (int i = 0; i < total; ++i) {
        const bool warm = i < o.warmup;
        if (i == o.warmup) {
            m0 = Clock::now();
        }
        client::ExchangeRequest cmd;
        cmd.kind = client::ExchangeKind::Command;
        cmd.credential = *credential;
        cmd.action = o.action;
        const Sample s = run_exchange(loop, central, waiter, std::move(cmd), hooks, o);
        if (s.ok) {
            consecutive = 0;
            if (!warm) {
                ok.push_back(s);
            }
        } else {
            ++(warm ? warmup_failures : failures)[s.failure];
            if (++consecutive >= kMaxConsecutiveFailures) {
                central.close();
                throw BenchError(std::to_string(consecutive) + " commands failed in a row, last: " +
                                 s.failure + " (see the daemon's log)");
            }
        }
        if (!warm) {
            ++attempted;
        }
    }
    const double seconds = ms_between(m0, Clock::now()) / 1000.0;
    central.close();

    if (!warmup_failures.empty()) {
        std::cout << "warm-up failures (not counted below):\n";
        for (const auto& [why, n] : warmup_failures) {
            std::cout << "  " << n << " x " << why << '\n';
        }
    }
    print_report(ok, failures, attempted, seconds);
    return 0;
}

}  // namespace

}  // namespace bzs::bench

int main(int argc, char** argv) {
    ::umask(0077);  // the database and key file we may create stay private
    try {
        const auto options = bzs::bench::parse_args(argc, argv);
        return bzs::bench::run(options);
    } catch (const bzs::bench::BenchError& e) {
        std::cerr << "bzs_bench_ble: " << e.what() << '\n';
        return 1;
    } catch (const std::exception& e) {
        std::cerr << "bzs_bench_ble: " << e.what() << '\n';
        return 1;
    }
}
