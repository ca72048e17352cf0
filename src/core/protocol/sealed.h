// SPDX-License-Identifier: GPL-3.0-or-later
// Protocol version 2 frames (docs/protocol.md, sections 3 and 5): a clear header with only
// what routing needs, and a body sealed with AES-256-GCM for one device. Requests
// (command, catalogue, pair) go phone -> Pi; responses (their results, and the
// plain refusal of a sender the Pi cannot authenticate) go Pi -> phone.
//
// Nonces are arguments so that vectors are reproducible; callers in production pass
// fresh CSPRNG bytes (crypto::random_bytes) for every frame.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/crypto/crypto.h"
#include "core/protocol/protocol.h"

namespace bzs::core::protocol {

inline constexpr std::uint8_t kVersion2 = 2;
inline constexpr std::size_t kRequestHeaderLen = 40;
inline constexpr std::size_t kResponseHeaderLen = 24;
inline constexpr std::size_t kSealTagLen = 16;
inline constexpr std::size_t kSealNonceLen = 12;
inline constexpr std::size_t kRefusalLen = 13;
inline constexpr std::size_t kP256PublicKeyLen = 65;
inline constexpr std::size_t kConfirmLen = 32;
/// Longest command output a result carries: 512 - 24 - 16 - 14.
inline constexpr std::size_t kMaxResultOutput = 458;

enum class RequestType : std::uint8_t { Command = 0x01, Catalogue = 0x02, Pair = 0x03 };
enum class ResponseType : std::uint8_t {
    CommandResult = 0x81,
    CatalogueResult = 0x82,
    PairResult = 0x83,
    Refusal = 0xFF,  ///< not sealed: the Pi could not authenticate the sender
};

using SealNonce = std::array<std::uint8_t, kSealNonceLen>;
using SealTag = std::array<std::uint8_t, kSealTagLen>;
using PublicKey = std::array<std::uint8_t, kP256PublicKeyLen>;

/// The clear header of a request; bytes [0, 40) are the GCM additional data.
struct RequestHeader {
    RequestType type = RequestType::Command;
    std::uint16_t length = 0;  ///< of the whole frame
    DeviceId device_id{};
    std::uint64_t counter = 0;  ///< 0 in a pair request
    SealNonce nonce{};
};

/// The keys of one device, derived from its secret S (HKDF-SHA256, salt
/// "bluezscript-v2").
struct SealKeys {
    crypto::SecretBytes request;   ///< info "bluezscript v2 request"
    crypto::SecretBytes response;  ///< info "bluezscript v2 response"
};
SealKeys device_seal_keys(ByteView secret);
/// The keys of a pairing code C (info "bluezscript v2 pair request/response").
SealKeys pair_seal_keys(ByteView code);

/// Whether the bytes written so far can be, are, or can never be a request frame;
/// decided from the header alone (its length field), for the transport's assembler.
enum class Progress {
    NeedMore,  ///< a prefix that can still become a frame
    Complete,  ///< exactly `length` bytes: decode it
    Invalid,   ///< can never be a valid frame: answer malformed now
};
Progress request_progress(ByteView prefix);

struct HeaderDecode {
    std::optional<RequestHeader> header;
    DecodeError error;  ///< malformed or unknown_version, with the rule broken
};
/// Checks the clear header of a complete frame, in the order of docs/protocol.md
/// section 3: size, version, type, minimum length of the type, length field.
HeaderDecode decode_request_header(ByteView frame);

/// Seals `plaintext` under `key` into a whole request frame. Throws
/// std::invalid_argument if the frame would exceed kMaxFrame.
Bytes seal_request(RequestType type, const DeviceId& device, std::uint64_t counter,
                   const SealNonce& nonce, ByteView key, ByteView plaintext);
/// The plaintext of a request whose header decoded, or nullopt when the tag does not
/// verify under `key`.
std::optional<Bytes> open_request(ByteView frame, ByteView key);
/// The last 16 bytes of a request: its GCM tag, which binds the response to it.
SealTag request_tag(ByteView frame);

/// Command plaintext: timestamp, challenge, TOTP code, action and arguments (the
/// naming and argument rules of protocol.h are unchanged).
struct CommandBody {
    std::int64_t timestamp = 0;
    Nonce challenge{};
    std::uint32_t totp = 0;
    std::string action;
    std::vector<std::string> args;
};
/// Catalogue plaintext: the same freshness fields and the first action wanted.
struct CatalogueBody {
    std::int64_t timestamp = 0;
    Nonce challenge{};
    std::uint32_t totp = 0;
    std::uint8_t first = 0;
};
/// Pair plaintext: the challenge and the phone's ephemeral P-256 public key.
struct PairBody {
    Nonce challenge{};
    PublicKey phone_public{};
};

/// Encoders; throw std::invalid_argument for a body that breaks a rule.
Bytes encode_body(const CommandBody& b);
Bytes encode_body(const CatalogueBody& b);
Bytes encode_body(const PairBody& b);

/// A decoded body, or why it is malformed (a sealed body that opened is
/// authenticated, so the Pi answers its faults sealed).
template <typename T>
struct BodyDecode {
    std::optional<T> body;
    std::string error;
};
BodyDecode<CommandBody> decode_command_body(ByteView plaintext);
BodyDecode<CatalogueBody> decode_catalogue_body(ByteView plaintext);
/// Checks the length only; whether the key is a P-256 point is the caller's check.
BodyDecode<PairBody> decode_pair_body(ByteView plaintext);

/// What every sealed response starts with.
struct ResponseHead {
    Status status = Status::Internal;
    std::int64_t pi_time = 0;  ///< the Pi's verification clock
    bool synced = false;       ///< the Pi's system clock is synchronised
};
inline constexpr std::uint8_t kFlagSynced = 0x01;

/// Seals a response: header with `counter` and `nonce`, body `head || rest` under
/// `key`, additional data = header || tag of the request it answers. Throws
/// std::invalid_argument if it would exceed kMaxFrame.
Bytes seal_response(ResponseType type, std::uint64_t counter, const SealTag& request_tag,
                    const SealNonce& nonce, ByteView key, const ResponseHead& head, ByteView rest);
/// A command result: exit code and output, cut to kMaxResultOutput bytes.
Bytes seal_command_result(std::uint64_t counter, const SealTag& request_tag, const SealNonce& nonce,
                          ByteView key, const ResponseHead& head, std::int32_t exit_code,
                          std::string_view output);
/// The plain refusal: version, type 0xFF, length 13, counter, status.
Bytes encode_refusal(std::uint64_t counter, Status status);

/// A response as a client reads it.
struct OpenedResponse {
    ResponseType type = ResponseType::Refusal;
    std::uint64_t counter = 0;
    bool authentic = false;  ///< opened under the key and bound to the request
    ResponseHead head;       ///< for a refusal: only status is set
    Bytes rest;              ///< the type's fields after the head (sealed types only)
};
struct ResponseOpen {
    std::optional<OpenedResponse> response;
    std::string error;  ///< why the bytes are not a response at all
};
/// Decodes any response frame; sealed ones are opened with `key` and `request_tag`.
/// A sealed frame that does not open is returned with authentic = false and nothing
/// else trusted. A client MUST show only authentic responses as the Pi's answer.
ResponseOpen open_response(ByteView frame, ByteView key, const SealTag& request_tag);

/// The exit code and output of an opened command result's `rest`.
struct CommandResult {
    std::int32_t exit_code = 0;
    std::string output;
};
std::optional<CommandResult> decode_command_result(ByteView rest);

}  // namespace bzs::core::protocol
