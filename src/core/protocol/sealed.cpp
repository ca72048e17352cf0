// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/protocol/sealed.h"

#include <algorithm>
#include <stdexcept>

#include "core/crypto/ecdh_gcm.h"
#include "core/protocol/names.h"
#include "core/protocol/wire.h"

namespace bzs::core::protocol {

namespace {

constexpr std::string_view kSalt = "bluezscript-v2";

// Smallest plaintexts: command with a one-byte action and no arguments; catalogue;
// pair (challenge and an uncompressed point).
constexpr std::size_t kCommandBodyMin = 8 + kNonceLen + 4 + 1 + 1 + 1;
constexpr std::size_t kCatalogueBodyLen = 8 + kNonceLen + 4 + 1;
constexpr std::size_t kPairBodyLen = kNonceLen + kP256PublicKeyLen;
constexpr std::size_t kHeadLen = 1 + 8 + 1;

ByteView as_bytes(std::string_view s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

crypto::SecretBytes derive(ByteView ikm, std::string_view info) {
    return crypto::hkdf(crypto::Hash::Sha256, ikm, as_bytes(kSalt), as_bytes(info), 32);
}

// The frame length a request of this type must have at least.
std::size_t min_frame(std::uint8_t type) {
    switch (static_cast<RequestType>(type)) {
        case RequestType::Command:
            return kRequestHeaderLen + kCommandBodyMin + kSealTagLen;
        case RequestType::Catalogue:
            return kRequestHeaderLen + kCatalogueBodyLen + kSealTagLen;
        case RequestType::Pair:
            return kRequestHeaderLen + kPairBodyLen + kSealTagLen;
    }
    return 0;
}

bool known_request_type(std::uint8_t t) {
    return t == static_cast<std::uint8_t>(RequestType::Command) ||
           t == static_cast<std::uint8_t>(RequestType::Catalogue) ||
           t == static_cast<std::uint8_t>(RequestType::Pair);
}

HeaderDecode header_fail(Status s, std::string detail) {
    HeaderDecode r;
    r.error = {s, std::move(detail)};
    return r;
}

template <typename T>
BodyDecode<T> body_fail(const std::string& detail) {
    BodyDecode<T> r;
    r.error = detail;
    return r;
}

}  // namespace

SealKeys device_seal_keys(ByteView secret) {
    return {derive(secret, "bluezscript v2 request"), derive(secret, "bluezscript v2 response")};
}

SealKeys pair_seal_keys(ByteView code) {
    return {derive(code, "bluezscript v2 pair request"),
            derive(code, "bluezscript v2 pair response")};
}

Progress request_progress(ByteView prefix) {
    if (prefix.size() > kMaxFrame) {
        return Progress::Invalid;
    }
    if (!prefix.empty() && prefix[0] != kVersion2) {
        return Progress::Invalid;
    }
    if (prefix.size() >= 2 && !known_request_type(prefix[1])) {
        return Progress::Invalid;
    }
    if (prefix.size() < 4) {
        return Progress::NeedMore;
    }
    const std::size_t length = (static_cast<std::size_t>(prefix[2]) << 8U) | prefix[3];
    if (length > kMaxFrame || length < min_frame(prefix[1]) || prefix.size() > length) {
        return Progress::Invalid;
    }
    return prefix.size() == length ? Progress::Complete : Progress::NeedMore;
}

HeaderDecode decode_request_header(ByteView frame) {
    if (frame.size() > kMaxFrame) {
        return header_fail(Status::Malformed, "frame is " + std::to_string(frame.size()) +
                                                  " bytes; the maximum is " +
                                                  std::to_string(kMaxFrame));
    }
    if (frame.size() < 2) {
        return header_fail(Status::Malformed,
                           "frame is " + std::to_string(frame.size()) + " bytes");
    }
    if (frame[0] != kVersion2) {
        return header_fail(Status::UnknownVersion,
                           "protocol version " + std::to_string(frame[0]) + " is not supported");
    }
    if (!known_request_type(frame[1])) {
        return header_fail(Status::Malformed,
                           "frame type " + std::to_string(frame[1]) + " is not a request");
    }
    const std::size_t need = min_frame(frame[1]);
    if (frame.size() < need) {
        return header_fail(Status::Malformed, "frame is " + std::to_string(frame.size()) +
                                                  " bytes; this type needs at least " +
                                                  std::to_string(need));
    }
    wire::Reader r(frame);
    RequestHeader h;
    std::uint8_t skip = 0;
    std::uint8_t type = 0;
    r.u8(skip);
    r.u8(type);
    h.type = static_cast<RequestType>(type);
    r.be(h.length, 2);
    r.bytes(h.device_id.data(), h.device_id.size());
    r.be(h.counter, 8);
    r.bytes(h.nonce.data(), h.nonce.size());
    if (h.length != frame.size()) {
        return header_fail(Status::Malformed, "length field says " + std::to_string(h.length) +
                                                  " bytes; the frame is " +
                                                  std::to_string(frame.size()));
    }
    HeaderDecode out;
    out.header = h;
    return out;
}

Bytes seal_request(RequestType type, const DeviceId& device, std::uint64_t counter,
                   const SealNonce& nonce, ByteView key, ByteView plaintext) {
    const std::size_t length = kRequestHeaderLen + plaintext.size() + kSealTagLen;
    if (length > kMaxFrame) {
        throw std::invalid_argument("request does not fit in " + std::to_string(kMaxFrame) +
                                    " bytes");
    }
    Bytes b;
    b.reserve(length);
    b.push_back(kVersion2);
    b.push_back(static_cast<std::uint8_t>(type));
    wire::put_be(b, length, 2);
    wire::put_bytes(b, device);
    wire::put_be(b, counter, 8);
    wire::put_bytes(b, nonce);
    const Bytes sealed = crypto::aes256gcm_seal(key, nonce, b, plaintext);
    wire::put_bytes(b, sealed);
    return b;
}

std::optional<Bytes> open_request(ByteView frame, ByteView key) {
    if (frame.size() < kRequestHeaderLen + kSealTagLen) {
        return std::nullopt;
    }
    return crypto::aes256gcm_open(key, frame.subspan(28, kSealNonceLen),
                                  frame.first(kRequestHeaderLen), frame.subspan(kRequestHeaderLen));
}

SealTag request_tag(ByteView frame) {
    SealTag t{};
    if (frame.size() >= kSealTagLen) {
        std::copy(frame.end() - static_cast<std::ptrdiff_t>(kSealTagLen), frame.end(), t.begin());
    }
    return t;
}

Bytes encode_body(const CommandBody& body) {
    if (!valid_action_name(body.action)) {
        throw std::invalid_argument("invalid action name");
    }
    if (body.args.size() > kMaxArgs) {
        throw std::invalid_argument("too many arguments");
    }
    Bytes b;
    wire::put_be(b, static_cast<std::uint64_t>(body.timestamp), 8);
    wire::put_bytes(b, body.challenge);
    wire::put_be(b, body.totp, 4);
    b.push_back(static_cast<std::uint8_t>(body.action.size()));
    wire::put_text(b, body.action);
    b.push_back(static_cast<std::uint8_t>(body.args.size()));
    for (const auto& a : body.args) {
        if (a.size() > kMaxArgLen || !valid_argument(a)) {
            throw std::invalid_argument("invalid argument");
        }
        b.push_back(static_cast<std::uint8_t>(a.size()));
        wire::put_text(b, a);
    }
    return b;
}

Bytes encode_body(const CatalogueBody& body) {
    Bytes b;
    wire::put_be(b, static_cast<std::uint64_t>(body.timestamp), 8);
    wire::put_bytes(b, body.challenge);
    wire::put_be(b, body.totp, 4);
    b.push_back(body.first);
    return b;
}

Bytes encode_body(const PairBody& body) {
    Bytes b;
    wire::put_bytes(b, body.challenge);
    wire::put_bytes(b, body.phone_public);
    return b;
}

BodyDecode<CommandBody> decode_command_body(ByteView plaintext) {
    wire::Reader r(plaintext);
    CommandBody c;
    std::uint8_t action_len = 0;
    if (!r.be(c.timestamp, 8) || !r.bytes(c.challenge.data(), c.challenge.size()) ||
        !r.be(c.totp, 4) || !r.u8(action_len)) {
        return body_fail<CommandBody>("body ends inside its fixed fields");
    }
    if (action_len == 0 || action_len > kMaxActionLen) {
        return body_fail<CommandBody>("action name length " + std::to_string(action_len) +
                                      " is outside 1.." + std::to_string(kMaxActionLen));
    }
    if (!r.str(c.action, action_len)) {
        return body_fail<CommandBody>("body ends inside the action name");
    }
    if (!valid_action_name(c.action)) {
        return body_fail<CommandBody>("action name breaks the rule: " +
                                      std::string(kActionNameRule));
    }
    std::uint8_t argc = 0;
    if (!r.u8(argc)) {
        return body_fail<CommandBody>("body ends before the argument count");
    }
    if (argc > kMaxArgs) {
        return body_fail<CommandBody>("argument count " + std::to_string(argc) + " exceeds " +
                                      std::to_string(kMaxArgs));
    }
    for (std::uint8_t i = 0; i < argc; ++i) {
        std::uint8_t len = 0;
        std::string arg;
        if (!r.u8(len) || !r.str(arg, len)) {
            return body_fail<CommandBody>("body ends inside argument " + std::to_string(i));
        }
        if (len > kMaxArgLen) {
            return body_fail<CommandBody>("argument " + std::to_string(i) + " is longer than " +
                                          std::to_string(kMaxArgLen) + " bytes");
        }
        if (!valid_argument(arg)) {
            return body_fail<CommandBody>("argument " + std::to_string(i) +
                                          " contains control characters");
        }
        c.args.push_back(std::move(arg));
    }
    if (r.left() != 0) {
        return body_fail<CommandBody>(std::to_string(r.left()) + " bytes after the last argument");
    }
    BodyDecode<CommandBody> out;
    out.body = std::move(c);
    return out;
}

BodyDecode<CatalogueBody> decode_catalogue_body(ByteView plaintext) {
    if (plaintext.size() != kCatalogueBodyLen) {
        return body_fail<CatalogueBody>("catalogue body is " + std::to_string(plaintext.size()) +
                                        " bytes, not " + std::to_string(kCatalogueBodyLen));
    }
    wire::Reader r(plaintext);
    CatalogueBody c;
    r.be(c.timestamp, 8);
    r.bytes(c.challenge.data(), c.challenge.size());
    r.be(c.totp, 4);
    r.u8(c.first);
    BodyDecode<CatalogueBody> out;
    out.body = c;
    return out;
}

BodyDecode<PairBody> decode_pair_body(ByteView plaintext) {
    if (plaintext.size() != kPairBodyLen) {
        return body_fail<PairBody>("pair body is " + std::to_string(plaintext.size()) +
                                   " bytes, not " + std::to_string(kPairBodyLen));
    }
    wire::Reader r(plaintext);
    PairBody p;
    r.bytes(p.challenge.data(), p.challenge.size());
    r.bytes(p.phone_public.data(), p.phone_public.size());
    BodyDecode<PairBody> out;
    out.body = p;
    return out;
}

Bytes seal_response(ResponseType type, std::uint64_t counter, const SealTag& request_tag,
                    const SealNonce& nonce, ByteView key, const ResponseHead& head, ByteView rest) {
    const std::size_t length = kResponseHeaderLen + kHeadLen + rest.size() + kSealTagLen;
    if (length > kMaxFrame) {
        throw std::invalid_argument("response does not fit in " + std::to_string(kMaxFrame) +
                                    " bytes");
    }
    Bytes b;
    b.reserve(length);
    b.push_back(kVersion2);
    b.push_back(static_cast<std::uint8_t>(type));
    wire::put_be(b, length, 2);
    wire::put_be(b, counter, 8);
    wire::put_bytes(b, nonce);
    Bytes aad = b;
    wire::put_bytes(aad, request_tag);
    Bytes plain;
    plain.reserve(kHeadLen + rest.size());
    plain.push_back(static_cast<std::uint8_t>(head.status));
    wire::put_be(plain, static_cast<std::uint64_t>(head.pi_time), 8);
    plain.push_back(head.synced ? kFlagSynced : 0);
    wire::put_bytes(plain, rest);
    wire::put_bytes(b, crypto::aes256gcm_seal(key, nonce, aad, plain));
    return b;
}

Bytes seal_command_result(std::uint64_t counter, const SealTag& request_tag, const SealNonce& nonce,
                          ByteView key, const ResponseHead& head, std::int32_t exit_code,
                          std::string_view output) {
    Bytes rest;
    wire::put_be(rest, static_cast<std::uint32_t>(exit_code), 4);
    wire::put_text(rest, output.substr(0, kMaxResultOutput));
    return seal_response(ResponseType::CommandResult, counter, request_tag, nonce, key, head, rest);
}

Bytes encode_refusal(std::uint64_t counter, Status status) {
    Bytes b;
    b.push_back(kVersion2);
    b.push_back(static_cast<std::uint8_t>(ResponseType::Refusal));
    wire::put_be(b, kRefusalLen, 2);
    wire::put_be(b, counter, 8);
    b.push_back(static_cast<std::uint8_t>(status));
    return b;
}

ResponseOpen open_response(ByteView frame, ByteView key, const SealTag& request_tag) {
    ResponseOpen out;
    if (frame.size() < kRefusalLen || frame.size() > kMaxFrame) {
        out.error = "a response is 13..512 bytes, not " + std::to_string(frame.size());
        return out;
    }
    if (frame[0] != kVersion2) {
        out.error = "response of protocol version " + std::to_string(frame[0]);
        return out;
    }
    const std::uint8_t type = frame[1];
    const std::size_t length = (static_cast<std::size_t>(frame[2]) << 8U) | frame[3];
    if (length != frame.size()) {
        out.error = "length field says " + std::to_string(length) + " bytes; the frame is " +
                    std::to_string(frame.size());
        return out;
    }
    OpenedResponse r;
    wire::Reader rd(frame.subspan(4));
    rd.be(r.counter, 8);
    if (type == static_cast<std::uint8_t>(ResponseType::Refusal)) {
        const auto status =
            frame.size() == kRefusalLen ? status_from_byte(frame[12]) : std::nullopt;
        if (!status) {
            out.error = "not a valid plain refusal";
            return out;
        }
        r.type = ResponseType::Refusal;
        r.head.status = *status;
        out.response = std::move(r);
        return out;
    }
    if (type != static_cast<std::uint8_t>(ResponseType::CommandResult) &&
        type != static_cast<std::uint8_t>(ResponseType::CatalogueResult) &&
        type != static_cast<std::uint8_t>(ResponseType::PairResult)) {
        out.error = "frame type " + std::to_string(type) + " is not a response";
        return out;
    }
    if (frame.size() < kResponseHeaderLen + kHeadLen + kSealTagLen) {
        out.error = "sealed response of " + std::to_string(frame.size()) + " bytes";
        return out;
    }
    r.type = static_cast<ResponseType>(type);
    Bytes aad(frame.begin(), frame.begin() + kResponseHeaderLen);
    wire::put_bytes(aad, request_tag);
    const auto plain = crypto::aes256gcm_open(key, frame.subspan(12, kSealNonceLen), aad,
                                              frame.subspan(kResponseHeaderLen));
    if (!plain) {
        out.response = std::move(r);  // authentic = false: nothing else is trusted
        return out;
    }
    const auto status = status_from_byte((*plain)[0]);
    if (!status) {
        out.error = "status byte " + std::to_string((*plain)[0]) + " is not a status";
        return out;
    }
    wire::Reader pr(*plain);
    std::uint8_t skip = 0;
    std::uint8_t flags = 0;
    pr.u8(skip);
    pr.be(r.head.pi_time, 8);
    pr.u8(flags);
    r.head.status = *status;
    r.head.synced = (flags & kFlagSynced) != 0;
    const ByteView rest = pr.rest();
    r.rest.assign(rest.begin(), rest.end());
    r.authentic = true;
    out.response = std::move(r);
    return out;
}

std::optional<CommandResult> decode_command_result(ByteView rest) {
    wire::Reader r(rest);
    CommandResult c;
    std::uint32_t code = 0;
    if (!r.be(code, 4) || r.left() > kMaxResultOutput) {
        return std::nullopt;
    }
    c.exit_code = static_cast<std::int32_t>(code);
    const ByteView out = r.rest();
    c.output.assign(reinterpret_cast<const char*>(out.data()), out.size());
    return c;
}

}  // namespace bzs::core::protocol
