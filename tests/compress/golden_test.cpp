// Golden streams: data/golden/<model>.ccc were written once by each shipped byte-level model from
// data/golden/original.txt; they must decode to it forever (a change to the kernels, the window policy,
// the segmentation or the container that breaks an old file fails here). Beside the payload digests of
// LmCodecTest.CompressedBytesOfTheShippedModelsDoNotDrift, which pin what the encoder writes today.

#include <string>

#include <gtest/gtest.h>

#include "compress/lm_codec.h"
#include "model/base/util.h"
#include "model/formats/loader.h"
#include "model/kernels/decode_attention.h"
#include "tests/support/test_support.h"

namespace ccc::compress {
namespace {

TEST(GoldenStreams, EveryShippedByteModelDecodesItsCommittedFile) {
  const std::string dir = std::string(CCC_SOURCE_DIR) + "/data/golden/";
  const std::string original = read_file(dir + "original.txt");
  ASSERT_EQ(original.size(), 1158u);
  for (const char* name : {"ccc-attn1", "ccc-attn2", "ccc-byte-xs", "ccc-byte-s", "ccc-byte-m", "ccc-byte-l",
                           "ccc-byte-l-icl", "ccc-byte-l1024"}) {
    SCOPED_TRACE(name);
    auto m = model::load_model(std::string(CCC_SOURCE_DIR) + "/data/models/" + name);
    if (model::decode_attention_path(m.config.d_head) != "avx2") GTEST_SKIP() << "streams recorded on the avx2 path";
    const std::string packed = read_file(dir + name + ".ccc");
    EXPECT_LE(packed.size(), 4096u);
    EXPECT_EQ(lm_decompress(m, packed, dir + name + ".ccc"), original);
  }
}

// A golden file decodes only with its own model: another shipped model is refused by the fingerprint,
// before any byte is produced.
TEST(GoldenStreams, AnotherModelIsRefused) {
  const std::string dir = std::string(CCC_SOURCE_DIR) + "/data/golden/";
  auto m = model::load_model(std::string(CCC_SOURCE_DIR) + "/data/models/ccc-byte-xs");
  test::expect_error([&] { lm_decompress(m, read_file(dir + "ccc-byte-s.ccc"), "ccc-byte-s.ccc"); },
                     {"ccc-byte-s.ccc", "another model"});
}

}  // namespace
}  // namespace ccc::compress
