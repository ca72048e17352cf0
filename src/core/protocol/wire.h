// SPDX-License-Identifier: GPL-3.0-or-later
// Big-endian writers and a bounds-checked reader shared by the frame codecs of
// core/protocol. Private to the module: not part of its interface.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "core/crypto/crypto.h"

namespace bzs::core::protocol::wire {

using crypto::Bytes;
using crypto::ByteView;

/// Appends `v` as `n` big-endian bytes (n <= 8).
inline void put_be(Bytes& b, std::uint64_t v, std::size_t n) {
    for (std::size_t i = n; i-- > 0;) {
        b.push_back(static_cast<std::uint8_t>(v >> (8U * i)));
    }
}
inline void put_bytes(Bytes& b, ByteView v) {
    b.insert(b.end(), v.begin(), v.end());
}
inline void put_text(Bytes& b, std::string_view s) {
    b.insert(b.end(), s.begin(), s.end());
}

/// Reads fields in order; every read reports failure instead of overrunning, and a
/// failed read leaves the position where it was.
class Reader {
  public:
    explicit Reader(ByteView b) : b_(b) {}
    [[nodiscard]] std::size_t pos() const { return pos_; }
    [[nodiscard]] std::size_t left() const { return b_.size() - pos_; }
    bool u8(std::uint8_t& v) {
        if (left() < 1) {
            return false;
        }
        v = b_[pos_++];
        return true;
    }
    /// `n` big-endian bytes into an integer type (two's complement for signed T).
    template <typename T>
    bool be(T& v, std::size_t n) {
        if (left() < n) {
            return false;
        }
        std::uint64_t x = 0;
        for (std::size_t i = 0; i < n; ++i) {
            x = (x << 8U) | b_[pos_++];
        }
        v = static_cast<T>(x);
        return true;
    }
    bool bytes(std::uint8_t* out, std::size_t n) {
        if (left() < n) {
            return false;
        }
        std::memcpy(out, b_.data() + pos_, n);
        pos_ += n;
        return true;
    }
    bool str(std::string& out, std::size_t n) {
        if (left() < n) {
            return false;
        }
        out.assign(reinterpret_cast<const char*>(b_.data() + pos_), n);
        pos_ += n;
        return true;
    }
    /// The unread rest, consumed.
    ByteView rest() {
        ByteView r = b_.subspan(pos_);
        pos_ = b_.size();
        return r;
    }

  private:
    ByteView b_;
    std::size_t pos_ = 0;
};

}  // namespace bzs::core::protocol::wire
