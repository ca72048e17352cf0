// SPDX-License-Identifier: GPL-3.0-or-later
// The action catalogue a device reads over BLE (docs/protocol.md,
// section 6): the actions it may run now, with what the phone needs to draw a
// button and ask for arguments. Sent in pages that each fit one response frame.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/crypto/crypto.h"
#include "core/protocol/protocol.h"

namespace bzs::core::protocol {

/// What arguments an action takes, as the phone should ask for them.
enum class ArgKind : std::uint8_t {
    None = 0,     ///< no arguments
    Free = 1,     ///< free text (the Pi checks any pattern it did not send)
    Pattern = 2,  ///< each argument must fully match `pattern`
    Choices = 3,  ///< each argument is one of `choices`
};

inline constexpr std::size_t kMaxDescriptionBytes = 100;
inline constexpr std::size_t kMaxCataloguePattern = 128;
inline constexpr std::size_t kMaxChoices = 8;
inline constexpr std::size_t kMaxChoiceBytes = 32;
/// A page's entries share what is left of a response frame: 512 - 24 - 10 - 16 - 3.
inline constexpr std::size_t kCataloguePageBudget = 459;
/// At most this many actions are listed (the count is one byte).
inline constexpr std::size_t kMaxCatalogueEntries = 255;

struct CatalogueEntry {
    std::string name;
    std::string description;  ///< UTF-8; cut to kMaxDescriptionBytes at a character boundary
    bool confirm = false;     ///< the owner wants a confirmation tap
    ArgKind kind = ArgKind::None;
    std::uint8_t max_args = 0;
    std::string pattern;               ///< Pattern only
    std::vector<std::string> choices;  ///< Choices only: 1..8 of 1..32 bytes
};

struct CataloguePage {
    std::uint8_t total = 0;  ///< actions the device may run
    std::uint8_t first = 0;  ///< index of entries[0]
    std::vector<CatalogueEntry> entries;
};

/// The wire form of one entry after the rules above are applied (description cut,
/// a pattern over kMaxCataloguePattern sent as Free). Throws std::invalid_argument
/// for a name or choices that break the rules (the registry refuses such actions).
Bytes encode_catalogue_entry(const CatalogueEntry& e);

/// The `rest` of a catalogue result: total, first, count and as many entries from
/// `all[first]` on as fit kCataloguePageBudget. `first` past the end gives count 0.
Bytes encode_catalogue_page(const std::vector<CatalogueEntry>& all, std::uint8_t first);

struct CatalogueDecode {
    std::optional<CataloguePage> page;
    std::string error;
};
CatalogueDecode decode_catalogue_page(crypto::ByteView rest);

}  // namespace bzs::core::protocol
