// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/protocol/protocol.h"

#include <algorithm>
#include <cstring>

namespace bzs::core::protocol {

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
