// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/auth/verifier.h"

#include <algorithm>
#include <regex>

namespace bzs::core::auth {

namespace ratelimit {

bool admit_global(GlobalRateState& g, std::int64_t now, const RateLimitPolicy& p) {
    if (now - g.window_start >= 60 || now < g.window_start) {
        g.window_start = now;
        g.attempts = 0;
        g.failures = 0;
    }
    ++g.attempts;
    if (g.locked_until > now) {
        return false;
    }
    return g.attempts <= p.global_max_attempts_per_minute;
}

bool device_locked(const DeviceRateState& d, std::int64_t now) {
    return d.locked_until > now;
}

void record_failure(DeviceRateState& d, std::int64_t now, const RateLimitPolicy& p) {
    ++d.consecutive_failures;
    if (d.consecutive_failures >= p.device_max_failures) {
        // Each lockout doubles the previous one: 30 s, 60 s, 120 s ... up to the max.
        std::int64_t seconds = p.device_lockout_seconds;
        for (std::uint32_t i = 0; i < d.lockouts && seconds < p.device_lockout_max_seconds; ++i) {
            seconds *= 2;
        }
        seconds = std::min(seconds, p.device_lockout_max_seconds);
        d.locked_until = now + seconds;
        ++d.lockouts;
        d.consecutive_failures = 0;
    }
}

void record_global_failure(GlobalRateState& g, std::int64_t now, const RateLimitPolicy& p) {
    ++g.failures;
    if (g.failures >= p.global_max_failures_per_minute) {
        g.locked_until = now + p.global_lockout_seconds;
    }
}

void record_success(DeviceRateState& d) {
    d.consecutive_failures = 0;
    d.lockouts = 0;
    d.locked_until = 0;
}

}  // namespace ratelimit

namespace {

bool args_allowed(const ActionRules& rules, const std::vector<std::string>& args,
                  std::string& detail) {
    if (args.empty()) {
        return true;
    }
    if (!rules.allow_args) {
        detail = "the action takes no arguments";
        return false;
    }
    if (args.size() > rules.max_args) {
        detail = std::to_string(args.size()) + " arguments given; the action takes at most " +
                 std::to_string(rules.max_args);
        return false;
    }
    if (rules.arg_pattern) {
        try {
            const std::regex re(*rules.arg_pattern, std::regex::ECMAScript);
            for (std::size_t i = 0; i < args.size(); ++i) {
                if (!std::regex_match(args[i], re)) {
                    detail =
                        "argument " + std::to_string(i) + " does not match the action's pattern";
                    return false;
                }
            }
        } catch (const std::regex_error&) {
            detail = "the action's argument pattern is invalid";
            return false;
        }
    }
    return true;
}

}  // namespace

Decision verify(protocol::ByteView frame, const protocol::DecodeResult& decoded,
                const VerifyInput& in) {
    Decision d;
    d.replay = in.replay;
    d.device_rate = in.device_rate;
    d.global_rate = in.global_rate;
    const RateLimitPolicy& lp = in.policy.limits;

    // A refusal counts against the Pi-wide limits, and against the device only
    // when the device is known and the failure is one of authentication.
    auto refuse = [&](Status s, std::string detail, bool device_failure) {
        d.status = s;
        d.detail = std::move(detail);
        ratelimit::record_global_failure(d.global_rate, in.now, lp);
        if (device_failure && in.device != nullptr) {
            ratelimit::record_failure(d.device_rate, in.now, lp);
        }
        return d;
    };

    const bool admitted = ratelimit::admit_global(d.global_rate, in.now, lp);
    if (!decoded.request) {
        return refuse(decoded.error.status, decoded.error.detail, false);
    }
    const protocol::Request& req = *decoded.request;
    if (!admitted) {
        d.status = Status::RateLimited;
        d.detail = "the Pi-wide attempt limit is reached";
        return d;
    }
    if (in.device == nullptr) {
        return refuse(Status::UnknownDevice, "no paired device has this id", false);
    }
    const DeviceRecord& dev = *in.device;
    if (dev.revoked) {
        return refuse(Status::Revoked, "device was revoked", false);
    }
    if (ratelimit::device_locked(d.device_rate, in.now)) {
        d.status = Status::RateLimited;
        d.detail = "device is locked out for " +
                   std::to_string(d.device_rate.locked_until - in.now) +
                   " s after repeated failures";
        return d;
    }

    const protocol::DeviceKeys keys = protocol::derive_keys(dev.secret.view());
    const crypto::Bytes mac = crypto::hmac(crypto::Hash::Sha256, keys.request_mac.view(),
                                           frame.first(decoded.mac_input_len));
    if (!crypto::ct_equal(mac, req.mac)) {
        return refuse(Status::BadMac, "request MAC does not verify", true);
    }
    d.mac_verified = true;
    // |timestamp - now| in unsigned arithmetic: the timestamp is any 64-bit value a
    // sender chose, and the signed difference can overflow.
    const bool behind = req.timestamp < in.now;
    const std::uint64_t distance =
        behind ? static_cast<std::uint64_t>(in.now) - static_cast<std::uint64_t>(req.timestamp)
               : static_cast<std::uint64_t>(req.timestamp) - static_cast<std::uint64_t>(in.now);
    if (distance > static_cast<std::uint64_t>(in.policy.max_clock_skew_seconds)) {
        return refuse(Status::StaleTimestamp,
                      "timestamp is " + std::string(behind ? "-" : "") + std::to_string(distance) +
                          " s from the Pi's clock (limit " +
                          std::to_string(in.policy.max_clock_skew_seconds) + " s)",
                      true);
    }
    if (req.counter <= d.replay.last_counter) {
        return refuse(Status::Replayed,
                      "counter " + std::to_string(req.counter) +
                          " is not above the last accepted " +
                          std::to_string(d.replay.last_counter),
                      true);
    }
    if (in.expected_challenge) {
        if (!crypto::ct_equal(req.challenge, *in.expected_challenge)) {
            return refuse(Status::Replayed, "challenge does not match the one issued to this link",
                          true);
        }
    } else if (in.policy.require_challenge) {
        return refuse(Status::Replayed, "no live challenge was issued to this link", true);
    }
    crypto::TotpParams tp = dev.totp;
    tp.window = in.policy.totp_window;
    const auto step = crypto::totp_verify(dev.secret.view(), req.totp, in.now, tp);
    if (!step) {
        return refuse(Status::BadTotp, "one-time code does not match the current time steps", true);
    }
    if (*step <= d.replay.last_totp_step) {
        return refuse(Status::ReusedTotp,
                      "time step " + std::to_string(*step) + " was already used", true);
    }
    d.matched_step = step;

    // Authenticated from here on: refusals below are about the action, not the
    // device's identity, so they do not count towards its lockout.
    const auto rules = in.actions ? in.actions(req.action) : std::nullopt;
    if (!rules) {
        return refuse(Status::UnknownAction, "no action named '" + req.action + "'", false);
    }
    if (dev.permitted_actions.count(req.action) == 0) {
        return refuse(Status::NotPermitted, "device may not run '" + req.action + "'", false);
    }
    std::string arg_detail;
    if (!args_allowed(*rules, req.args, arg_detail)) {
        return refuse(Status::BadArguments, arg_detail, false);
    }

    d.status = Status::Ok;
    d.detail = "accepted";
    d.replay.last_counter = req.counter;
    d.replay.last_totp_step = *step;
    ratelimit::record_success(d.device_rate);
    d.request = req;
    return d;
}

}  // namespace bzs::core::auth
