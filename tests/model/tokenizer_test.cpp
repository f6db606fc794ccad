#include "model/formats/tokenizer.h"

#include <gtest/gtest.h>

#include <random>
#include <sstream>

#include "model/base/error.h"
#include "model/base/util.h"
#include "tests/support/test_support.h"

namespace ccc::model {
namespace {

std::vector<std::string> hard_strings() {
  std::mt19937 rng(7);
  std::string random_bytes;
  for (int i = 0; i < 3000; ++i) random_bytes.push_back(static_cast<char>(rng() & 0xff));
  std::string all_bytes;
  for (int i = 0; i < 256; ++i) all_bytes.push_back(static_cast<char>(i));
  return {"",
          "a",
          "hello world",
          " leading and trailing spaces  ",
          "tabs\tand\nnewlines\r\n\n\n",
          "Unicode: Führer, нещо на Български, 🦙 emoji, 中文字符, ½",
          std::string("invalid utf8: \xff\xfe \xc3\x28 \xe2\x82 end"),
          std::string("\0nul\0bytes\0", 11),
          all_bytes,
          random_bytes};
}

TEST(ByteTokenizerTest, LosslessForAnyBytes) {
  ByteTokenizer tok;
  for (const auto& s : hard_strings()) {
    auto ids = tok.encode(s);
    EXPECT_EQ(ids.size(), s.size());
    EXPECT_EQ(tok.decode(ids), s);
  }
  EXPECT_EQ(tok.decode({256, 104, 105}), "hi");  // BOS carries no text
  EXPECT_THROW(tok.decode({257}), Error);
}

std::unique_ptr<Tokenizer> gpt2() {
  auto dir = test::shared_path("tokenizers/gpt2");
  if (dir.empty()) return nullptr;
  return load_tokenizer(dir, 0);
}

TEST(Gpt2TokenizerTest, HelloWorld) {
  auto tok = gpt2();
  CCC_REQUIRE_SHARED(test::shared_path("tokenizers/gpt2"));
  EXPECT_EQ(tok->encode("hello world"), (std::vector<int64_t>{31373, 995}));
  EXPECT_EQ(tok->bos_id(), 50256);
  EXPECT_EQ(tok->vocab_size(), 50257);
}

TEST(Gpt2TokenizerTest, LlamaCppTestVectors) {
  auto dir = test::shared_path("tokenizers/gpt2");
  CCC_REQUIRE_SHARED(dir);
  auto tok = load_tokenizer(dir, 0);
  const std::string inp = read_file(dir + "/cases.inp"), out = read_file(dir + "/cases.out");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> cases;
  for (size_t pos = 0; pos < inp.size();) {
    size_t next = inp.find(sep, pos);
    ASSERT_NE(next, std::string::npos);
    cases.push_back(inp.substr(pos, next - pos));
    pos = next + sep.size();
  }
  std::vector<std::vector<int64_t>> expected;
  std::istringstream lines(out);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream ls(line);
    std::vector<int64_t> ids;
    int64_t id;
    while (ls >> id) ids.push_back(id);
    expected.push_back(ids);
  }
  ASSERT_EQ(cases.size(), 46u);
  ASSERT_EQ(expected.size(), 46u);
  int passed = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    auto got = tok->encode(cases[i]);
    EXPECT_EQ(got, expected[i]) << "case " << i << ": '" << cases[i] << "'";
    passed += got == expected[i];
    EXPECT_EQ(tok->decode(got), cases[i]);
  }
  EXPECT_EQ(passed, 46);
}

TEST(Gpt2TokenizerTest, LosslessOnHardInputs) {
  auto tok = gpt2();
  CCC_REQUIRE_SHARED(test::shared_path("tokenizers/gpt2"));
  for (const auto& s : hard_strings()) EXPECT_EQ(tok->decode(tok->encode(s)), s);
}

TEST(Gpt2TokenizerTest, HfTokenizerJsonGivesSameIds) {
  auto dir = test::shared_path("tokenizers/gpt2");
  CCC_REQUIRE_SHARED(dir);
  // Build a tokenizer.json from the original files (both merge spellings appear in the wild).
  auto vocab = nlohmann::json::parse(read_file(dir + "/encoder.json"));
  std::string bpe = read_file(dir + "/vocab.bpe");
  nlohmann::json merges = nlohmann::json::array();
  std::istringstream ls(bpe);
  std::string line;
  bool first = true;
  while (std::getline(ls, line)) {
    if (first && line.rfind("#version", 0) == 0) { first = false; continue; }
    first = false;
    if (line.empty()) continue;
    auto sp = line.find(' ');
    if (merges.size() % 2) merges.push_back(nlohmann::json::array({line.substr(0, sp), line.substr(sp + 1)}));
    else merges.push_back(line);
  }
  nlohmann::json tj = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}},
                       {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}}}};
  test::TempDir tmp;
  write_file_atomic(tmp.file("tokenizer.json"), tj.dump());
  auto hf = load_tokenizer(tmp.file("tokenizer.json"), 0);
  auto orig = load_tokenizer(dir, 0);
  for (const auto& s : hard_strings()) EXPECT_EQ(hf->encode(s), orig->encode(s));
  EXPECT_EQ(hf->encode("hello world"), (std::vector<int64_t>{31373, 995}));
  tj["model"]["type"] = "WordPiece";
  write_file_atomic(tmp.file("tokenizer.json"), tj.dump());
  EXPECT_THROW(load_tokenizer(tmp.file("tokenizer.json"), 0), Error);
}

