// SPDX-License-Identifier: GPL-3.0-or-later
// The external test vectors (BZS_VECTORS_DIR, the shared vectors/ folder). A missing
// folder or file is a failure, never a skip: the vectors are what make the tests
// that read them meaningful.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

namespace bzs::test {

/// Parses the vectors file `name` (relative to the folder) into `out`. Fatal failures
/// end only this function: call it in ASSERT_NO_FATAL_FAILURE.
inline void load_vectors(const std::string& name, nlohmann::json& out) {
    const std::filesystem::path dir = BZS_VECTORS_DIR;
    ASSERT_TRUE(std::filesystem::is_directory(dir)) << "vectors folder missing: " << dir;
    const auto file = dir / name;
    ASSERT_TRUE(std::filesystem::is_regular_file(file)) << "vectors file missing: " << file;
    std::ifstream in(file);
    ASSERT_NO_THROW(out = nlohmann::json::parse(in)) << file;
}

}  // namespace bzs::test
