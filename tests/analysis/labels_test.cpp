#include "analysis/labels.h"
#include "analysis/positions.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

#include "model/base/error.h"
#include "model/base/util.h"
#include "tests/support/test_support.h"

namespace ccc::analysis {
namespace {

// One row per byte of the input (a byte model's rows), plus a BOS row first.
std::map<std::string, std::string> labels_of(const std::string& text, int64_t window = 1 << 20,
                                             const std::vector<int64_t>& starts = {}) {
  std::vector<int64_t> offs{-1}, ss{0};
  for (size_t i = 0; i < text.size(); ++i) {
    offs.push_back(static_cast<int64_t>(i));
    ss.push_back(starts.empty() ? 0 : starts[i]);
  }
  std::map<std::string, std::string> out;
  for (const auto& f : auto_features(text, offs, ss, window)) {
    EXPECT_EQ(f.on[0], 0) << f.name << " is on for BOS";
    std::string s;
    for (size_t r = 1; r < f.on.size(); ++r) s += f.on[r] ? '1' : '.';
    out[f.name] = s;
  }
  return out;
}

TEST(Labels, DefinitionsOnAHandCheckedText) {
  const std::string t = "Hi (a \"b\" 3.5)! Yes\nok";
  // expected strings from an independent Python implementation of the README definitions
  const auto L = labels_of(t);
  EXPECT_EQ(L.at("space"), "..1..1...1.....1......");
  EXPECT_EQ(L.at("newline"), "...................1..");
  EXPECT_EQ(L.at("digit"), "..........1.1.........");
  EXPECT_EQ(L.at("upper"), "1...............1.....");
  EXPECT_EQ(L.at("lower"), ".1..1..1.........11.11");
  EXPECT_EQ(L.at("word_start"), "1...1..1........1...1.");
  EXPECT_EQ(L.at("line_start"), "1...................1.");
  EXPECT_EQ(L.at("in_quotes"), ".......11.............");
  EXPECT_EQ(L.at("in_parens"), "....1111111111........");
  EXPECT_EQ(L.at("after_sentence_end"), "................1.....");
  EXPECT_EQ(L.at("in_number"), "..........111.........");
  EXPECT_EQ(L.at("punct"), "...1..1.1..1.11.......");
  EXPECT_EQ(L.at("non_ascii"), "......................");
}

// after_sentence_end is computed in one pass; it equals the definition (walk back over the whitespace run)
// on random text full of long whitespace runs, where the walk-back was O(run) per row.
TEST(Labels, AfterSentenceEndMatchesTheWalkBackDefinition) {
  std::mt19937 rng(3);
  const std::string alphabet = "ab.!?  \n\t\r";
  std::string t;
  for (int i = 0; i < 4000; ++i) {
    if (rng() % 50 == 0) t.append(rng() % 300, ' ');
    t += alphabet[rng() % alphabet.size()];
  }
  auto white = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  std::string want;
  for (size_t o = 0; o < t.size(); ++o) {
    bool after = false;
    if (!white(t[o])) {
      int64_t k = static_cast<int64_t>(o) - 1;
      while (k >= 0 && white(t[k])) --k;
      after = k < static_cast<int64_t>(o) - 1 && k >= 0 && (t[k] == '.' || t[k] == '!' || t[k] == '?');
    }
    want += after ? '1' : '.';
  }
  EXPECT_EQ(labels_of(t).at("after_sentence_end"), want);
}

// Position masks: includes are a union (every byte without one), excludes are removed, features come from
// the same definitions as the unit analysis; unknown features and bad regexes are named.
TEST(Positions, ByteMasksFromFeaturesRegexesLabelsAndExcludes) {
  const std::string t = "ab 12 ab\ncd 12";
  auto str = [](const std::vector<uint8_t>& on) {
    std::string s;
    for (auto b : on) s += b ? '1' : '.';
    return s;
  };
  PositionSpec all;
  EXPECT_EQ(str(byte_mask(t, all, 1, 0)), std::string(t.size(), '1'));
  EXPECT_EQ(all.describe(), "all");
  PositionSpec digits;
  digits.features = {"digit"};
  EXPECT_EQ(str(byte_mask(t, digits, 1, 0)), "...11.......11");
  PositionSpec mix;
  mix.regexes = {"ab"};
  mix.features = {"newline"};
  mix.exclude_regexes = {"^a"};  // PCRE2 without multiline: only the first byte
  EXPECT_EQ(str(byte_mask(t, mix, 1, 0)), ".1....111.....");
  EXPECT_EQ(mix.describe(), "feature newline, regex ab, excluding regex ^a");
  PositionSpec rest;
  rest.exclude_features = {"space"};
  EXPECT_EQ(str(byte_mask(t, rest, 1, 0)), "11.11.11111.11");
  test::TempDir dir;
  write_file_atomic(dir.file("l.csv"), "feature,start,end\nspan,9,11\n");
  PositionSpec labels;
  labels.labels = {dir.file("l.csv")};
  EXPECT_EQ(str(byte_mask(t, labels, 1, 0)), ".........11...");
  PositionSpec bad;
  bad.features = {"nope"};
  test::expect_error([&] { byte_mask(t, bad, 1, 0); }, {"--positions nope", "not an automatic feature", "repeated"});
  bad.features.clear();
  bad.regexes = {"("};
  test::expect_error([&] { byte_mask(t, bad, 1, 0); }, {"not a valid PCRE2 pattern"});
}

TEST(Labels, RepeatedNeedsTheEarlierCopyInsideWindowAndStream) {
  const std::string t = "abcdefghXabcdefgh";  // the 8-gram ends at 7 and again at 16
  auto L = labels_of(t);
  EXPECT_EQ(L.at("repeated"), "................1");
  EXPECT_EQ(labels_of(t, 17).at("repeated"), "................1");  // window covers [0, 16]
  EXPECT_EQ(labels_of(t, 16).at("repeated"), ".................");  // first copy starts before the window
  std::vector<int64_t> starts(t.size(), 0);
  for (size_t i = 9; i < t.size(); ++i) starts[i] = 9;  // a second stream from byte 9
  EXPECT_EQ(labels_of(t, 1 << 20, starts).at("repeated"), ".................");
}

TEST(Labels, RegexFeaturesLabelTheBytesOfEveryMatch) {
  const std::string t = "x = foo(bar); y = foo();";
  std::vector<int64_t> offs{-1};
  for (size_t i = 0; i < t.size(); ++i) offs.push_back(static_cast<int64_t>(i));
  auto f = regex_feature("call", "foo\\(", t, offs);
  std::string s;
  for (size_t r = 1; r < f.on.size(); ++r) s += f.on[r] ? '1' : '.';
  EXPECT_EQ(s, "....1111..........1111..");
  EXPECT_EQ(f.on[0], 0);
  EXPECT_THROW(regex_feature("bad", "foo(", t, offs), Error);
}

// A match error (here the match limit, set low by the pattern itself) is an error naming the feature and
// PCRE2's message, never a silent "no match" that ends the scan (the feature's base rate would read 0).
TEST(Labels, RegexMatchErrorsAreErrorsNotMisses) {
  const std::string t(4000, 'a');
  std::vector<int64_t> offs;
  for (size_t i = 0; i < t.size(); ++i) offs.push_back(static_cast<int64_t>(i));
  const auto f = regex_feature("bt", "(a|a)*b|a", std::string_view(t).substr(0, 12), {0, 1, 2});
  EXPECT_EQ(f.on, (std::vector<uint8_t>{1, 1, 1}));  // a short text matches: every byte is an "a"
  test::expect_error([&] { regex_feature("bt", "(*LIMIT_MATCH=1000)(a|a)*b|a", t, offs); },
                     {"--feature bt=", "matching failed", "match limit"});
}

}  // namespace
}  // namespace ccc::analysis
