// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/protocol/catalogue.h"

#include <algorithm>
#include <stdexcept>

#include "core/protocol/names.h"
#include "core/protocol/wire.h"

namespace bzs::core::protocol {

namespace {

// Cuts UTF-8 text to at most `max` bytes without splitting a character.
std::string cut_utf8(const std::string& s, std::size_t max) {
    if (s.size() <= max) {
        return s;
    }
    std::size_t end = max;
    while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0U) == 0x80U) {
        --end;  // s[end] continues a character: cut before that character starts
    }
    return s.substr(0, end);
}

CatalogueDecode fail(std::string e) {
    CatalogueDecode d;
    d.error = std::move(e);
    return d;
}

}  // namespace

Bytes encode_catalogue_entry(const CatalogueEntry& e) {
    if (!valid_action_name(e.name)) {
        throw std::invalid_argument("invalid action name in the catalogue");
    }
    Bytes b;
    b.push_back(static_cast<std::uint8_t>(e.name.size()));
    wire::put_text(b, e.name);
    const std::string desc = cut_utf8(e.description, kMaxDescriptionBytes);
    b.push_back(static_cast<std::uint8_t>(desc.size()));
    wire::put_text(b, desc);
    b.push_back(e.confirm ? 1 : 0);
    ArgKind kind = e.kind;
    if (kind == ArgKind::Pattern &&
        (e.pattern.empty() || e.pattern.size() > kMaxCataloguePattern)) {
        kind = ArgKind::Free;
    }
    b.push_back(static_cast<std::uint8_t>(kind));
    b.push_back(kind == ArgKind::None ? 0 : e.max_args);
    if (kind == ArgKind::Pattern) {
        b.push_back(static_cast<std::uint8_t>(e.pattern.size()));
        wire::put_text(b, e.pattern);
    } else if (kind == ArgKind::Choices) {
        if (e.choices.empty() || e.choices.size() > kMaxChoices) {
            throw std::invalid_argument("an action offers 1..8 choices");
        }
        b.push_back(static_cast<std::uint8_t>(e.choices.size()));
        for (const auto& c : e.choices) {
            if (c.empty() || c.size() > kMaxChoiceBytes) {
                throw std::invalid_argument("a choice is 1..32 bytes");
            }
            b.push_back(static_cast<std::uint8_t>(c.size()));
            wire::put_text(b, c);
        }
    }
    return b;
}

Bytes encode_catalogue_page(const std::vector<CatalogueEntry>& all, std::uint8_t first) {
    const std::size_t total = std::min(all.size(), kMaxCatalogueEntries);
    Bytes entries;
    std::size_t count = 0;
    for (std::size_t i = first; i < total; ++i) {
        const Bytes e = encode_catalogue_entry(all[i]);
        if (entries.size() + e.size() > kCataloguePageBudget) {
            break;
        }
        wire::put_bytes(entries, e);
        ++count;
    }
    Bytes b;
    b.push_back(static_cast<std::uint8_t>(total));
    b.push_back(first);
    b.push_back(static_cast<std::uint8_t>(count));
    wire::put_bytes(b, entries);
    return b;
}

CatalogueDecode decode_catalogue_page(crypto::ByteView rest) {
    wire::Reader r(rest);
    CataloguePage page;
    std::uint8_t count = 0;
    if (!r.u8(page.total) || !r.u8(page.first) || !r.u8(count)) {
        return fail("catalogue page shorter than its 3-byte head");
    }
    if (static_cast<std::size_t>(page.first) + count > page.total) {
        return fail("catalogue page lists entries past its total");
    }
    for (std::uint8_t i = 0; i < count; ++i) {
        CatalogueEntry e;
        std::uint8_t len = 0;
        std::uint8_t flags = 0;
        std::uint8_t kind = 0;
        if (!r.u8(len) || !r.str(e.name, len) || !valid_action_name(e.name)) {
            return fail("catalogue entry " + std::to_string(i) + ": bad action name");
        }
        if (!r.u8(len) || len > kMaxDescriptionBytes || !r.str(e.description, len) ||
            !utf8_decode(e.description)) {
            return fail("catalogue entry " + std::to_string(i) + ": bad description");
        }
        if (!r.u8(flags) || !r.u8(kind) || !r.u8(e.max_args) || kind > 3 || e.max_args > kMaxArgs) {
            return fail("catalogue entry " + std::to_string(i) + ": bad flags or argument kind");
        }
        e.confirm = (flags & 1U) != 0;
        e.kind = static_cast<ArgKind>(kind);
        if (e.kind == ArgKind::Pattern) {
            if (!r.u8(len) || len == 0 || len > kMaxCataloguePattern || !r.str(e.pattern, len) ||
                !utf8_decode(e.pattern)) {
                return fail("catalogue entry " + std::to_string(i) + ": bad pattern");
            }
        } else if (e.kind == ArgKind::Choices) {
            std::uint8_t n = 0;
            if (!r.u8(n) || n == 0 || n > kMaxChoices) {
                return fail("catalogue entry " + std::to_string(i) + ": bad choice count");
            }
            for (std::uint8_t k = 0; k < n; ++k) {
                std::string c;
                if (!r.u8(len) || len == 0 || len > kMaxChoiceBytes || !r.str(c, len) ||
                    !utf8_decode(c)) {
                    return fail("catalogue entry " + std::to_string(i) + ": bad choice");
                }
                e.choices.push_back(std::move(c));
            }
        }
        page.entries.push_back(std::move(e));
    }
    if (r.left() != 0) {
        return fail(std::to_string(r.left()) + " bytes after the last catalogue entry");
    }
    CatalogueDecode d;
    d.page = std::move(page);
    return d;
}

}  // namespace bzs::core::protocol
