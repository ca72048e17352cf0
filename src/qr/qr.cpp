// SPDX-License-Identifier: GPL-3.0-or-later
#include "qr/qr.h"

#include <qrencode.h>

#include <memory>
#include <string>

namespace bzs::qr {

namespace {
constexpr int kQuiet = 2;  // modules of light margin; 4 is the standard, 2 reads fine on screens
struct QrDeleter {
    void operator()(QRcode* q) const { QRcode_free(q); }
};
}  // namespace

Matrix encode(std::string_view text) {
    const std::string s(text);
    std::unique_ptr<QRcode, QrDeleter> q(
        QRcode_encodeData(static_cast<int>(s.size()),
                          reinterpret_cast<const unsigned char*>(s.data()), 0, QR_ECLEVEL_M));
    if (!q) {
        throw QrError("cannot encode a QR code of " + std::to_string(s.size()) + " bytes");
    }
    Matrix m;
    m.size = q->width;
    m.dark.resize(static_cast<std::size_t>(q->width) * static_cast<std::size_t>(q->width));
    for (std::size_t i = 0; i < m.dark.size(); ++i) {
        m.dark[i] = (q->data[i] & 1U) != 0;  // bit 0 is the module colour
    }
    return m;
}

std::string to_terminal(const Matrix& m, bool ansi) {
    std::string out;
    const int lo = -kQuiet;
    const int hi = m.size + kQuiet;
    for (int y = lo; y < hi; y += 2) {
        if (ansi) {
            out += "\x1b[30;47m";  // black on white
        }
        for (int x = lo; x < hi; ++x) {
            const bool top = m.at(x, y);
            const bool bottom = y + 1 < hi && m.at(x, y + 1);
            if (ansi) {
                // Foreground (black) paints dark modules.
                out += top ? (bottom ? "\u2588" : "\u2580") : (bottom ? "\u2584" : " ");
            } else {
                // Without colours, paint the light modules (reads right on dark terminals).
                out += !top ? (!bottom ? "\u2588" : "\u2580") : (!bottom ? "\u2584" : " ");
            }
        }
        if (ansi) {
            out += "\x1b[0m";
        }
        out += '\n';
    }
    return out;
}

std::string to_svg(const Matrix& m, int module_px) {
    const int total = (m.size + 2 * kQuiet) * module_px;
    std::string path;
    for (int y = 0; y < m.size; ++y) {
        for (int x = 0; x < m.size; ++x) {
            if (m.at(x, y)) {
                path += "M" + std::to_string((x + kQuiet) * module_px) + " " +
                        std::to_string((y + kQuiet) * module_px) + "h" + std::to_string(module_px) +
                        "v" + std::to_string(module_px) + "h-" + std::to_string(module_px) + "z";
            }
        }
    }
    const std::string dim = std::to_string(total);
    return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + dim + "\" height=\"" + dim +
           "\" viewBox=\"0 0 " + dim + " " + dim +
           "\" shape-rendering=\"crispEdges\" role=\"img\" aria-label=\"pairing QR code\">"
           "<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/><path fill=\"#000\" d=\"" +
           path + "\"/></svg>";
}

}  // namespace bzs::qr
