// SPDX-License-Identifier: GPL-3.0-or-later
// QR renderings of pairing URIs through libqrencode: for terminals (the CLI) and
// as inline SVG (the web UI). This folder is the only place libqrencode appears.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace bzs::qr {

class QrError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

/// A QR symbol as a square grid of modules (true = dark), without quiet zone.
struct Matrix {
    int size = 0;
    std::vector<bool> dark;
    [[nodiscard]] bool at(int x, int y) const {
        return x >= 0 && y >= 0 && x < size && y < size &&
               dark[static_cast<std::size_t>(y) * static_cast<std::size_t>(size) +
                    static_cast<std::size_t>(x)];
    }
};

/// Encodes `text` as 8-bit data at error-correction level M.
Matrix encode(std::string_view text);

/// Two module rows per text line with Unicode half blocks. With `ansi`, colours
/// force dark-on-light so phones read it on any terminal theme.
std::string to_terminal(const Matrix& m, bool ansi);

/// A self-contained SVG (no script, no external references).
std::string to_svg(const Matrix& m, int module_px = 4);

}  // namespace bzs::qr
