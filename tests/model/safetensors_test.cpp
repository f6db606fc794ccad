#include "model/formats/safetensors.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "model/base/error.h"
#include "model/base/util.h"
#include "tests/support/test_support.h"

namespace ccc::model {
namespace {

std::map<std::string, torch::Tensor> sample() {
  torch::manual_seed(3);
  return {{"a.weight", torch::randn({3, 5})}, {"b", torch::randn({7})}, {"scalar", torch::randn({})}};
}

// Builds a file from a header object and a data region, for malformed-input tests.
std::string raw_file(const nlohmann::json& header, size_t data_bytes, int64_t length_delta = 0) {
  std::string h = header.dump();
  uint64_t n = h.size() + length_delta;
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  return out + h + std::string(data_bytes, '\0');
}

void expect_parse_error(const std::string& bytes, const std::string& needle) {
  test::expect_error([&] { SafetensorsFile::parse(bytes, "bad.safetensors"); }, {"bad.safetensors", needle});
}

TEST(SafetensorsTest, RoundTripF32WithMetadata) {
  auto t = sample();
  auto f = SafetensorsFile::parse(safetensors_serialize(t, {{"k", "v"}}), "mem");
  EXPECT_EQ(f.metadata().at("k"), "v");
  ASSERT_EQ(f.entries().size(), 3u);
  for (const auto& [k, v] : t) EXPECT_TRUE(torch::equal(f.get_float(k), v)) << k;
}

TEST(SafetensorsTest, RoundTripHalfPrecisionRoundsOnce) {
  auto t = sample();
  for (auto [dt, tdt] : {std::pair{SaveDtype::kF16, torch::kFloat16}, std::pair{SaveDtype::kBF16, torch::kBFloat16}}) {
    auto f = SafetensorsFile::parse(safetensors_serialize(t, {}, dt), "mem");
    for (const auto& [k, v] : t) EXPECT_TRUE(torch::equal(f.get_float(k), v.to(tdt).to(torch::kFloat32))) << k;
  }
}

TEST(SafetensorsTest, HeaderIsPaddedTo8Bytes) {
  auto bytes = safetensors_serialize(sample());
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  EXPECT_EQ((8 + n) % 8, 0u);
}

TEST(SafetensorsTest, RejectsTruncatedFile) {
  auto bytes = safetensors_serialize(sample());
  expect_parse_error(bytes.substr(0, 5), "need at least 8");
  expect_parse_error(bytes.substr(0, bytes.size() - 4), "run past the data region");
}

TEST(SafetensorsTest, RejectsHeaderLengthBeyondFile) {
  nlohmann::json h = {{"x", {{"dtype", "F32"}, {"shape", {1}}, {"data_offsets", {0, 4}}}}};
  expect_parse_error(raw_file(h, 4, 1000), "runs past the end of the file");
  std::string huge(16, '\0');
  huge[7] = 0x7f;
  expect_parse_error(huge, "exceeds");
}

TEST(SafetensorsTest, RejectsBadJson) {
  std::string bytes = raw_file(nlohmann::json::object(), 0);
  bytes[8] = '[';  // break the object
  bytes += "}}}";
  expect_parse_error(bytes, "JSON");
}

TEST(SafetensorsTest, RejectsOverlappingOffsets) {
  nlohmann::json h = {{"x", {{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {0, 8}}}},
                      {"y", {{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {4, 12}}}}};
  expect_parse_error(raw_file(h, 12), "overlap");
}

// An empty tensor between two overlapping ones must not hide the overlap (checking only neighbours did);
// a zero-size tensor with a huge other dimension is refused, not handed to LibTorch.
TEST(SafetensorsTest, RejectsOverlapsBehindEmptyTensorsAndHugeDimensions) {
  nlohmann::json h = {{"a", {{"dtype", "F32"}, {"shape", {4}}, {"data_offsets", {0, 16}}}},
                      {"e", {{"dtype", "F32"}, {"shape", {0}}, {"data_offsets", {4, 4}}}},
                      {"b", {{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {8, 16}}}}};
  expect_parse_error(raw_file(h, 16), "'a' and 'b' overlap");
  nlohmann::json nested = {{"a", {{"dtype", "F32"}, {"shape", {4}}, {"data_offsets", {0, 16}}}},
                           {"b", {{"dtype", "F32"}, {"shape", {1}}, {"data_offsets", {4, 8}}}},
                           {"c", {{"dtype", "F32"}, {"shape", {1}}, {"data_offsets", {12, 16}}}}};
  expect_parse_error(raw_file(nested, 16), "overlap");
  nlohmann::json fine = {{"a", {{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {0, 8}}}},
                         {"e", {{"dtype", "F32"}, {"shape", {0}}, {"data_offsets", {4, 4}}}},
                         {"b", {{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {8, 16}}}}};
  EXPECT_NO_THROW(SafetensorsFile::parse(raw_file(fine, 16), "mem"));
  nlohmann::json huge = {{"z", {{"dtype", "F32"}, {"shape", {0, uint64_t{1} << 63}}, {"data_offsets", {0, 0}}}}};
  expect_parse_error(raw_file(huge, 0), "absurdly large");
}

TEST(SafetensorsTest, RejectsOutOfRangeOffsets) {
  nlohmann::json h = {{"x", {{"dtype", "F32"}, {"shape", {4}}, {"data_offsets", {8, 24}}}}};
  expect_parse_error(raw_file(h, 16), "tensor 'x'");
  nlohmann::json rev = {{"x", {{"dtype", "F32"}, {"shape", {0}}, {"data_offsets", {8, 4}}}}};
  expect_parse_error(raw_file(rev, 16), "reversed");
}

TEST(SafetensorsTest, RejectsDtypeShapeMismatch) {
  nlohmann::json h = {{"x", {{"dtype", "F16"}, {"shape", {3}}, {"data_offsets", {0, 8}}}}};
  expect_parse_error(raw_file(h, 8), "needs 6");
  nlohmann::json u = {{"x", {{"dtype", "F12"}, {"shape", {1}}, {"data_offsets", {0, 2}}}}};
  expect_parse_error(raw_file(u, 2), "unknown dtype");
  nlohmann::json neg = {{"x", {{"dtype", "F32"}, {"shape", {-1}}, {"data_offsets", {0, 4}}}}};
  expect_parse_error(raw_file(neg, 4), "non-negative");
}

TEST(SafetensorsTest, ShardedIndexLoadsEveryShard) {
  test::TempDir dir;
  auto t = sample();
  safetensors_save(dir.file("s1.safetensors"), {{"a.weight", t["a.weight"]}});
  safetensors_save(dir.file("s2.safetensors"), {{"b", t["b"]}, {"scalar", t["scalar"]}});
  nlohmann::json idx = {{"weight_map", {{"a.weight", "s1.safetensors"}, {"b", "s2.safetensors"}, {"scalar", "s2.safetensors"}}}};
  write_file_atomic(dir.file("model.safetensors.index.json"), idx.dump());
  auto loaded = load_safetensors_float(dir.file("model.safetensors.index.json"));
  ASSERT_EQ(loaded.size(), 3u);
  for (const auto& [k, v] : t) EXPECT_TRUE(torch::equal(loaded.at(k), v)) << k;
  idx["weight_map"]["missing"] = "s1.safetensors";
  write_file_atomic(dir.file("bad.index.json"), idx.dump());
  EXPECT_THROW(load_safetensors_float(dir.file("bad.index.json")), Error);
}

}  // namespace
}  // namespace ccc::model
