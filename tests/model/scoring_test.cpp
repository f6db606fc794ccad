// The scoring unit (model/scoring): the segmentation and window policy every Δbits and dump is taken under.

#include "model/scoring/streams.h"

#include <gtest/gtest.h>

#include "model/base/error.h"
#include "model/scoring/cost_model.h"
#include "tests/support/test_support.h"

namespace ccc::model {
namespace {

TEST(Scoring, PolicyAndSegmentationFollowTheirDefinitions) {
  auto rotary = test::tiny_byte_lm(1, 64), learned = test::tiny_byte_lm(1, 64, /*learned=*/true);
  StreamOptions o;
  EXPECT_EQ(describe_policy(rotary.config, o), "rolling W=32");     // n_ctx / 2
  EXPECT_EQ(describe_policy(learned.config, o), "strided W=64 S=32");  // n_ctx, stride W / 2
  o.window = 16;
  EXPECT_EQ(describe_policy(rotary.config, o), "rolling W=16");
  o.strided = true;
  EXPECT_EQ(describe_policy(rotary.config, o), "strided W=16 S=8");
  EXPECT_EQ(auto_streams(0), 1);
  EXPECT_EQ(auto_streams(5000), 4);  // one stream per 1024 bytes
  EXPECT_EQ(auto_streams(int64_t{1} << 30), kMaxAutoStreams);
  EXPECT_EQ(resolve_streams(3, 10), 3);  // never more streams than bytes
  // stream i holds bytes [i·n/B, (i+1)·n/B): 10 bytes in 3 streams are 3 + 3 + 4, each behind a BOS
  StreamOptions three;
  three.streams = 3;
  const auto counts = stream_token_counts(rotary, "0123456789", three);
  EXPECT_EQ(counts, (std::vector<uint64_t>{3, 3, 4}));
  const auto toks = stream_tokens(rotary, "0123456789", three);
  EXPECT_EQ(toks[2].front(), rotary.config.bos_id);
  EXPECT_EQ(toks[2][1], '6');
  // Σ of the per-token bits is segmented_bits
  const std::string text = test::synthetic_text(3, 500);
  double sum = 0;
  for (const auto& s : segmented_token_bits(rotary, text, three))
    for (double b : s) sum += b;
  EXPECT_NEAR(segmented_bits(rotary, text, three), sum, 1e-9);
}

// Negative counts are errors naming the option, never "automatic" (issue 28, item 12).
TEST(Scoring, NegativeStreamsAndWindowsAreErrors) {
  auto m = test::tiny_byte_lm(1, 64);
  StreamOptions o;
  o.streams = -1;
  test::expect_error([&] { stream_token_counts(m, "some text", o); }, {"--streams -1", "0 (automatic) or more"});
  test::expect_error([&] { describe_policy(m.config, o); }, {"--streams -1"});
  o.streams = 0;
  o.window = -1;
  test::expect_error([&] { describe_policy(m.config, o); }, {"--window -1", "0 (automatic) or more"});
  test::expect_error([&] { segmented_bits(m, "some text", o); }, {"--window -1"});
}

}  // namespace
}  // namespace ccc::model
