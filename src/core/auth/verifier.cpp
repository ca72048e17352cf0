// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/auth/verifier.h"

#include <algorithm>
#include <regex>

#include "core/crypto/ecdh_gcm.h"

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
    if (!rules.arg_choices.empty()) {
        for (std::size_t i = 0; i < args.size(); ++i) {
            if (std::find(rules.arg_choices.begin(), rules.arg_choices.end(), args[i]) ==
                rules.arg_choices.end()) {
                detail = "argument " + std::to_string(i) + " is not one of the action's choices";
                return false;
            }
        }
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

/// |a - b| without overflow: a timestamp is any 64-bit value a sender chose.
std::uint64_t distance(std::int64_t a, std::int64_t b) {
    return a < b ? static_cast<std::uint64_t>(b) - static_cast<std::uint64_t>(a)
                 : static_cast<std::uint64_t>(a) - static_cast<std::uint64_t>(b);
}

/// Why `got` is not the link's live challenge (section 7.4 of docs/protocol.md),
/// or nullopt when it is (or none is required).
std::optional<std::string> challenge_problem(const Nonce& got, const std::optional<Nonce>& live,
                                             bool required) {
    if (live) {
        if (!crypto::ct_equal(got, *live)) {
            return "challenge does not match the one issued to this link";
        }
    } else if (required) {
        return "no live challenge was issued to this link";
    }
    return std::nullopt;
}

std::string hex_of(const DeviceId& id) {
    return crypto::hex_encode(id);
}

}  // namespace

bool authenticates(protocol::ByteView frame, const protocol::HeaderDecode& header,
                   const DeviceRecord* device) {
    if (!header.header || device == nullptr || device->revoked || device->pending ||
        header.header->type == protocol::RequestType::Pair ||
        header.header->device_id != device->id) {
        return false;
    }
    const protocol::SealKeys keys = protocol::device_seal_keys(device->secret.view());
    return protocol::open_request(frame, keys.request.view()).has_value();
}

Decision verify(protocol::ByteView frame, const protocol::HeaderDecode& header,
                const VerifyInput& in) {
    Decision d;
    d.replay = in.replay;
    d.verified_at = in.now;

    auto refuse = [&](Status s, std::string detail) {
        d.status = s;
        d.detail = std::move(detail);
        return d;
    };

    if (!header.header) {
        return refuse(header.error.status, header.error.detail);
    }
    const protocol::RequestHeader& h = *header.header;
    d.header = h;
    if (h.type == protocol::RequestType::Pair) {
        return refuse(Status::Malformed, "a pair request is not a command");
    }
    if (in.device == nullptr) {
        return refuse(Status::UnknownDevice, "no paired device has id " + hex_of(h.device_id));
    }
    const DeviceRecord& dev = *in.device;
    if (dev.revoked) {
        return refuse(Status::Revoked, "device was revoked");
    }
    if (dev.pending) {
        return refuse(Status::UnknownDevice, "not paired yet: its pairing code was never used");
    }
    const protocol::SealKeys keys = protocol::device_seal_keys(dev.secret.view());
    const auto plain = protocol::open_request(frame, keys.request.view());
    if (!plain) {
        return refuse(Status::BadMac, "the request's seal does not open under the device's key");
    }
    d.sealed_reply = true;

    std::int64_t timestamp = 0;
    Nonce challenge{};
    std::uint32_t totp = 0;
    if (h.type == protocol::RequestType::Command) {
        auto body = protocol::decode_command_body(*plain);
        if (!body.body) {
            return refuse(Status::Malformed, body.error);
        }
        d.command = std::move(body.body);
        timestamp = d.command->timestamp;
        challenge = d.command->challenge;
        totp = d.command->totp;
    } else {
        auto body = protocol::decode_catalogue_body(*plain);
        if (!body.body) {
            return refuse(Status::Malformed, body.error);
        }
        d.catalogue = body.body;
        timestamp = d.catalogue->timestamp;
        challenge = d.catalogue->challenge;
        totp = d.catalogue->totp;
    }

    // Freshness rests on these two: a replayed frame is refused here, before any
    // clock check could give it a different answer.
    if (h.counter <= d.replay.last_counter) {
        return refuse(Status::Replayed, "counter " + std::to_string(h.counter) +
                                            " is not above the last accepted " +
                                            std::to_string(d.replay.last_counter));
    }
    if (auto why =
            challenge_problem(challenge, in.expected_challenge, in.policy.require_challenge)) {
        return refuse(Status::Replayed, std::move(*why));
    }

    std::int64_t now = in.now;
    const std::uint64_t apart = distance(timestamp, now);
    const auto skew = static_cast<std::uint64_t>(in.policy.max_clock_skew_seconds);
    if (apart > skew) {
        if (timestamp < now) {
            return refuse(Status::StaleTimestamp, "timestamp is " + std::to_string(apart) +
                                                      " s behind the Pi's clock (limit " +
                                                      std::to_string(skew) + " s)");
        }
        if (in.clock_synchronized) {
            return refuse(Status::StaleTimestamp, "timestamp is " + std::to_string(apart) +
                                                      " s ahead of the Pi's clock (limit " +
                                                      std::to_string(skew) + " s)");
        }
        const auto max_advance = static_cast<std::uint64_t>(in.policy.max_clock_advance_seconds);
        if (apart > max_advance) {
            return refuse(Status::StaleTimestamp,
                          "timestamp is " + std::to_string(apart) +
                              " s ahead of the Pi's unsynchronised clock, more than it may "
                              "advance (" +
                              std::to_string(max_advance) + " s)");
        }
        // An authentic, fresh frame vouches for the time: V moves forward to it.
        now = timestamp;
        d.clock_advanced_to = now;
        d.verified_at = now;
    }

    crypto::TotpParams tp = dev.totp;
    tp.window = in.policy.totp_window;
    const auto step = crypto::totp_verify(dev.secret.view(), totp, now, tp);
    if (!step) {
        return refuse(Status::BadTotp, "one-time code does not match the current time steps");
    }
    d.matched_step = step;

    if (d.command) {
        const protocol::CommandBody& c = *d.command;
        const auto rules = in.actions ? in.actions(c.action) : std::nullopt;
        if (!rules) {
            return refuse(Status::UnknownAction, "no action named '" + c.action + "'");
        }
        if (dev.permitted_actions.count(c.action) == 0) {
            return refuse(Status::NotPermitted, "device may not run '" + c.action + "'");
        }
        std::string arg_detail;
        if (!args_allowed(*rules, c.args, arg_detail)) {
            return refuse(Status::BadArguments, arg_detail);
        }
    }

    d.status = Status::Ok;
    d.detail = d.command ? "accepted" : "catalogue sent";
    d.replay.last_counter = h.counter;
    return d;
}

