// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/auth/verifier.h"

#include <algorithm>
#include <regex>

namespace bzs::core::auth {

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

bool authenticates(protocol::ByteView frame, const protocol::DecodeResult& decoded,
                   const DeviceRecord* device) {
    if (!decoded.request || device == nullptr || device->revoked ||
        decoded.request->device_id != device->id) {
        return false;
    }
    const protocol::DeviceKeys keys = protocol::derive_keys(device->secret.view());
    const crypto::Bytes mac = crypto::hmac(crypto::Hash::Sha256, keys.request_mac.view(),
                                           frame.first(decoded.mac_input_len));
    return crypto::ct_equal(mac, decoded.request->mac);
}

Decision verify(protocol::ByteView frame, const protocol::DecodeResult& decoded,
                const VerifyInput& in) {
    Decision d;
    d.replay = in.replay;
    d.verified_at = in.now;

    auto refuse = [&](Status s, std::string detail) {
        d.status = s;
        d.detail = std::move(detail);
        return d;
    };

    if (!decoded.request) {
        return refuse(decoded.error.status, decoded.error.detail);
    }
    const protocol::Request& req = *decoded.request;
    if (in.device == nullptr) {
        return refuse(Status::UnknownDevice, "no paired device has this id");
    }
    const DeviceRecord& dev = *in.device;
    if (dev.revoked) {
        return refuse(Status::Revoked, "device was revoked");
    }
    if (!authenticates(frame, decoded, in.device)) {
        return refuse(Status::BadMac, "request MAC does not verify");
    }
    d.mac_verified = true;

    // Freshness rests on these two: a replayed frame is refused here, before any
    // clock check could give it a different answer.
    if (req.counter <= d.replay.last_counter) {
        return refuse(Status::Replayed, "counter " + std::to_string(req.counter) +
                                            " is not above the last accepted " +
                                            std::to_string(d.replay.last_counter));
    }
    if (in.expected_challenge) {
        if (!crypto::ct_equal(req.challenge, *in.expected_challenge)) {
            return refuse(Status::Replayed, "challenge does not match the one issued to this link");
        }
    } else if (in.policy.require_challenge) {
        return refuse(Status::Replayed, "no live challenge was issued to this link");
    }

    // |timestamp - V| in unsigned arithmetic: the timestamp is any 64-bit value a
    // sender chose, and the signed difference can overflow.
    std::int64_t now = in.now;
    const bool behind = req.timestamp < now;
    const std::uint64_t distance =
        behind ? static_cast<std::uint64_t>(now) - static_cast<std::uint64_t>(req.timestamp)
               : static_cast<std::uint64_t>(req.timestamp) - static_cast<std::uint64_t>(now);
    const auto skew = static_cast<std::uint64_t>(in.policy.max_clock_skew_seconds);
    if (distance > skew) {
        if (behind) {
            return refuse(Status::StaleTimestamp, "timestamp is " + std::to_string(distance) +
                                                      " s behind the Pi's clock (limit " +
                                                      std::to_string(skew) + " s)");
        }
        if (in.clock_synchronized) {
            return refuse(Status::StaleTimestamp, "timestamp is " + std::to_string(distance) +
                                                      " s ahead of the Pi's clock (limit " +
                                                      std::to_string(skew) + " s)");
        }
        const auto max_advance = static_cast<std::uint64_t>(in.policy.max_clock_advance_seconds);
        if (distance > max_advance) {
            return refuse(Status::StaleTimestamp,
                          "timestamp is " + std::to_string(distance) +
                              " s ahead of the Pi's unsynchronised clock, more than it may "
                              "advance (" +
                              std::to_string(max_advance) + " s)");
        }
        // An authentic, fresh frame vouches for the time: V moves forward to it.
        now = req.timestamp;
        d.clock_advanced_to = now;
        d.verified_at = now;
    }

    crypto::TotpParams tp = dev.totp;
    tp.window = in.policy.totp_window;
    const auto step = crypto::totp_verify(dev.secret.view(), req.totp, now, tp);
    if (!step) {
        return refuse(Status::BadTotp, "one-time code does not match the current time steps");
    }
    d.matched_step = step;

    const auto rules = in.actions ? in.actions(req.action) : std::nullopt;
    if (!rules) {
        return refuse(Status::UnknownAction, "no action named '" + req.action + "'");
    }
    if (dev.permitted_actions.count(req.action) == 0) {
        return refuse(Status::NotPermitted, "device may not run '" + req.action + "'");
    }
    std::string arg_detail;
    if (!args_allowed(*rules, req.args, arg_detail)) {
        return refuse(Status::BadArguments, arg_detail);
    }

    d.status = Status::Ok;
    d.detail = "accepted";
    d.replay.last_counter = req.counter;
    d.request = req;
    return d;
}

}  // namespace bzs::core::auth
