// SPDX-License-Identifier: GPL-3.0-or-later
// The verify path of protocol v2 on its own (header + seal + body + counter +
// challenge + clock + TOTP + permission) for a device paired through the
// exchange, and the same with the SQLite round trip that commits state and audit
// row. Each iteration verifies one sealed command.
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <filesystem>
#include <optional>
#include <string>

#include "core/auth/verifier.h"
#include "core/crypto/ecdh_gcm.h"
#include "core/protocol/pair_exchange.h"
#include "core/protocol/sealed.h"
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

core::protocol::SealNonce fresh_nonce() {
    core::protocol::SealNonce n{};
    core::crypto::random_bytes(n);
    return n;
}

/// A pair request for `device` with `code`, as a phone builds it; the secret S it
/// derives (nullopt if the Pi's key is not a P-256 point).
struct PhoneSide {
    core::protocol::Bytes frame;
    std::optional<core::protocol::PairSecret> expected;
};
PhoneSide pair_request(const core::protocol::PiId& pi, const core::protocol::PublicKey& pi_public,
                       const core::protocol::DeviceId& device,
                       const core::crypto::SecretBytes& code,
                       const core::protocol::Nonce& challenge) {
    const core::crypto::P256KeyPair e = core::crypto::p256_generate();
    core::protocol::PairBody body;
    body.challenge = challenge;
    std::copy(e.public_key.begin(), e.public_key.end(), body.phone_public.begin());
    PhoneSide p;
    p.expected = core::protocol::pair_derive(
        e.private_scalar.view(), pi_public, code.view(),
        core::protocol::pair_transcript(pi, device, pi_public, body.phone_public));
    p.frame =
        core::protocol::seal_request(core::protocol::RequestType::Pair, device, 0, fresh_nonce(),
                                     core::protocol::pair_seal_keys(code.view()).request.view(),
                                     core::protocol::encode_body(body));
    return p;
}

core::protocol::Bytes make_frame(const core::protocol::DeviceId& id,
                                 const core::crypto::SecretBytes& secret,
                                 const core::crypto::TotpParams& totp, std::uint64_t counter,
                                 std::int64_t now, const core::protocol::Nonce& challenge) {
    core::protocol::CommandBody b;
    b.timestamp = now;
    b.challenge = challenge;
    b.totp = core::crypto::totp(secret.view(), now, totp);
    b.action = "open-garage";
    return core::protocol::seal_request(
        core::protocol::RequestType::Command, id, counter, fresh_nonce(),
        core::protocol::device_seal_keys(secret.view()).request.view(),
        core::protocol::encode_body(b));
}

void BM_VerifyPure(benchmark::State& state) {
    // The exchange, Pi side in the verifier: the device's S is what verify_pair derives.
    core::auth::DeviceRecord dev;
    core::crypto::random_bytes(dev.id);
    dev.pending = true;
    dev.permitted_actions = {"open-garage"};
    const std::int64_t now = 1'800'000'000;
    core::protocol::Nonce challenge{};
    core::crypto::random_bytes(challenge);
    const core::crypto::P256KeyPair pi_key = core::crypto::p256_generate();
    core::auth::PairInput pin;
    pin.now = now;
    pin.device = &dev;
    pin.code = core::crypto::SecretBytes(core::crypto::random_bytes(core::protocol::kPairCodeLen));
    pin.code_expires = now + 300;
    core::crypto::random_bytes(pin.pi_id);
    pin.pi_private = pi_key.private_scalar;
    std::copy(pi_key.public_key.begin(), pi_key.public_key.end(), pin.pi_public.begin());
    pin.expected_challenge = challenge;
    const PhoneSide phone = pair_request(pin.pi_id, pin.pi_public, dev.id, pin.code, challenge);
    const auto paired = core::auth::verify_pair(
        phone.frame, core::protocol::decode_request_header(phone.frame), pin);
    if (!paired.accepted() || !phone.expected || paired.pair->confirm != phone.expected->confirm) {
        state.SkipWithError(("pairing failed: " + paired.detail).c_str());
        return;
    }
    dev.pending = false;
    dev.secret = paired.pair->secret;

    // Verify does not carry state here, so one frame serves every iteration.
    const auto frame = make_frame(dev.id, phone.expected->secret, dev.totp, 1, now, challenge);
    core::auth::VerifyInput in;
    in.now = now;
    in.device = &dev;
    in.expected_challenge = challenge;
    in.actions = one_action();
    for (auto _ : state) {
        const auto header = core::protocol::decode_request_header(frame);
        auto d = core::auth::verify(frame, header, in);
        if (!d.accepted()) {
            state.SkipWithError(("not accepted: " + d.detail).c_str());
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
        core::protocol::Nonce challenge{};
        core::crypto::random_bytes(challenge);

        // Pair as the owner and the phone do: a pending device, its code, the exchange.
        const auto np = st.add_device("bench-phone", {"open-garage"}, now, 300);
        const PhoneSide phone =
            pair_request(st.pi_id(), st.pi_public_key(), np.device.id, np.code, challenge);
        store::AuthorizeRequest pair;
        pair.frame = phone.frame;
        pair.now = now;
        pair.system_now = now;
        pair.expected_challenge = challenge;
        const auto paired = st.authorize(pair);
        if (!paired.decision.accepted() || !phone.expected) {
            state.SkipWithError(("pairing failed: " + paired.decision.detail).c_str());
            std::filesystem::remove_all(dir);
            return;
        }

        std::uint64_t counter = 0;
        store::AuthorizeRequest req;
        req.expected_challenge = challenge;
        req.actions = one_action();
        for (auto _ : state) {
            state.PauseTiming();
            ++now;  // no cooldown: the clock only needs to be plausible
            const auto frame = make_frame(np.device.id, phone.expected->secret, np.totp, ++counter,
                                          now, challenge);
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
