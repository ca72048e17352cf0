// SPDX-License-Identifier: GPL-3.0-or-later
// The verify path on its own (parse + MAC + TOTP + replay check + permission),
// and the same with the SQLite round trip that commits state and audit row.
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <filesystem>

#include "core/auth/verifier.h"
#include "core/protocol/protocol.h"
#include "store/store.h"

namespace {

using namespace bzs;

core::auth::ActionLookup one_action() {
    return [](const std::string& name) -> std::optional<core::auth::ActionRules> {
        if (name == "open-garage") {
            return core::auth::ActionRules{};
        }
        return std::nullopt;
    };
}

core::protocol::Bytes make_frame(const core::auth::DeviceRecord& dev, std::uint64_t counter,
                                 std::int64_t now, const core::protocol::Nonce& challenge) {
    const auto keys = core::protocol::derive_keys(dev.secret.view());
    core::protocol::Request r;
    r.device_id = dev.id;
    r.counter = counter;
    r.timestamp = now;
    r.challenge = challenge;
    r.totp = core::crypto::totp(dev.secret.view(), now, dev.totp);
    r.action = "open-garage";
    return core::protocol::encode_request(r, keys.request_mac.view());
}

void BM_VerifyPure(benchmark::State& state) {
    core::auth::DeviceRecord dev;
    core::crypto::random_bytes(dev.id);
    dev.secret = core::crypto::SecretBytes(core::crypto::random_bytes(32));
    dev.permitted_actions = {"open-garage"};
    core::protocol::Nonce challenge{};
    core::crypto::random_bytes(challenge);
    const std::int64_t now = 1'800'000'000;
    const auto frame = make_frame(dev, 1, now, challenge);
    core::auth::VerifyInput in;
    in.now = now;
    in.device = &dev;
    in.expected_challenge = challenge;
    in.actions = one_action();
    for (auto _ : state) {
        const auto decoded = core::protocol::decode_request(frame);
        auto d = core::auth::verify(frame, decoded, in);
        if (!d.accepted()) {
            state.SkipWithError("not accepted");
            break;
        }
        benchmark::DoNotOptimize(d);
    }
}
BENCHMARK(BM_VerifyPure);

void BM_AuthorizeWithDatabase(benchmark::State& state) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "bzs-bench-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) {
        state.SkipWithError("mkdtemp failed");
        return;
    }
    const std::filesystem::path dir(tmpl);
    {
        store::KeyRing ring;
        ring.add(1,
                 *core::crypto::Fernet::from_base64(core::crypto::Fernet::generate_key_base64()));
        store::Store st(dir / "bench.db", ring);
        std::int64_t now = 1'800'000'000;
        auto np = st.add_device("bench-phone", {"open-garage"}, now);
        auto dev = *st.load_device(np.device.id);
        core::protocol::Nonce challenge{};
        core::crypto::random_bytes(challenge);
        std::uint64_t counter = 0;
        store::AuthorizeRequest req;
        req.expected_challenge = challenge;
        req.actions = one_action();
        for (auto _ : state) {
            state.PauseTiming();
            ++now;  // no cooldown: the clock only needs to be plausible
            const auto frame = make_frame(dev, ++counter, now, challenge);
            req.frame = frame;
            req.now = now;
            state.ResumeTiming();
            auto a = st.authorize(req);
            if (!a.decision.accepted()) {
                state.SkipWithError(("not accepted: " + a.decision.detail).c_str());
                break;
            }
            st.complete_audit(a.audit_id, core::protocol::Status::Ok, 0, 1, now);
        }
    }
    std::filesystem::remove_all(dir);
}
BENCHMARK(BM_AuthorizeWithDatabase)->Unit(benchmark::kMicrosecond);

}  // namespace