Decision verify_pair(protocol::ByteView frame, const protocol::HeaderDecode& header,
                     const PairInput& in) {
    Decision d;
    d.verified_at = in.now;
    auto refuse = [&](Status s, std::string detail) {
        d.status = s;
        d.detail = std::move(detail);
        return d;
    };
    if (!header.header) {
        return refuse(header.error.status, header.error.detail);
    }
    const protocol::RequestHeader& h = *header.header;
    d.header = h;
    if (h.type != protocol::RequestType::Pair) {
        return refuse(Status::Malformed, "not a pair request");
    }
    if (in.device == nullptr) {
        return refuse(Status::UnknownDevice,
                      "no device has id " + hex_of(h.device_id) + " (never added, or removed)");
    }
    if (in.device->revoked) {
        return refuse(Status::Revoked, "device was revoked");
    }
    if (!in.device->pending) {
        return refuse(Status::CodeUsed, "the device is already paired: its code was used");
    }
    if (h.counter != 0) {
        return refuse(Status::Malformed, "a pair request's counter must be 0");
    }
    const protocol::SealKeys keys = protocol::pair_seal_keys(in.code.view());
    const auto plain = protocol::open_request(frame, keys.request.view());
    if (!plain) {
        return refuse(Status::BadMac, "the pair request's seal does not open under the code");
    }
    d.sealed_reply = true;
    const auto body = protocol::decode_pair_body(*plain);
    if (!body.body) {
        return refuse(Status::Malformed, body.error);
    }
    if (auto why =
            challenge_problem(body.body->challenge, in.expected_challenge, in.require_challenge)) {
        return refuse(Status::Replayed, std::move(*why));
    }
    if (!crypto::p256_valid_public(body.body->phone_public)) {
        return refuse(Status::Malformed, "the phone's key is not a P-256 point");
    }
    if (in.now >= in.code_expires) {
        return refuse(Status::CodeExpired, "the pairing code expired " +
                                               std::to_string(distance(in.now, in.code_expires)) +
                                               " s ago");
    }
    const protocol::Fingerprint t =
        protocol::pair_transcript(in.pi_id, h.device_id, in.pi_public, body.body->phone_public);
    auto secret =
        protocol::pair_derive(in.pi_private.view(), body.body->phone_public, in.code.view(), t);
    if (!secret) {
        return refuse(Status::Malformed, "the phone's key is not a P-256 point");
    }
    d.pair = std::move(secret);
    d.status = Status::Ok;
    d.detail = "paired";
    return d;
}

}  // namespace bzs::core::auth