TEST(Llama2cTokenizerTest, MatchesLlama2cEncodingOfScoreExample) {
  auto tokp = test::shared_path("models/tok512.bin");
  CCC_REQUIRE_SHARED(tokp);
  auto tok = load_tokenizer(tokp, 512);
  auto text = read_file(test::shared_path("models/stories260K-score-example.txt"));
  std::istringstream ref(read_file(test::shared_path("models/stories260K-score-example.ref")));
  std::string word;
  ref >> word;
  ASSERT_EQ(word, "tokens");
  std::vector<int64_t> expected;
  int64_t id;
  while (ref >> id) expected.push_back(id);
  ASSERT_GT(expected.size(), 10u);
  std::vector<int64_t> got{tok->bos_id()};
  auto enc = tok->encode(text);
  got.insert(got.end(), enc.begin(), enc.end());
  EXPECT_EQ(got, expected);
  EXPECT_EQ(tok->decode(enc), text);
}

TEST(Llama2cTokenizerTest, LosslessWithByteFallback) {
  auto tokp = test::shared_path("models/tok512.bin");
  CCC_REQUIRE_SHARED(tokp);
  auto tok = load_tokenizer(tokp, 512);
  for (const auto& s : hard_strings()) EXPECT_EQ(tok->decode(tok->encode(s)), s);
  EXPECT_THROW(load_tokenizer(tokp, 600), Error);  // wrong vocab size: runs out of bytes
}

TEST(Llama2cTokenizerTest, TruncatedFileIsAClearError) {
  auto tokp = test::shared_path("models/tok512.bin");
  CCC_REQUIRE_SHARED(tokp);
  test::TempDir tmp;
  auto bytes = read_file(tokp);
  write_file_atomic(tmp.file("tok.bin"), bytes.substr(0, bytes.size() / 2));
  test::expect_error([&] { load_tokenizer(tmp.file("tok.bin"), 512); }, {"truncated"});
}

}  // namespace
}  // namespace ccc::model

namespace ccc::model {
namespace {

// Forged tokenizer files are refused at load, naming the file and the entry: ids beyond the vocabulary's
// size, one id for two tokens, merges whose symbols are not in the vocabulary, wrongly typed JSON fields.
TEST(TokenizerHardeningTest, ForgedVocabulariesAndMergesAreNamed) {
  auto dir = test::shared_path("tokenizers/gpt2");
  CCC_REQUIRE_SHARED(dir);
  test::TempDir tmp;
  const auto vocab = nlohmann::json::parse(read_file(dir + "/encoder.json"));
  const std::string merges = read_file(dir + "/vocab.bpe");
  auto expect_refused = [&](const nlohmann::json& v, const std::string& m, const std::string& needle) {
    write_file_atomic(tmp.file("vocab.json"), v.dump());
    write_file_atomic(tmp.file("merges.txt"), m);
    test::expect_error([&] { load_tokenizer(tmp.path(), 0); }, {needle, tmp.path()});
  };
  auto v = vocab;
  v["hello"] = 16777215;
  expect_refused(v, merges, "has id 16777215");
  v = vocab;
  v["Ġthe"] = v["hello"].get<int64_t>();
  expect_refused(v, merges, "is given to two tokens");
  expect_refused(vocab, merges + "zzq xxw\n", "merge 50001 ('zzq xxw')");
  write_file_atomic(tmp.file("vocab.json"), vocab.dump());
  write_file_atomic(tmp.file("merges.txt"), merges);
  EXPECT_EQ(load_tokenizer(tmp.path(), 0)->encode("hello world"), (std::vector<int64_t>{31373, 995}));  // the originals load
  nlohmann::json tj = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()}}},
                       {"pre_tokenizer", {{"type", "ByteLevel"}}},
                       {"added_tokens", {{{"content", 7}, {"id", 50257}}}}};
  write_file_atomic(tmp.file("tokenizer.json"), tj.dump());
  test::expect_error([&] { load_tokenizer(tmp.file("tokenizer.json"), 0); }, {tmp.file("tokenizer.json")});
}

}  // namespace
}  // namespace ccc::model
