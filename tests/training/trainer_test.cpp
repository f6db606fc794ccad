#include "model/training/trainer.h"

#include "model/training/finetune.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <random>
#include <set>

#include "model/base/error.h"
#include "model/formats/loader.h"
#include "model/base/util.h"
#include "tests/support/test_support.h"
#include "tests/support/training_support.h"

namespace ccc::model {
namespace {

using test::synthetic_text;
using test::tiny_options;
using test::tiny_train_model_config;



class TrainerTest : public ::testing::Test {
 protected:
  void SetUp() override { write_file_atomic(dir_.file("toy.txt"), synthetic_text(1, 20000)); }
  std::vector<Corpus> corpora() { return {load_corpus(dir_.path(), "toy")}; }
  Transformer fresh(uint64_t seed = 1) {
    Transformer m(tiny_train_model_config());
    m->init_weights(seed);
    return m;
  }
  test::TempDir dir_;
};

TEST_F(TrainerTest, TrainingLowersValidationLoss) {
  Trainer t(fresh(), tiny_options(), corpora());
  const double before = t.validation_bpb();
  t.run(40);
  const double after = t.validation_bpb();
  EXPECT_GT(before, 7.0);  // untrained: about 8 bits per byte
  EXPECT_LT(after, before - 3.0) << "before " << before << " after " << after;
}

// finetune: the target first, then the references; before / after are the held-out head's bits per byte
// of the model as it was and as it ends (recomputed directly), the curve starts at step 0 and is taken
// every steps / curve_points steps, and eval_bytes 0 scores the whole held-out split.
TEST_F(TrainerTest, FinetuneReportsTheHeldOutHeadBeforeAndAfterAndACurve) {
  write_file_atomic(dir_.file("ref.txt"), synthetic_text(2, 20000));
  const auto cs = load_corpora(dir_.path(), {"ref", "toy"});
  auto m = fresh();
  auto held = [&](const Corpus& c, int64_t n) { return c.split(Split::kHeldOut).substr(0, static_cast<size_t>(n)); };
  const double toy_before = text_bits_per_byte(m, held(cs[1], 500), m->config().bos_id);
  FinetuneOptions o;
  o.train = tiny_options();
  o.train.steps = 20;
  o.eval_bytes = 500;
  o.curve_points = 4;
  std::vector<std::pair<std::string, int64_t>> evals;
  FinetuneCallbacks cb;
  cb.on_eval = [&](const std::string& phase, int64_t done, int64_t total) {
    if (done == total) evals.emplace_back(phase, total);
  };
  const auto r = finetune(m, cs, "toy", {}, o, cb);
  ASSERT_EQ(r.before.corpora, (std::vector<std::string>{"toy", "ref"}));
  EXPECT_EQ(r.before.bytes, (std::vector<int64_t>{500, 500}));
  EXPECT_DOUBLE_EQ(r.before.of("toy"), toy_before);
  EXPECT_DOUBLE_EQ(r.after.of("toy"), text_bits_per_byte(m, held(cs[1], 500), m->config().bos_id));
  EXPECT_DOUBLE_EQ(r.after.of("ref"), text_bits_per_byte(m, held(cs[0], 500), m->config().bos_id));
  EXPECT_LT(r.target_delta(), -1.0) << "an untrained model learns its target";
  ASSERT_EQ(r.curve.size(), 5u);
  for (size_t i = 0; i < r.curve.size(); ++i) EXPECT_EQ(r.curve[i].first, static_cast<int64_t>(5 * i));
  EXPECT_LT(r.curve.back().second, r.curve.front().second);
  EXPECT_EQ(evals, (std::vector<std::pair<std::string, int64_t>>{{"before", 1000}, {"after", 1000}}));
  const auto whole = held_out_bits(m, cs, 0);
  EXPECT_EQ(whole.bytes[0], static_cast<int64_t>(cs[0].split(Split::kHeldOut).size()));
  EXPECT_THROW(finetune(m, cs, "nope", {}, o), Error);
}

TEST_F(TrainerTest, SameConfigAndSeedGiveIdenticalWeights) {
  std::vector<std::map<std::string, torch::Tensor>> runs;
  for (int r = 0; r < 2; ++r) {
    Trainer t(fresh(), tiny_options(), corpora());
    t.run(10);
    runs.push_back(t.model()->state_dict());
  }
  for (const auto& [k, v] : runs[0]) EXPECT_TRUE(torch::equal(v, runs[1].at(k))) << k;
}

TEST_F(TrainerTest, ResumeEqualsUninterrupted) {
  Trainer full(fresh(), tiny_options(), corpora());
  full.run(8);
  Trainer first(fresh(), tiny_options(), corpora());
  first.run(4);
  first.save_state(dir_.file("state"));
  Trainer second(fresh(7), tiny_options(), corpora());  // different init: everything must come from the state
  second.load_state(dir_.file("state"));
  EXPECT_EQ(second.step(), 4);
  second.run(8);
  auto a = full.model()->state_dict(), b = second.model()->state_dict();
  for (const auto& [k, v] : a) EXPECT_TRUE(torch::equal(v, b.at(k))) << k;
}

TEST_F(TrainerTest, SubsetFinetuneLeavesOtherParametersBitIdentical) {
  auto m = fresh();
  std::map<std::string, torch::Tensor> before;
  for (const auto& [k, v] : m->state_dict()) before[k] = v.clone();
  auto attn = select_parameters(m, "attn");
  ASSERT_EQ(attn.size(), 8u);  // 2 layers x W_qkv, b_qkv, W_O, b_O
  Trainer t(m, tiny_options(), corpora(), attn);
  t.run(5);
  for (const auto& [k, v] : t.model()->state_dict()) {
    const bool trained = std::find(attn.begin(), attn.end(), k) != attn.end();
    if (trained) EXPECT_FALSE(torch::equal(v, before.at(k))) << k << " did not change";
    else EXPECT_TRUE(torch::equal(v, before.at(k))) << k << " changed but was frozen";
  }
  EXPECT_EQ(select_parameters(m, "layers:1").size(), 12u);
  EXPECT_THROW(select_parameters(m, "layers:5"), Error);
  EXPECT_THROW(select_parameters(m, "nothing.*"), Error);
}

TEST_F(TrainerTest, CheckpointFromAnotherConfigIsRejected) {
  Trainer t(fresh(), tiny_options(), corpora());
  t.run(2);
  t.save_state(dir_.file("state"));
  auto other_cfg = tiny_train_model_config();
  other_cfg.d_mlp = 64;
  Transformer other(other_cfg);
  Trainer u(other, tiny_options(), corpora());
  test::expect_error([&] { u.load_state(dir_.file("state")); }, {"d_mlp"});
}

TEST_F(TrainerTest, BadCorporaAreClearErrors) {
  EXPECT_THROW(load_corpus(dir_.path(), "missing"), Error);
  write_file_atomic(dir_.file("empty.txt"), "");
  test::expect_error([&] { load_corpus(dir_.path(), "empty"); }, {"empty.txt"});
}

TEST_F(TrainerTest, ConfigFileErrors) {
  nlohmann::json j = {{"model", tiny_train_model_config().to_json()}, {"train", tiny_options().to_json()}};
  j["model"]["d_head"] = 5;  // fine by itself
  j["model"]["n_kv_heads"] = 3;  // impossible: 4 heads in groups of 3
  write_file_atomic(dir_.file("bad.json"), j.dump());
  test::expect_error([&] { TrainConfigFile::load(dir_.file("bad.json")); }, {"bad.json"});
  nlohmann::json k = {{"model", tiny_train_model_config().to_json()}, {"train", tiny_options().to_json()}};
  k["train"]["learning_rate"] = 1.0;  // typo of "lr"
  write_file_atomic(dir_.file("typo.json"), k.dump());
  EXPECT_THROW(TrainConfigFile::load(dir_.file("typo.json")), Error);
  k = {{"model", tiny_train_model_config().to_json()}, {"train", tiny_options().to_json()}};
  k["train"]["seq_len"] = 64;  // beyond n_ctx 32
  write_file_atomic(dir_.file("long.json"), k.dump());
  EXPECT_THROW(TrainConfigFile::load(dir_.file("long.json")), Error);
}

TEST(LrScheduleTest, WarmupThenCosineToFloor) {
  TrainOptions o;
  o.steps = 100;
  o.warmup_steps = 10;
  o.lr = 1.0;
  o.min_lr = 0.1;
  EXPECT_DOUBLE_EQ(lr_at(o, 0), 0.1);
  EXPECT_DOUBLE_EQ(lr_at(o, 9), 1.0);
  EXPECT_DOUBLE_EQ(lr_at(o, 10), 1.0);
  EXPECT_NEAR(lr_at(o, 55), 0.55, 1e-12);
  EXPECT_NEAR(lr_at(o, 100), 0.1, 1e-12);
}


// ---- data augmentation -------------------------------------------------------------------------------------

std::vector<int64_t> row_of(const torch::Tensor& batch, int64_t r) {
  auto row = batch[r].contiguous();
  return std::vector<int64_t>(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.numel());
}

TEST_F(TrainerTest, SyntheticWindowsAreRepeatedPrintableStrings) {
  auto o = tiny_options();
  o.synthetic_prob = 1.0;
  o.synthetic_len = {4, 6};
  o.synthetic_repeats = {3, 3};
  o.bos_prob = 0.0;
  Trainer t(fresh(), o, corpora());
  auto batch = t.sample_batch(3, 0);
  for (int64_t r = 0; r < batch.size(0); ++r) {
    const auto row = row_of(batch, r);
    for (int64_t v : row) EXPECT_TRUE(v >= 32 && v <= 126) << v;
    // the row is a sequence of blocks x x x with |x| in [4, 6]: every block's copies agree
    size_t k = 0;
    while (k < row.size()) {
      size_t len = 0;
      for (size_t cand = 4; cand <= 6 && !len; ++cand) {
        bool ok = true;
        for (size_t i = 0; i < 2 * cand && k + cand + i < row.size() && ok; ++i) ok = row[k + cand + i] == row[k + i % cand];
        if (ok) len = cand;
      }
      ASSERT_GT(len, 0u) << "row " << r << " position " << k << " does not start a repeated block";
      k += 3 * len;
    }
  }
  // seeded: the same step gives the same batch, another step another one
  EXPECT_TRUE(torch::equal(batch, t.sample_batch(3, 0)));
  EXPECT_FALSE(torch::equal(batch, t.sample_batch(4, 0)));
}

TEST_F(TrainerTest, SmallAlphabetStringsUseThatManyDistinctBytesAndRepeat) {
  auto o = tiny_options();
  o.synthetic_prob = 1.0;
  o.synthetic_len = {12, 12};
  o.synthetic_repeats = {2, 2};
  o.synthetic_alphabet = {3, 3};
  o.bos_prob = 0.0;
  Trainer t(fresh(), o, corpora());
  auto batch = t.sample_batch(5, 0);
  std::set<std::set<int64_t>> alphabets;
  for (int64_t r = 0; r < batch.size(0); ++r) {
    const auto row = row_of(batch, r);
    for (size_t k = 0; k + 24 <= row.size(); k += 24) {  // blocks x x, |x| = 12
      std::set<int64_t> used;
      for (size_t i = 0; i < 12; ++i) {
        EXPECT_TRUE(row[k + i] >= 32 && row[k + i] <= 126) << row[k + i];
        EXPECT_EQ(row[k + 12 + i], row[k + i]) << "row " << r << " block at " << k;
        used.insert(row[k + i]);
      }
      EXPECT_LE(used.size(), 3u) << "row " << r << " block at " << k;
      EXPECT_GE(used.size(), 2u) << "row " << r << " block at " << k;  // 12 draws from 3: all equal is 1/3^11
      alphabets.insert(used);
    }
  }
  EXPECT_GT(alphabets.size(), 4u) << "each string draws its own alphabet";
  // another size: the same step's first string is over a different number of bytes
  o.synthetic_alphabet = {8, 8};
  Trainer t8(fresh(), o, corpora());
  std::set<int64_t> used8;
  const auto row8 = row_of(t8.sample_batch(5, 0), 0);
  for (size_t i = 0; i < 12; ++i) used8.insert(row8[i]);
  EXPECT_GT(used8.size(), 3u);
  EXPECT_LE(used8.size(), 8u);
}

TEST_F(TrainerTest, CopyAndCrlfAugmentationsOnlyTouchTheirWindows) {
  auto plain = tiny_options();
  plain.bos_prob = 0.0;
  auto aug = plain;
  aug.copy_prob = 1.0;
  aug.copy_len = {8, 8};
  Trainer a(fresh(), plain, corpora()), b(fresh(), aug, corpora());
  auto x = a.sample_batch(7, 0), y = b.sample_batch(7, 0);
  for (int64_t r = 0; r < x.size(0); ++r) {
    const auto u = row_of(x, r), v = row_of(y, r);
    // y = x with one 8-byte span overwritten by a copy of an earlier 8-byte span of y
    std::vector<size_t> diff;
    for (size_t i = 0; i < u.size(); ++i)
      if (u[i] != v[i]) diff.push_back(i);
    ASSERT_LE(diff.size(), 8u);
    if (diff.empty()) continue;
    bool found = false;
    for (size_t dst = diff.back() >= 7 ? diff.back() - 7 : 0; dst <= diff.front() && !found; ++dst)
      for (size_t src = 0; src + 8 <= dst && !found; ++src)
        found = std::equal(v.begin() + src, v.begin() + src + 8, v.begin() + dst);
    EXPECT_TRUE(found) << "row " << r << ": changed bytes are not a copy of an earlier span";
  }
  // copy_count: three 8-byte spans per window change at most 24 bytes, and more than one span's worth
  // somewhere
  auto many = aug;
  many.copy_count = {3, 3};
  Trainer m(fresh(), many, corpora());
  auto w3 = m.sample_batch(7, 0);
  size_t most = 0;
  for (int64_t r = 0; r < w3.size(0); ++r) {
    const auto u = row_of(x, r), v = row_of(w3, r);
    size_t changed = 0;
    for (size_t i = 0; i < u.size(); ++i) changed += u[i] != v[i];
    EXPECT_LE(changed, 24u) << "row " << r;
    most = std::max(most, changed);
  }
  EXPECT_GT(most, 8u);
  auto crlf = plain;
  crlf.crlf_prob = 1.0;
  Trainer c(fresh(), crlf, corpora());
  auto z = c.sample_batch(7, 0);
  for (int64_t r = 0; r < z.size(0); ++r) {
    const auto u = row_of(x, r), w = row_of(z, r);
    std::vector<int64_t> expanded;
    for (int64_t v : u) {
      if (v == '\n') expanded.push_back('\r');
      expanded.push_back(v);
    }
    expanded.resize(w.size());
    EXPECT_EQ(w, expanded) << "row " << r;
  }
  // no augmentation at probability 0: windows equal the plain sampler's (same draws as before the options existed)
  auto none = plain;
  none.synthetic_len = {2, 3};
  Trainer d(fresh(), none, corpora());
  EXPECT_TRUE(torch::equal(d.sample_batch(7, 0), x));
}

TEST_F(TrainerTest, AugmentationNeverTouchesEvaluation) {
  auto aug = tiny_options();
  aug.synthetic_prob = 0.5;
  aug.copy_prob = 1.0;
  aug.crlf_prob = 1.0;
  Trainer a(fresh(), tiny_options(), corpora()), b(fresh(), aug, corpora());
  EXPECT_EQ(a.validation_bpb(), b.validation_bpb());
}

TEST_F(TrainerTest, AugmentationOptionsAreValidated) {
  auto o = tiny_options();
  o.copy_prob = 1.5;
  EXPECT_THROW(o.validate(tiny_train_model_config()), Error);
  o = tiny_options();
  o.synthetic_len = {5, 2};
  EXPECT_THROW(o.validate(tiny_train_model_config()), Error);
  o = tiny_options();
  o.copy_len = {0};
  EXPECT_THROW(o.validate(tiny_train_model_config()), Error);
  o = tiny_options();
  o.copy_count = {0, 2};
  EXPECT_THROW(o.validate(tiny_train_model_config()), Error);
  for (const std::vector<int64_t>& bad : {std::vector<int64_t>{1, 4}, {2, 96}, {9, 8}, {95}}) {
    o = tiny_options();
    o.synthetic_alphabet = bad;
    EXPECT_THROW(o.validate(tiny_train_model_config()), Error);
  }
  // round trip through JSON keeps them
  o = tiny_options();
  o.synthetic_prob = 0.25;
  o.synthetic_repeats = {2, 9};
  o.copy_count = {2, 5};
  o.synthetic_alphabet = {4, 16};
  auto back = TrainOptions::from_json(o.to_json(), "test");
  EXPECT_EQ(back.synthetic_prob, 0.25);
  EXPECT_EQ(back.synthetic_repeats, (std::vector<int64_t>{2, 9}));
  EXPECT_EQ(back.copy_count, (std::vector<int64_t>{2, 5}));
  EXPECT_EQ(back.synthetic_alphabet, (std::vector<int64_t>{4, 16}));
}

}  // namespace
}  // namespace ccc::model
