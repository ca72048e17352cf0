// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/protocol/protocol.h"

#include <algorithm>
#include <cstring>

#include "core/protocol/names.h"
#include "core/protocol/wire.h"

namespace bzs::core::protocol {

namespace {

using wire::put_be;
using wire::Reader;

constexpr std::string_view kHkdfSalt = "bluezscript-v1";
constexpr std::string_view kInfoRequest = "bluezscript v1 request mac";
constexpr std::string_view kInfoResponse = "bluezscript v1 response mac";

// Fixed part of a request before the action name: version, type, device id,
// counter, timestamp, challenge, totp, action length.
constexpr std::size_t kRequestFixed = 1 + 1 + kDeviceIdLen + 8 + 8 + kNonceLen + 4 + 1;
constexpr std::size_t kRequestMin = kRequestFixed + 1 + 1 + kMacLen;
// Fixed part of a response before the output bytes.
constexpr std::size_t kResponseFixed = 1 + 1 + 8 + kTagLen + 1 + 4 + 2;

ByteView as_bytes(std::string_view s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

DecodeResult fail(Status s, std::string detail) {
    DecodeResult r;
    r.error = {s, std::move(detail)};
    return r;
}

}  // namespace

std::string_view status_name(Status s) {
    switch (s) {
        case Status::Ok:
            return "ok";
        case Status::ActionFailed:
            return "action_failed";
        case Status::ActionTimeout:
            return "action_timeout";
        case Status::ActionBusy:
            return "action_busy";
        case Status::ActionStartFailed:
            return "action_start_failed";
        case Status::Malformed:
            return "malformed";
        case Status::UnknownVersion:
            return "unknown_version";
        case Status::UnknownDevice:
            return "unknown_device";
        case Status::Revoked:
            return "revoked";
        case Status::BadMac:
            return "bad_mac";
        case Status::StaleTimestamp:
            return "stale_timestamp";
        case Status::BadTotp:
            return "bad_totp";
        case Status::ReusedTotp:
            return "reused_totp";
        case Status::Replayed:
            return "replayed";
        case Status::RateLimited:
            return "rate_limited";
        case Status::UnknownAction:
            return "unknown_action";
        case Status::NotPermitted:
            return "not_permitted";
        case Status::BadArguments:
            return "bad_arguments";
        case Status::CodeUsed:
            return "code_used";
        case Status::CodeExpired:
            return "code_expired";
        case Status::Internal:
            return "internal";
    }
    return "unknown";
}

std::string_view status_message(Status s) {
    switch (s) {
        case Status::Ok:
            return "the action ran and succeeded";
        case Status::ActionFailed:
            return "the action ran and failed";
        case Status::ActionTimeout:
            return "the action was stopped at its timeout";
        case Status::ActionBusy:
            return "the action is already running";
        case Status::ActionStartFailed:
            return "the action could not be started";
        case Status::Malformed:
            return "the command frame is malformed";
        case Status::UnknownVersion:
            return "the command uses an unknown protocol version";
        case Status::UnknownDevice:
            return "this device is not paired with the Pi";
        case Status::Revoked:
            return "this device's pairing was revoked";
        case Status::BadMac:
            return "the command's MAC did not verify";
        case Status::StaleTimestamp:
            return "the command's timestamp is too far from the Pi's clock";
        case Status::BadTotp:
            return "the one-time code is wrong";
        case Status::ReusedTotp:
            return "the one-time code was already used";
        case Status::Replayed:
            return "the command was replayed (old counter or wrong challenge)";
        case Status::RateLimited:
            return "too many attempts; try again later";
        case Status::UnknownAction:
            return "the Pi has no such action";
        case Status::NotPermitted:
            return "this device may not run that action";
        case Status::BadArguments:
            return "the action's arguments were refused";
        case Status::CodeUsed:
            return "the pairing code was already used";
        case Status::CodeExpired:
            return "the pairing code has expired";
        case Status::Internal:
            return "the Pi could not record the command; nothing ran";
    }
    return "unknown status";
}

std::optional<Status> status_from_byte(std::uint8_t b) {
    const auto s = static_cast<Status>(b);
    if (status_name(s) == "unknown") {
        return std::nullopt;
    }
    return s;
}

DecodeResult decode_request(ByteView frame) {
    if (frame.size() > kMaxFrame) {
        return fail(Status::Malformed, "frame is " + std::to_string(frame.size()) +
                                           " bytes; the maximum is " + std::to_string(kMaxFrame));
    }
    if (frame.size() < 2) {
        return fail(Status::Malformed, "frame is " + std::to_string(frame.size()) + " bytes");
    }
    if (frame[0] != kVersion) {
        return fail(Status::UnknownVersion,
                    "protocol version " + std::to_string(frame[0]) + " is not supported");
    }
    if (frame[1] != kTypeRequest) {
        return fail(Status::Malformed,
                    "frame type " + std::to_string(frame[1]) + " is not a request");
    }
    if (frame.size() < kRequestMin) {
        return fail(Status::Malformed, "frame is " + std::to_string(frame.size()) +
                                           " bytes; a request is at least " +
                                           std::to_string(kRequestMin));
    }
    Request req;
    Reader r(frame.first(frame.size() - kMacLen));
    std::uint8_t skip = 0;
    std::uint8_t action_len = 0;
    r.u8(skip);
    r.u8(skip);
    r.bytes(req.device_id.data(), kDeviceIdLen);
    r.be(req.counter, 8);
    r.be(req.timestamp, 8);
    r.bytes(req.challenge.data(), kNonceLen);
    r.be(req.totp, 4);
    r.u8(action_len);
    if (action_len == 0 || action_len > kMaxActionLen) {
        return fail(Status::Malformed, "action name length " + std::to_string(action_len) +
                                           " is outside 1.." + std::to_string(kMaxActionLen));
    }
    if (!r.str(req.action, action_len)) {
        return fail(Status::Malformed, "frame ends inside the action name");
    }
    if (!valid_action_name(req.action)) {
        return fail(Status::Malformed, "action name has characters outside [A-Za-z0-9._-]");
    }
    std::uint8_t argc = 0;
    if (!r.u8(argc)) {
        return fail(Status::Malformed, "frame ends before the argument count");
    }
    if (argc > kMaxArgs) {
        return fail(Status::Malformed, "argument count " + std::to_string(argc) + " exceeds " +
                                           std::to_string(kMaxArgs));
    }
    for (std::uint8_t i = 0; i < argc; ++i) {
        std::uint8_t len = 0;
        std::string arg;
        if (!r.u8(len) || !r.str(arg, len)) {
            return fail(Status::Malformed, "frame ends inside argument " + std::to_string(i));
        }
        if (len > kMaxArgLen) {
            return fail(Status::Malformed, "argument " + std::to_string(i) + " is longer than " +
                                               std::to_string(kMaxArgLen) + " bytes");
        }
        if (!valid_argument(arg)) {
            return fail(Status::Malformed,
                        "argument " + std::to_string(i) + " contains control characters");
        }
        req.args.push_back(std::move(arg));
    }
    if (r.left() != 0) {
        return fail(Status::Malformed,
                    std::to_string(r.left()) + " unexpected bytes before the MAC");
    }
    std::copy(frame.end() - static_cast<std::ptrdiff_t>(kMacLen), frame.end(), req.mac.begin());
    DecodeResult out;
    out.mac_input_len = frame.size() - kMacLen;
    out.request = std::move(req);
    return out;
}

Bytes encode_request(const Request& req, ByteView request_key) {
    if (!valid_action_name(req.action)) {
        throw std::invalid_argument("invalid action name");
    }
    if (req.args.size() > kMaxArgs) {
        throw std::invalid_argument("too many arguments");
    }
    Bytes b;
    b.reserve(kMaxFrame);
    b.push_back(kVersion);
    b.push_back(kTypeRequest);
    b.insert(b.end(), req.device_id.begin(), req.device_id.end());
    put_be(b, req.counter, 8);
    put_be(b, static_cast<std::uint64_t>(req.timestamp), 8);
    b.insert(b.end(), req.challenge.begin(), req.challenge.end());
    put_be(b, req.totp, 4);
    b.push_back(static_cast<std::uint8_t>(req.action.size()));
    b.insert(b.end(), req.action.begin(), req.action.end());
    b.push_back(static_cast<std::uint8_t>(req.args.size()));
    for (const auto& a : req.args) {
        if (a.size() > kMaxArgLen || !valid_argument(a)) {
            throw std::invalid_argument("invalid argument");
        }
        b.push_back(static_cast<std::uint8_t>(a.size()));
        b.insert(b.end(), a.begin(), a.end());
    }
    if (b.size() + kMacLen > kMaxFrame) {
        throw std::invalid_argument("request does not fit in " + std::to_string(kMaxFrame) +
                                    " bytes");
    }
    Bytes mac = crypto::hmac(crypto::Hash::Sha256, request_key, b);
    b.insert(b.end(), mac.begin(), mac.end());
    return b;
}

Bytes encode_response(const Response& resp, ByteView response_key) {
    Bytes b;
    b.reserve(kMaxFrame);
    b.push_back(kVersion);
    b.push_back(kTypeResponse);
    put_be(b, resp.counter, 8);
    b.insert(b.end(), resp.tag.begin(), resp.tag.end());
    b.push_back(static_cast<std::uint8_t>(resp.status));
    put_be(b, static_cast<std::uint32_t>(resp.exit_code), 4);
    const std::size_t room = kMaxFrame - kResponseFixed - kMacLen;
    const std::size_t n = std::min(resp.output.size(), room);
    put_be(b, static_cast<std::uint16_t>(n), 2);
    b.insert(b.end(), resp.output.begin(), resp.output.begin() + static_cast<std::ptrdiff_t>(n));
    if (response_key.empty()) {
        b.insert(b.end(), kMacLen, 0);
    } else {
        Bytes mac = crypto::hmac(crypto::Hash::Sha256, response_key, b);
        b.insert(b.end(), mac.begin(), mac.end());
    }
    return b;
}

ResponseDecode decode_response(ByteView frame, ByteView response_key) {
    ResponseDecode out;
    if (frame.size() > kMaxFrame || frame.size() < kResponseFixed + kMacLen) {
        out.error = "response is " + std::to_string(frame.size()) + " bytes";
        return out;
    }
    if (frame[0] != kVersion || frame[1] != kTypeResponse) {
        out.error = "not a version 1 response";
        return out;
    }
    Reader r(frame.first(frame.size() - kMacLen));
    Response resp;
    std::uint8_t skip = 0;
    std::uint8_t status = 0;
    std::uint32_t exit_code = 0;
    std::uint16_t len = 0;
    r.u8(skip);
    r.u8(skip);
    r.be(resp.counter, 8);
    r.bytes(resp.tag.data(), kTagLen);
    r.u8(status);
    r.be(exit_code, 4);
    r.be(len, 2);
    if (!r.str(resp.output, len) || r.left() != 0) {
        out.error = "output length does not match the frame";
        return out;
    }
    const auto st = status_from_byte(status);
    if (!st) {
        out.error = "unknown status code " + std::to_string(status);
        return out;
    }
    resp.status = *st;
    resp.exit_code = static_cast<std::int32_t>(exit_code);
    std::copy(frame.end() - static_cast<std::ptrdiff_t>(kMacLen), frame.end(), resp.mac.begin());
    if (!response_key.empty()) {
        Bytes mac =
            crypto::hmac(crypto::Hash::Sha256, response_key, frame.first(frame.size() - kMacLen));
        out.mac_ok = crypto::ct_equal(mac, resp.mac);
    }
    out.response = std::move(resp);
    return out;
}

DeviceKeys derive_keys(ByteView secret) {
    DeviceKeys k;
    k.request_mac =
        crypto::hkdf(crypto::Hash::Sha256, secret, as_bytes(kHkdfSalt), as_bytes(kInfoRequest), 32);
    k.response_mac = crypto::hkdf(crypto::Hash::Sha256, secret, as_bytes(kHkdfSalt),
                                  as_bytes(kInfoResponse), 32);
    return k;
}

std::vector<Bytes> fragment(ByteView frame, std::size_t att_mtu) {
    // One ATT notification carries MTU - 3 bytes; one of them is our header.
    const std::size_t chunk = std::max<std::size_t>(att_mtu, 23) - 3 - 1;
    std::vector<Bytes> out;
    std::size_t pos = 0;
    std::uint8_t index = 0;
    do {
        const std::size_t n = std::min(chunk, frame.size() - pos);
        const bool last = pos + n == frame.size();
        Bytes f;
        f.reserve(n + 1);
        f.push_back(static_cast<std::uint8_t>((last ? 0x80U : 0U) | (index & 0x7FU)));
        f.insert(f.end(), frame.begin() + static_cast<std::ptrdiff_t>(pos),
                 frame.begin() + static_cast<std::ptrdiff_t>(pos + n));
        out.push_back(std::move(f));
        pos += n;
        ++index;
    } while (pos < frame.size());
    return out;
}

Reassembler::State Reassembler::push(ByteView fragment) {
    if (done_) {
        reset();
    }
    if (fragment.empty()) {
        return State::Error;
    }
    const std::uint8_t index = fragment[0] & 0x7FU;
    const bool last = (fragment[0] & 0x80U) != 0;
    if (index == 0) {
        // A new response begins; drop any partial one a lost notification left.
        reset();
    } else if (index != next_) {
        reset();
        return State::Error;
    }
    if (buf_.size() + fragment.size() - 1 > kMaxFrame) {
        reset();
        return State::Error;
    }
    buf_.insert(buf_.end(), fragment.begin() + 1, fragment.end());
    next_ = static_cast<std::uint8_t>(index + 1);
    if (last) {
        done_ = true;
        return State::Done;
    }
    return State::NeedMore;
}

void Reassembler::reset() {
    buf_.clear();
    next_ = 0;
    done_ = false;
}

}  // namespace bzs::core::protocol
