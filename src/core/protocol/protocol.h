// SPDX-License-Identifier: GPL-3.0-or-later
// The BlueZscript wire protocol: what every part shares — sizes, GATT
// identifiers, status codes — and the fragments Result notifications are cut
// into. The frames are in sealed.h, the pairing exchange in pair_exchange.h, the
// catalogue in catalogue.h, links in link.h. docs/protocol.md is the normative
// description; spec/vectors/ holds vectors other clients test against.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/crypto/crypto.h"

namespace bzs::core::protocol {

using crypto::Bytes;
using crypto::ByteView;

/// Largest GATT attribute value; every frame fits in one.
inline constexpr std::size_t kMaxFrame = 512;
inline constexpr std::size_t kDeviceIdLen = 16;
inline constexpr std::size_t kNonceLen = 16;
inline constexpr std::size_t kMaxActionLen = 64;
inline constexpr std::size_t kMaxArgs = 8;
inline constexpr std::size_t kMaxArgLen = 128;

/// GATT UUIDs (128-bit, lower case as BlueZ expects).
inline constexpr std::string_view kServiceUuid = "1b324b66-1eca-4b75-ac85-5f5515fb2900";
inline constexpr std::string_view kInfoUuid = "1b324b66-1eca-4b75-ac85-5f5515fb2901";
inline constexpr std::string_view kChallengeUuid = "1b324b66-1eca-4b75-ac85-5f5515fb2902";
inline constexpr std::string_view kCommandUuid = "1b324b66-1eca-4b75-ac85-5f5515fb2903";
inline constexpr std::string_view kResultUuid = "1b324b66-1eca-4b75-ac85-5f5515fb2904";

using DeviceId = std::array<std::uint8_t, kDeviceIdLen>;
using Nonce = std::array<std::uint8_t, kNonceLen>;

/// Outcome codes carried in responses and written to the audit log.
/// 0x00-0x0F: the action ran (or could not be started); 0x10-: the request was refused.
enum class Status : std::uint8_t {
    Ok = 0x00,                 ///< action ran and exited 0
    ActionFailed = 0x01,       ///< action ran and exited non-zero or was killed by a signal
    ActionTimeout = 0x02,      ///< action killed at its timeout
    ActionBusy = 0x03,         ///< same action already running and not concurrent
    ActionStartFailed = 0x04,  ///< exec failed
    Malformed = 0x10,
    UnknownVersion = 0x11,
    UnknownDevice = 0x12,
    Revoked = 0x13,
    BadMac = 0x14,
    StaleTimestamp = 0x15,
    BadTotp = 0x16,
    Replayed = 0x18,  ///< counter not above the last one, or challenge wrong/absent
    RateLimited = 0x19,
    UnknownAction = 0x1A,
    NotPermitted = 0x1B,
    BadArguments = 0x1C,
    CodeUsed = 0x1D,     ///< pairing: the device's one-time code was already used
    CodeExpired = 0x1E,  ///< pairing: the code's window has ended
    Internal = 0x1F,     ///< the Pi could not persist state; nothing ran
};
/// Stable snake_case name ("bad_mac"), used in the audit log, CLI and docs.
std::string_view status_name(Status s);
/// A sentence for people ("the command's MAC did not verify").
std::string_view status_message(Status s);
std::optional<Status> status_from_byte(std::uint8_t b);

/// Why a frame could not be decoded (Status::Malformed or UnknownVersion).
struct DecodeError {
    Status status = Status::Malformed;
    std::string detail;  ///< e.g. "action name length 0"; never contains secrets
};

/// Notifications carry at most (ATT MTU - 3) bytes: a response longer than that is
/// sent as fragments, each prefixed with one byte: bit 7 = last, bits 0-6 = index.
std::vector<Bytes> fragment(ByteView frame, std::size_t att_mtu);

/// Reassembles fragments in order; returns the frame once the last one arrived.
class Reassembler {
  public:
    enum class State { NeedMore, Done, Error };
    State push(ByteView fragment);
    [[nodiscard]] const Bytes& frame() const { return buf_; }
    void reset();

  private:
    Bytes buf_;
    std::uint8_t next_ = 0;
    bool done_ = false;
};

}  // namespace bzs::core::protocol
