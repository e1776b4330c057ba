// Helpers shared by all test binaries: where fixtures live, and skipping when ../shared is absent.
#pragma once
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

namespace edgeglm::test {

inline std::string shared_path(const std::string& rel) {
  return std::string(EDGEGLM_SHARED_DIR) + "/" + rel;
}
inline std::string data_path(const std::string& rel) {
  return std::string(EDGEGLM_TEST_DATA) + "/" + rel;
}
inline std::string bin_path(const std::string& name) {
  return std::string(EDGEGLM_BIN_DIR) + "/" + name;
}
inline std::string temp_path(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / "edgeglm_tests";
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

}  // namespace edgeglm::test

// Skips the current test with a message when a file from ../shared is missing.
#define EDGEGLM_REQUIRE_SHARED(rel)                                                      \
  do {                                                                                   \
    if (!std::filesystem::exists(::edgeglm::test::shared_path(rel)))                     \
      GTEST_SKIP() << "shared data not present: " << ::edgeglm::test::shared_path(rel); \
  } while (0)

namespace edgeglm::test {
// Models fetched by scripts/fetch_model.sh live in <repo>/models (git-ignored).
inline std::string model_path(const std::string& name) {
  return std::string(EDGEGLM_TEST_DATA) + "/../../models/" + name;
}
}  // namespace edgeglm::test
