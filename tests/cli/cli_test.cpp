// The command line as a user runs it: the `ccc` binary in child processes, its outputs, exit codes and files.

#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <sys/resource.h>
#include <sys/stat.h>
#include <utility>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "compress/container.h"
#include "compress/lm_codec.h"
#include "model/base/error.h"
#include "model/base/fileio.h"
#include "model/base/util.h"
#include "model/core/score.h"
#include "model/formats/loader.h"
#include "model/formats/safetensors.h"
#include "model/kernels/decode_attention.h"
#include "model/scoring/streams.h"
#include "model/training/corpus.h"
#include "model/training/trainer.h"
#include "tests/support/test_support.h"
#include "tests/support/training_support.h"

namespace ccc::model {
namespace {

TEST(CliTest, BitsJsonHasTheDocumentedFields) {
  auto bin = test::shared_path("models/stories260K.bin");
  CCC_REQUIRE_SHARED(bin);
  std::string out;
  const std::string cmd = std::string(CCC_BINARY) + " bits --json -m " + bin + " -t " +
                          test::shared_path("models/tok512.bin") + " " +
                          test::shared_path("models/stories260K-score-example.txt");
  ASSERT_EQ(test::run_command(cmd + " 2>/dev/null", &out), 0) << out;
  auto j = nlohmann::json::parse(out);
  auto tokens = j.at("tokens").get<std::vector<int64_t>>();
  auto bits = j.at("bits").get<std::vector<double>>();
  EXPECT_EQ(tokens.front(), 1);
  EXPECT_EQ(bits.size(), tokens.size() - 1);
  double sum = 0;
  for (double b : bits) sum += b;
  EXPECT_NEAR(j.at("total_bits").get<double>(), sum, 1e-9);
  EXPECT_EQ(j.at("n_bytes").get<int64_t>(), 126);
  EXPECT_NEAR(j.at("bits_per_byte").get<double>(), sum / 126, 1e-12);
  EXPECT_NEAR(sum, 20.573389, 1e-3);
  EXPECT_EQ(j.at("schema").get<std::string>(), "ccc.bits/1");
  EXPECT_EQ(j.at("ccc_version").get<std::string>().rfind("0.", 0), 0u);
  EXPECT_EQ(j.at("tokenizer").get<std::string>(), "llama2c-bpe");
}

TEST(CliTest, BadModelGivesErrorAndNonZeroExit) {
  test::TempDir tmp;
  write_file_atomic(tmp.file("x.txt"), "hi");
  std::string out;
  int rc = test::run_command(std::string(CCC_BINARY) + " bits -m " + tmp.file("missing") + " " + tmp.file("x.txt"), &out);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("error:"), std::string::npos) << out;
  EXPECT_NE(out.find("missing"), std::string::npos) << out;
}

TEST(CliTest, NonsenseNumbersFailedWritesAndSelfOverwritesAreErrors) {
  test::TempDir tmp;
  const std::string ccc = CCC_BINARY, model = std::string(CCC_SOURCE_DIR) + "/data/models/ccc-attn1";
  std::string out;
  EXPECT_NE(test::run_command(ccc + " --threads 100000 info -m " + model + " 2>&1", &out), 0);
  EXPECT_NE(out.find("--threads 100000"), std::string::npos) << out;
  EXPECT_EQ(test::run_command(ccc + " info -m " + model + " --threads 1 > /dev/null 2>&1"), 0);  // after the subcommand too
  EXPECT_NE(test::run_command("(" + ccc + " info -m " + model + " > /dev/full)", &out), 0);
  EXPECT_NE(out.find("cannot write to standard output"), std::string::npos) << out;
  EXPECT_NE(test::run_command(ccc + " compress --streams -3 " + model + "/config.json -o " + tmp.file("x") + " 2>/dev/null"), 0);
  // integers are decimal and in range everywhere: no wrap of -1 into an unsigned seed, no saturation, no hex
  for (const std::string bad : {"--seed -1", "--seed 18446744073709551616", "--seed 0x10", "--seed 1e3", "--window 1.5"}) {
    EXPECT_EQ(test::run_command(ccc + " ablate -m " + model + " -c 0.0 " + model + "/config.json " + bad + " 2>&1", &out),
              105) << bad << "\n" << out;  // CLI11 validation error
    EXPECT_NE(out.find("is not a decimal integer"), std::string::npos) << bad << "\n" << out;
  }
  EXPECT_NE(test::run_command(ccc + " dump -m " + model + " " + model + "/config.json -o " + tmp.file("d.h5") +
                                  " --compression lzf 2>&1", &out), 0);
  EXPECT_NE(out.find("HDF5 has no built-in LZF"), std::string::npos) << out;
  write_file_atomic(tmp.file("a.txt"), "hello hello hello\n");
  ASSERT_EQ(test::run_command(ccc + " compress -q -m " + model + " " + tmp.file("a.txt")), 0);
  const std::string packed = read_file(tmp.file("a.txt.ccc"));
  EXPECT_NE(test::run_command(ccc + " decompress -m " + model + " " + tmp.file("a.txt.ccc") + " -o " + tmp.file("a.txt.ccc") +
                                  " --force 2>&1", &out), 0);
  EXPECT_NE(out.find("would overwrite the input"), std::string::npos) << out;
  EXPECT_EQ(read_file(tmp.file("a.txt.ccc")), packed);
  // --version names the build; a bare ccc prints the help; bits --streams --json is JSON with per-stream bits
  ASSERT_EQ(test::run_command(ccc + " --version", &out), 0);
  EXPECT_EQ(out.rfind("ccc 0.", 0), 0u) << out;
  EXPECT_NE(out.find("libtorch"), std::string::npos) << out;
  ASSERT_EQ(test::run_command(ccc, &out), 0);
  EXPECT_NE(out.find("Usage: ccc"), std::string::npos) << out;
  ASSERT_EQ(test::run_command(ccc + " bits -m " + model + " --streams 2 --json " + tmp.file("a.txt") + " 2>/dev/null", &out), 0);
  const auto j = nlohmann::json::parse(out);
  ASSERT_EQ(j["bits"].size(), 2u);
  double sum = 0;
  size_t tokens = 0;
  for (const auto& s : j["bits"])
    for (const auto& b : s) sum += b.get<double>(), ++tokens;
  EXPECT_EQ(tokens, 18u);  // byte model: one coded token per byte
  EXPECT_NEAR(sum, j["total_bits"].get<double>(), 1e-6);
}

// gzip / xz / zstd habits: several inputs, -c, -d, -t, -l, '-' both ways, the model found from the hint.
TEST(CliTest, CompressorConventions) {
  test::TempDir tmp;
  // --pure: frames the model codes (the default stores these few bytes as they are; checked at the end)
  const std::string ccc = CCC_BINARY, m = " --pure -m " + std::string(CCC_SOURCE_DIR) + "/data/models/ccc-attn1";
  const std::string a = tmp.file("a.txt"), b = tmp.file("b.txt");
  write_file_atomic(a, "first file\n");
  write_file_atomic(b, "second file, longer\n");
  std::string out;
  ASSERT_EQ(test::run_command(ccc + " compress -q" + m + " " + a + " " + b, &out), 0) << out;
  ASSERT_TRUE(std::filesystem::exists(a + ".ccc") && std::filesystem::exists(b + ".ccc"));
  EXPECT_TRUE(std::filesystem::exists(a));  // inputs are kept
  EXPECT_NE(test::run_command(ccc + " compress -q" + m + " " + a + " " + b + " -o " + tmp.file("x")), 0);  // -o: one input
  ASSERT_EQ(test::run_command(ccc + " decompress -t " + a + ".ccc " + b + ".ccc", &out), 0) << out;  // model from the hint
  EXPECT_NE(out.find("a.txt.ccc: OK"), std::string::npos) << out;
  ASSERT_EQ(test::run_command(ccc + " compress -l " + b + ".ccc", &out), 0) << out;
  EXPECT_NE(out.find("original 20 bytes"), std::string::npos) << out;
  EXPECT_NE(out.find("model ccc-attn1 "), std::string::npos) << out;  // a name, not a path
  ASSERT_EQ(test::run_command(ccc + " compress -d -c -q " + a + ".ccc 2>/dev/null", &out), 0);
  EXPECT_EQ(out, "first file\n");
  ASSERT_EQ(test::run_command("cat " + b + " | " + ccc + " compress -q" + m + " - | " + ccc + " decompress -q - 2>/dev/null", &out), 0);
  EXPECT_EQ(out, "second file, longer\n");
  // the default group count is a constant (8), not the machine's core count
  std::string big;
  for (int i = 0; big.size() < 10240; ++i) big += "line " + std::to_string(i) + "\n";
  write_file_atomic(tmp.file("big.txt"), big);
  ASSERT_EQ(test::run_command(ccc + " compress -q" + m + " " + tmp.file("big.txt") + " && " + ccc + " compress -l " +
                                  tmp.file("big.txt.ccc"), &out), 0) << out;
  EXPECT_NE(out.find("in 10 streams, 8 groups"), std::string::npos) << out;
  write_file_atomic(tmp.file("e.txt"), "");
  ASSERT_EQ(test::run_command(ccc + " compress" + m + " " + tmp.file("e.txt"), &out), 0);
  EXPECT_NE(out.find("empty input"), std::string::npos) << out;
  // a container whose model is neither the default nor a shipped one names the fingerprint it needs
  write_file_atomic(tmp.file("c.ccc"), read_file(a + ".ccc"));
  EXPECT_NE(test::run_command(ccc + " decompress -c -m " + std::string(CCC_SOURCE_DIR) + "/data/models/ccc-attn2 " +
                                  tmp.file("c.ccc"), &out), 0);
  EXPECT_NE(out.find("fingerprint"), std::string::npos) << out;
  // the default never expands: 11 bytes are stored (11 + 16), need no model to restore, and -l says so
  ASSERT_EQ(test::run_command(ccc + " compress -q -f -m " + std::string(CCC_SOURCE_DIR) + "/data/models/ccc-attn1 " + a +
                                  " -o " + tmp.file("d.ccc"), &out), 0) << out;
  EXPECT_EQ(std::filesystem::file_size(tmp.file("d.ccc")), 11u + 16u);
  ASSERT_EQ(test::run_command(ccc + " compress -l " + tmp.file("d.ccc"), &out), 0) << out;
  EXPECT_NE(out.find("model: none"), std::string::npos) << out;
  EXPECT_NE(out.find("1 stored"), std::string::npos) << out;
  ASSERT_EQ(test::run_command(ccc + " decompress -c -q -m " + std::string(CCC_SOURCE_DIR) + "/data/models/ccc-attn2 " +
                                  tmp.file("d.ccc") + " 2>/dev/null", &out), 0);
  EXPECT_EQ(out, "first file\n");
}

// Long commands draw a progress line on a terminal and stay quiet otherwise (and with -q).
TEST(CliTest, ProgressOnlyOnATerminal) {
  test::TempDir tmp;
  std::string text;
  for (int i = 0; i < 40; ++i) text += "the cat sat on the mat " + std::to_string(i) + "\n";
  write_file_atomic(tmp.file("t.txt"), text);
  const std::string cmd = std::string(CCC_BINARY) + " sweep --naive -m " + std::string(CCC_SOURCE_DIR) +
                          "/data/models/ccc-attn2 " + tmp.file("t.txt");
  std::string out;
  ASSERT_EQ(test::run_command(cmd, &out), 0) << out;
  EXPECT_EQ(out.find("ablations:"), std::string::npos) << "progress written to a pipe";
  if (test::run_command("command -v script >/dev/null") != 0) GTEST_SKIP() << "no script(1) to make a terminal";
  ASSERT_EQ(test::run_command("script -qec '" + cmd + "' /dev/null", &out), 0) << out;
  EXPECT_NE(out.find("ablations: 8/8 (100%)"), std::string::npos) << out;
  ASSERT_EQ(test::run_command("script -qec '" + cmd + " -q' /dev/null", &out), 0) << out;
  EXPECT_EQ(out.find("ablations:"), std::string::npos) << out;
  const std::string bits = std::string(CCC_BINARY) + " bits -m " + std::string(CCC_SOURCE_DIR) + "/data/models/ccc-attn2 " +
                           tmp.file("t.txt");
  ASSERT_EQ(test::run_command("script -qec '" + bits + "' /dev/null", &out), 0) << out;
  // (a byte-level model's input streams: progress counts its bytes, i.e. the coded tokens)
  EXPECT_NE(out.find("bits: " + std::to_string(text.size()) + "/" + std::to_string(text.size()) + " (100%)"),
            std::string::npos) << out;
  ASSERT_EQ(test::run_command("script -qec '" + bits + " --streams 3' /dev/null", &out), 0) << out;
  EXPECT_NE(out.find("bits: " + std::to_string(text.size()) + "/" + std::to_string(text.size()) + " (100%)"),
            std::string::npos) << out;
  // ablate: one line per scoring (clean, then ablated), in coded tokens
  const std::string ablate = std::string(CCC_BINARY) + " ablate -c 1.2 -m " + std::string(CCC_SOURCE_DIR) +
                             "/data/models/ccc-attn2 " + tmp.file("t.txt");
  ASSERT_EQ(test::run_command("script -qec '" + ablate + "' /dev/null", &out), 0) << out;
  const std::string n = std::to_string(text.size());
  EXPECT_NE(out.find("ablate: clean run: " + n + "/" + n + " (100%)"), std::string::npos) << out;
  EXPECT_NE(out.find("ablate: ablated run: " + n + "/" + n + " (100%)"), std::string::npos) << out;
  ASSERT_EQ(test::run_command("script -qec '" + ablate + " -q' /dev/null", &out), 0) << out;
  EXPECT_EQ(out.find("ablate:"), std::string::npos) << out;
}

// ccc patch end to end: the JSON of the README, delta = patched − clean, and a path that does not run
// downstream refused naming the receiver.
TEST(CliTest, PatchJsonAndRefusedPaths) {
  test::TempDir tmp;
  std::string text;
  for (int i = 0; i < 8; ++i) {
    std::string r;
    for (int k = 0; k < 40; ++k) r += static_cast<char>(33 + (i * 37 + k * k * 11) % 90);
    text += r + r;
  }
  write_file_atomic(tmp.file("rep.txt"), text);
  const std::string cmd = std::string(CCC_BINARY) + " patch -q -m " + std::string(CCC_SOURCE_DIR) + "/data/models/ccc-attn2 " +
                          tmp.file("rep.txt");
  std::string out;
  ASSERT_EQ(test::run_command(cmd + " --sender 0.2 --receiver 1.2 --json 2>/dev/null", &out), 0) << out;
  const auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j.at("sender"), "0.2");
  EXPECT_EQ(j.at("receiver"), "1.2");
  EXPECT_EQ(j.at("n_bytes").get<int64_t>(), static_cast<int64_t>(text.size()));
  EXPECT_NEAR(j.at("delta_bits").get<double>(),
              j.at("patched_total_bits").get<double>() - j.at("clean_total_bits").get<double>(), 1e-6);
  EXPECT_NEAR(j.at("delta_bits_per_byte").get<double>(), j.at("delta_bits").get<double>() / text.size(), 1e-9);
  EXPECT_LE(j.at("ci_low").get<double>(), j.at("delta_bits_per_byte").get<double>());
  EXPECT_GE(j.at("ci_high").get<double>(), j.at("delta_bits_per_byte").get<double>());
  EXPECT_FALSE(j.contains("ablated_total_bits"));
  EXPECT_NE(test::run_command(cmd + " --sender 1.2 --receiver 0.1 2>&1", &out), 0);
  EXPECT_NE(out.find("receiver '0.1' is not downstream of sender '1.2'"), std::string::npos) << out;
  // progress on a terminal only, counting the coded tokens (one per byte); -q silences it
  if (test::run_command("command -v script >/dev/null") != 0) GTEST_SKIP() << "no script(1) to make a terminal";
  const std::string loud = std::string(CCC_BINARY) + " patch -m " + std::string(CCC_SOURCE_DIR) + "/data/models/ccc-attn2 " +
                           tmp.file("rep.txt") + " --sender 0.2";
  ASSERT_EQ(test::run_command("script -qec '" + loud + "' /dev/null", &out), 0) << out;
  const std::string n = std::to_string(text.size());
  EXPECT_NE(out.find("patch: " + n + "/" + n + " (100%)"), std::string::npos) << out;
  ASSERT_EQ(test::run_command("script -qec '" + loud + " -q' /dev/null", &out), 0) << out;
  EXPECT_EQ(out.find("patch:"), std::string::npos) << out;
}

// bits --json lines each coded token up with its bytes; a model whose activations overflow gives an error
// naming the token, never "nan" as a result.
TEST(CliTest, BitsJsonSpansAndNoNaNResults) {
  test::TempDir tmp;
  const std::string text = "tab\there \xff caf\xc3\xa9\n";
  write_file_atomic(tmp.file("t.txt"), text);
  std::string out;
  const std::string ccc = CCC_BINARY;
  ASSERT_EQ(test::run_command(ccc + " bits --json -m " + std::string(CCC_SOURCE_DIR) + "/data/models/ccc-attn2 " +
                                  tmp.file("t.txt") + " 2>/dev/null", &out), 0) << out;
  const auto j = nlohmann::json::parse(out);
  ASSERT_EQ(j["spans"].size(), text.size());
  ASSERT_EQ(j["n_coded_tokens"].get<size_t>(), j["bits"].size());
  std::string joined;
  for (size_t i = 0; i < text.size(); ++i) {
    const auto a = j["spans"][i][0].get<int64_t>(), b = j["spans"][i][1].get<int64_t>();
    joined += text.substr(a, b - a);
  }
  EXPECT_EQ(joined, text);
  EXPECT_EQ(j["token_text"][3].get<std::string>(), "\\t");
  EXPECT_EQ(j["token_text"][9].get<std::string>(), "\\xff");
  EXPECT_EQ(j["tokenizer"].get<std::string>(), "byte");
  // finite weights, overflowing activations: every parameter scaled to 1e36
  auto lm = test::tiny_byte_lm(3);
  {
    torch::NoGradGuard ng;
    for (auto& p : lm.model->parameters()) p.mul_(1e36);
  }
  save_model(tmp.file("overflow"), lm.config, lm.model);
  EXPECT_NE(test::run_command(ccc + " bits -m " + tmp.file("overflow") + " " + tmp.file("t.txt") + " 2>&1", &out), 0);
  EXPECT_NE(out.find("non-finite cost"), std::string::npos) << out;
  EXPECT_EQ(out.find("bits_per_byte"), std::string::npos) << out;
}

// Outputs: FIFOs and character devices are written into, never replaced; names of 250 bytes work (the
// temporary fits); temporaries of dead writers are removed, a live writer's are kept.
TEST(CliTest, SpecialOutputsLongNamesAndStaleTemporaries) {
  test::TempDir tmp;
  const std::string ccc = CCC_BINARY, m = " -m " + std::string(CCC_SOURCE_DIR) + "/data/models/ccc-attn1";
  const std::string a = tmp.file("a.txt");
  write_file_atomic(a, "special outputs\n");
  const std::string fifo = tmp.file("pipe");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  std::string out;
  // the reader is waited for: its copy is complete when the command returns (it ends when the writer
  // closes the FIFO; the timeout only guards a writer that never opens it)
  ASSERT_EQ(test::run_command("timeout 60 cat " + fifo + " > " + tmp.file("got") + " & " + ccc + " compress -q" + m +
                                  " " + a + " -o " + fifo + " && " + ccc + " compress -q" + m + " " + a + " -o " +
                                  tmp.file("ref.ccc") + " && wait", &out), 0) << out;
  struct stat st{};
  ASSERT_EQ(::stat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));  // still a FIFO, and what came through it is the container
  EXPECT_EQ(read_file(tmp.file("got")), read_file(tmp.file("ref.ccc")));
  ASSERT_EQ(test::run_command(ccc + " compress -q -f" + m + " " + a + " -o /dev/null", &out), 0) << out;
  ASSERT_EQ(::stat("/dev/null", &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_NE(test::run_command(ccc + " compress -q" + m + " " + a + " -o " + tmp.path() + " 2>&1", &out), 0);
  EXPECT_NE(out.find("is a directory"), std::string::npos) << out;
  const std::string longname = tmp.file(std::string(250, 'x'));
  write_file_atomic(longname, "a legal name of 250 bytes\n");
  ASSERT_EQ(test::run_command(ccc + " compress -q" + m + " " + longname + " && " + ccc + " decompress -c " + longname +
                                  ".ccc 2>/dev/null", &out), 0) << out;
  EXPECT_EQ(out, "a legal name of 250 bytes\n");
  EXPECT_LE(std::filesystem::path(temp_path_for(longname + ".ccc")).filename().string().size(), 255u);
  // A writer killed mid-write (pid gone) left a temporary; one of this (live) process must stay.
  const std::string target = tmp.file("t.bin");
  std::string dead = temp_path_for(target);
  const pid_t gone = 4194304 + 7;  // above Linux's pid_max limit: never a live process
  dead.replace(dead.rfind("~ccc") + 4, dead.rfind('-') - dead.rfind("~ccc") - 4, std::to_string(gone));
  const std::string live = temp_path_for(target);
  write_file_atomic(tmp.file("d"), "x");
  std::filesystem::copy_file(tmp.file("d"), dead);
  std::filesystem::copy_file(tmp.file("d"), live);
  write_file_atomic(target, "final");
  EXPECT_FALSE(std::filesystem::exists(dead));
  EXPECT_TRUE(std::filesystem::exists(live));
  EXPECT_EQ(read_file(target), "final");
  size_t entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(tmp.path())) entries += e.path().filename().string()[0] == '.';
  EXPECT_EQ(entries, 1u);  // only the live one: write_file_atomic leaves no temporary of its own
}

// `cmake --install` (what setup.sh runs) gives a `ccc` that works from anywhere: the launcher finds
// ccc-core beside it, and the version it prints is the build's.
TEST(CliTest, InstalledLauncherRunsTheCore) {
  test::TempDir tmp;
  const auto build_dir = std::filesystem::path(CCC_BINARY).parent_path().parent_path();
  std::string out;
  ASSERT_EQ(test::run_command("cmake --install " + build_dir.string() + " --prefix " + tmp.path() + " 2>&1", &out), 0) << out;
  ASSERT_EQ(test::run_command("cd / && " + tmp.file("bin/ccc") + " --version", &out), 0) << out;
  std::string direct;
  ASSERT_EQ(test::run_command(std::string(CCC_BINARY) + " --version", &direct), 0);
  EXPECT_EQ(out, direct);
  EXPECT_EQ(out.rfind("ccc 0.", 0), 0u) << out;
  std::filesystem::remove(tmp.file("bin/ccc-core"));
  EXPECT_EQ(test::run_command(tmp.file("bin/ccc") + " --version 2>&1", &out), 127);
  EXPECT_NE(out.find("cannot run"), std::string::npos) << out;
  // help pages come from the launcher alone (no ccc-core, no LibTorch), and a command still needs the core
  ASSERT_EQ(test::run_command(tmp.file("bin/ccc") + " compress --help", &out), 0) << out;
  EXPECT_EQ(out.rfind("lossless compression", 0), 0u) << out;
  EXPECT_EQ(test::run_command(tmp.file("bin/ccc") + " compress -k --help 2>&1", &out), 127);
}

// Every help page the launcher prints from its build-time pages is byte for byte what ccc-core prints
// live: the command tree is walked from the top page's "Subcommands:" lists.
TEST(CliTest, LauncherHelpPagesAreTheCoresOwn) {
  test::TempDir tmp;
  const std::string core = (std::filesystem::path(CCC_BINARY).parent_path() / "ccc-core").string();
  std::vector<std::string> commands = {""};
  for (size_t i = 0; i < commands.size(); ++i) {
    std::string page;
    ASSERT_EQ(test::run_command(std::string(CCC_BINARY) + " " + commands[i] + " --help", &page), 0) << commands[i];
    std::istringstream lines(page);
    std::string line;
    bool in_list = false;
    while (std::getline(lines, line)) {
      if (line == "Subcommands:") { in_list = true; continue; }
      if (in_list && line.size() > 2 && line[0] == ' ' && line[2] != ' ') {
        const std::string name = line.substr(2, line.find(' ', 2) - 2);
        commands.push_back(commands[i].empty() ? name : commands[i] + " " + name);
      } else if (in_list && line.empty()) {
        in_list = false;
      }
    }
  }
  ASSERT_GE(commands.size(), 25u);
  // the live pages, two at a time (each start of ccc-core loads LibTorch)
  std::string script = "cd " + tmp.path() + " && export OMP_WAIT_POLICY=PASSIVE\n";
  for (size_t i = 0; i < commands.size(); ++i)
    script += core + " " + commands[i] + " --help > live" + std::to_string(i) + (i % 2 ? "\nwait\n" : " &\n");
  script += "wait";
  ASSERT_EQ(test::run_command(script), 0);
  for (size_t i = 0; i < commands.size(); ++i) {
    std::string cached;
    ASSERT_EQ(test::run_command(std::string(CCC_BINARY) + " " + commands[i] + " --help", &cached), 0);
    EXPECT_EQ(cached, read_file(tmp.file("live" + std::to_string(i)))) << "ccc " << commands[i] << " --help";
  }
  std::string bare;
  ASSERT_EQ(test::run_command(std::string(CCC_BINARY), &bare), 0);
  EXPECT_EQ(bare, read_file(tmp.file("live0")));
}

// Flags mean one thing everywhere and errors say what to do: eval's --corpora is a directory (names are
// positional), init explains that it wants a model config, -m works on bench compress / quality,
// stories260K's tok512.bin is found without --tokenizer, every option's help shows its default.
TEST(CliTest, ConsistentFlagsAndHonestErrors) {
  const std::string ccc = CCC_BINARY;
  std::string out;
  EXPECT_NE(test::run_command(ccc + " eval --corpora /nonexistent-dir", &out), 0);
  EXPECT_NE(out.find("corpus names are positional"), std::string::npos) << out;
  EXPECT_NE(test::run_command(ccc + " eval no-such-corpus", &out), 0);
  EXPECT_NE(out.find("no-such-corpus"), std::string::npos) << out;
  test::TempDir tmp;
  EXPECT_NE(test::run_command(ccc + " init -c " + std::string(CCC_SOURCE_DIR) + "/data/configs/ccc-attn2.json -o " +
                                  tmp.file("m"), &out), 0);
  EXPECT_NE(out.find("init wants a model config"), std::string::npos) << out;
  for (const char* sub : {"bench compress", "bench quality"}) {
    EXPECT_NE(test::run_command(ccc + " " + sub + " -m " + tmp.file("none") + " " + tmp.file("none.txt"), &out), 0);
    EXPECT_EQ(out.find("extraneous"), std::string::npos) << sub << ": " << out;
    EXPECT_EQ(out.find("not expected"), std::string::npos) << sub << ": " << out;
  }
  // --tokenizer is taken (and used: the missing file is named) by every command that loads a model
  const std::string attn1 = std::string(CCC_SOURCE_DIR) + "/data/models/ccc-attn1", bad_tok = tmp.file("no-such-tok.json");
  write_file_atomic(tmp.file("small.txt"), "a small input\n");
  for (const std::string& cmd : std::vector<std::string>{"bits " + tmp.file("small.txt"), "info", "heads", "bench hooks --steps 1 --reps 1",
                                "bench decode -n 4 --reps 1", "bench dump --no-rss", "bench sweep --file " + tmp.file("small.txt"),
                                "bench units --dump-mb 1", "bench compress " + tmp.file("small.txt"),
                                "bench memory --sizes 0.01", "bench sae --rows 1000 --steps 1"}) {
    EXPECT_NE(test::run_command(ccc + " " + cmd + " -m " + attn1 + " --tokenizer " + bad_tok, &out), 0) << cmd;
    EXPECT_NE(out.find(bad_tok), std::string::npos) << cmd << ": " << out;
  }
  for (const char* sub : {"units", "bench quality", "eval", "compress", "decompress"}) {
    ASSERT_EQ(test::run_command(ccc + " " + sub + " --help", &out), 0);
    EXPECT_NE(out.find("--tokenizer"), std::string::npos) << sub << ": " << out;
  }
  ASSERT_EQ(test::run_command(ccc + " finetune --help", &out), 0);
  EXPECT_NE(out.find("=300"), std::string::npos) << out;  // --steps shows its default
  EXPECT_NE(out.find("peak learning rate"), std::string::npos) << out;
  const std::string ckpt = test::shared_path("models/stories260K.bin");
  if (!std::filesystem::exists(ckpt)) GTEST_SKIP() << "no ../shared";
  ASSERT_EQ(test::run_command("printf 'Once upon a time' | " + ccc + " bits -m " + ckpt + " - ", &out), 0) << out;
  EXPECT_NE(out.find("bits_per_byte"), std::string::npos) << out;
}

// A window the model cannot take is refused before anything runs: non-zero exit naming the model and the
// window, and no output directory.
TEST(CliTest, BenchCompressRefusesAnImpossibleWindowBeforeRunning) {
  test::TempDir tmp;
  write_file_atomic(tmp.file("x.txt"), std::string(500, 'a'));
  std::string out;
  EXPECT_NE(test::run_command(std::string(CCC_BINARY) + " bench compress -m " + std::string(CCC_SOURCE_DIR) +
                                  "/data/models/ccc-attn1 " + tmp.file("x.txt") + " --window 0 --window 5000 --out-dir " +
                                  tmp.file("out") + " 2>&1", &out), 0);
  EXPECT_NE(out.find("--window 5000"), std::string::npos) << out;
  EXPECT_NE(out.find("ccc-attn1"), std::string::npos) << out;
  EXPECT_FALSE(std::filesystem::exists(tmp.file("out"))) << out;
}

// bench compress in a directory whose name has a space and a quote: CSV fields quoted, unmeasured cells
// empty, the fingerprint and machine recorded, and the plots it names exist.
TEST(CliTest, BenchCompressQuotesPathsAndLeavesUnmeasuredCellsEmpty) {
  test::TempDir tmp;
  const std::string dir = tmp.file("a b'c");
  std::filesystem::create_directories(dir);
  std::string text;
  for (int i = 0; text.size() < 2000; ++i) text += "word " + std::to_string(i % 37) + " ";
  write_file_atomic(dir + "/x,y.txt", text);
  std::string out;
  ASSERT_EQ(test::run_command(std::string(CCC_BINARY) + " bench compress -m " + std::string(CCC_SOURCE_DIR) +
                                  "/data/models/ccc-attn1 " + "\"" + dir + "/x,y.txt\" --out-dir \"" + dir +
                                  "/out\" --window 0 --window 16", &out), 0)
      << out;
  const std::string csv = read_file(dir + "/out/bench_compress.csv");
  EXPECT_NE(csv.find("\n\"x,y.txt\",gzip -9,,,"), std::string::npos) << csv;  // no params or fingerprint for gzip
  const auto m = load_model(std::string(CCC_SOURCE_DIR) + "/data/models/ccc-attn1");
  EXPECT_NE(csv.find(",ccc ccc-attn1,"), std::string::npos) << csv;
  EXPECT_NE(csv.find(m.fingerprint), std::string::npos) << csv;
  EXPECT_EQ(csv.find(",-1"), std::string::npos) << csv;
  // the roofline (column roofline_GFLOP_s) is read beside each model's run: empty for gzip, positive for
  // the model, and the model's roofline share is its FLOPs at its speed over that reading
  auto fields = [&](const std::string& prefix) {
    std::vector<std::string> f;
    const std::string text = "\n" + csv;
    const size_t at = text.find("\n" + prefix);
    if (at == std::string::npos) return f;
    std::string cur;
    bool quoted = false;
    for (size_t i = at + 1; i < text.size() && (quoted || text[i] != '\n'); ++i) {
      if (text[i] == '"') quoted = !quoted;
      else if (text[i] == ',' && !quoted) f.push_back(std::exchange(cur, ""));
      else cur += text[i];
    }
    f.push_back(cur);
    return f;
  };
  const auto header = fields("file,");
  const auto gz = fields("\"x,y.txt\",gzip -9,"), cm = fields("\"x,y.txt\",ccc ccc-attn1,");
  ASSERT_EQ(header.size(), 19u) << csv;
  ASSERT_EQ(gz.size(), header.size()) << csv;
  ASSERT_EQ(cm.size(), header.size()) << csv;
  EXPECT_EQ(header[12], "roofline_GFLOP_s");
  EXPECT_EQ(gz[12], "");
  // one row per --window: the automatic one (n_ctx / 2 for a rotary model) and 16, each with its own bits
  EXPECT_EQ(header[13], "window");
  EXPECT_EQ(gz[13], "");
  EXPECT_EQ(cm[13], std::to_string(m.config.n_ctx / 2)) << csv;
  const auto w16 = fields("\"x,y.txt\",ccc ccc-attn1 (window 16),");
  ASSERT_EQ(w16.size(), header.size()) << csv;
  EXPECT_EQ(w16[13], "16");
  EXPECT_NE(w16[4], cm[4]) << "a 16-byte window should cost other bits than " << cm[13] << " on 2 KB";
  // K/V cache traffic: fp16 K and V per key (n_kv_heads x d_head each), so per byte it is the attention
  // FLOPs per byte x n_kv_heads / n_heads; at the run's speed; next to a positive memory bandwidth
  EXPECT_EQ(header[14], "kv_cache_bytes_per_byte");
  EXPECT_EQ(header[17], "memory_read_GB_s");
  EXPECT_EQ(gz[14], "");
  EXPECT_NEAR(std::stod(cm[14]), std::stod(cm[9]) * static_cast<double>(m.config.n_kv_heads) / m.config.n_heads, 1.0)
      << csv;
  EXPECT_LT(std::stod(w16[14]), std::stod(cm[14])) << "a shorter window reads less of its cache";
  // GB/s is printed to 3 decimals and MB/s to 4: allow both roundings (the second is what a slow run,
  // e.g. under a parallel ctest, makes large: it was 0.0019 GB/s at 0.024 MB/s)
  EXPECT_NEAR(std::stod(cm[15]), std::stod(cm[14]) * std::stod(cm[5]) / 1e3,
              0.0006 + std::stod(cm[14]) * 0.00005 / 1e3 + std::stod(cm[15]) * 1e-4)
      << csv;
  EXPECT_GT(std::stod(cm[17]), 0.0);
  const double roof = std::stod(cm[12]), params = std::stod(cm[2]), mb_s = std::stod(cm[5]);
  EXPECT_GT(roof, 0.0);
  // the CSV rounds MB/s to 4 decimals and the share to 2: allow exactly that rounding
  const double share = std::stod(cm[7]), tol = 0.006 + share * (0.00006 / mb_s + 1e-3);
  EXPECT_NEAR(share, 100.0 * 2.0 * params * mb_s * 1e6 / (roof * 1e9), tol) << csv;
  if (out.find("pareto.png") != std::string::npos) {
    EXPECT_TRUE(std::filesystem::exists(dir + "/out/pareto.png"));
  }
  if (test::run_command("command -v gnuplot >/dev/null") == 0) {
    EXPECT_TRUE(std::filesystem::exists(dir + "/out/pareto.png")) << out;
    EXPECT_TRUE(std::filesystem::exists(dir + "/out/scaling.png")) << out;
  }
}

// compress / decompress stream: peak RSS does not grow with the input (frames of 64 KiB, 0.3 vs 2.4 MB,
// measured by ccc bench memory on child processes, round trip checked there); whole-input commands refuse
// an unbounded input with a clear error instead of exhausting memory.
TEST(CliTest, StreamingKeepsMemoryFlatAndWholeInputsAreBounded) {
  const std::string ccc = CCC_BINARY;
  std::string out;
  ASSERT_EQ(test::run_command(ccc + " bench memory --sizes 0.3,2.4 --frame-bytes 65536", &out), 0) << out;
  std::vector<double> ratios;
  std::istringstream lines(out);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("| ", 0) != 0 || line.find("input") != std::string::npos) continue;
    ratios.push_back(std::stod(line.substr(line.rfind("| ", line.size() - 3) + 2)));
  }
  ASSERT_EQ(ratios.size(), 2u) << out;
  EXPECT_LT(ratios[1], 1.10) << out;  // 8x the input, within 10% of the memory (compress, decompress, bits)
  // per-token JSON holds the input whole: bounded, with a clear error
  EXPECT_NE(test::run_command("timeout 60 " + ccc + " bits --json -m " + std::string(CCC_SOURCE_DIR) + "/data/models/ccc-attn1 /dev/zero", &out), 0);
  EXPECT_NE(out.find("/dev/zero: more than 256 MiB"), std::string::npos) << out;
}

// A run that cannot succeed leaves nothing: a diverging learning rate stops before anything is saved, a bad
// --init fails before the run directory exists, a run whose memory estimate exceeds --max-memory (or the
// machine) is refused from its shapes before anything is allocated; a rerun is not refused with "exists".
TEST(TrainCliTest, FailedRunsLeaveNothingAndMemoryIsEstimatedFirst) {
  test::TempDir tmp;
  write_file_atomic(tmp.file("toy.txt"), test::synthetic_text(2, 20000));
  auto o = test::tiny_options();
  o.steps = 3;
  o.warmup_steps = 1;
  auto config = [&](const std::string& name, const model::TrainOptions& t, const ModelConfig& m) {
    write_file_atomic(tmp.file(name), nlohmann::json({{"model", m.to_json()}, {"train", t.to_json()}}).dump());
    return std::string(CCC_BINARY) + " train -c " + tmp.file(name) + " --corpora " + tmp.path() + " -o " + tmp.file("out");
  };
  std::string out;
  auto nan = o;
  nan.lr = 1e308;
  nan.min_lr = 1e307;
  EXPECT_EQ(test::run_command(config("nan.json", nan, test::tiny_train_model_config()) + " 2>&1", &out), 1) << out;
  EXPECT_NE(out.find("training diverged at step 1"), std::string::npos) << out;
  EXPECT_FALSE(std::filesystem::exists(tmp.file("out")));
  const std::string ok = config("ok.json", o, test::tiny_train_model_config());
  EXPECT_NE(test::run_command(ok + " --init " + tmp.file("missing") + " 2>&1", &out), 0);
  EXPECT_FALSE(std::filesystem::exists(tmp.file("out")));
  EXPECT_NE(test::run_command(ok + " --max-memory 1000000 2>&1", &out), 0);
  EXPECT_NE(out.find("needs an estimated"), std::string::npos) << out;
  EXPECT_NE(out.find("allowed by --max-memory"), std::string::npos) << out;
  EXPECT_FALSE(std::filesystem::exists(tmp.file("out")));
  auto huge = test::tiny_train_model_config();
  huge.d_model = 1 << 16;
  huge.n_heads = huge.n_kv_heads = 64;
  huge.d_head = 1024;
  huge.d_mlp = 1 << 18;
  huge.n_layers = 64;
  EXPECT_NE(test::run_command(config("huge.json", o, huge) + " 2>&1", &out), 0);
  EXPECT_NE(out.find("needs an estimated"), std::string::npos) << out;
  EXPECT_EQ(out.find("Exception raised from"), std::string::npos) << out;  // no LibTorch backtrace
  EXPECT_FALSE(std::filesystem::exists(tmp.file("out")));
  ASSERT_EQ(test::run_command(ok + " 2>&1", &out), 0) << out;  // the name was never taken
  // the estimate is conservative: at least the measured peak of that run (the largest child's RSS so far)
  const uint64_t estimate = model::training_memory_bytes(test::tiny_train_model_config(), o);
  struct rusage ru {};
  ASSERT_EQ(::getrusage(RUSAGE_CHILDREN, &ru), 0);
  const uint64_t peak = static_cast<uint64_t>(ru.ru_maxrss) * 1024;
#if defined(__SANITIZE_ADDRESS__)
  // AddressSanitizer's shadow memory and quarantine are not the program's: the estimate is for real builds
  (void)estimate;
  (void)peak;
#else
  EXPECT_GE(estimate, peak) << "estimate " << estimate << " bytes, measured peak " << peak;
  EXPECT_LE(estimate, 4 * peak) << "estimate " << estimate << " bytes, measured peak " << peak;
#endif
}

TEST(TrainCliTest, RefusesToOverwriteAndWritesAModelCard) {
  test::TempDir tmp;
  write_file_atomic(tmp.file("toy.txt"), test::synthetic_text(2, 20000));
  auto o = test::tiny_options();
  o.steps = 6;
  o.eval_every = 3;
  nlohmann::json j = {{"model", test::tiny_train_model_config().to_json()}, {"train", o.to_json()}};
  write_file_atomic(tmp.file("cfg.json"), j.dump());
  const std::string base = std::string(CCC_BINARY) + " train -c " + tmp.file("cfg.json") + " --corpora " + tmp.path() +
                           " -o " + tmp.file("out");
  std::string out;
  ASSERT_EQ(test::run_command(base, &out), 0) << out;
  auto card = nlohmann::json::parse(read_file(tmp.file("out/model_card.json")));
  EXPECT_EQ(card["steps"].get<int64_t>(), 6);
  EXPECT_EQ(card["tokens_seen"].get<int64_t>(), 6 * 8 * 32);
  EXPECT_EQ(card["data"][0]["sha256"], sha256_hex(read_file(tmp.file("toy.txt"))));
  EXPECT_GT(card["held_out_bpb"]["toy"].get<double>(), 0.5);
  EXPECT_NE(card["command"].get<std::string>().find(" train "), std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(tmp.file("out/train_log.csv")));
  const auto weights = read_file(tmp.file("out/model.safetensors"));
  // a second run into the same directory refuses and changes nothing
  EXPECT_NE(test::run_command(base, &out), 0);
  EXPECT_NE(out.find("exists"), std::string::npos) << out;
  EXPECT_EQ(read_file(tmp.file("out/model.safetensors")), weights);
  // the model loads and scores
  auto m = load_model(tmp.file("out"));
  EXPECT_EQ(m.config.d_model, 16);
  // train_log.csv leaves val_bpb empty at steps without a validation pass (never -1)
  const std::string log = read_file(tmp.file("out/train_log.csv"));
  EXPECT_NE(log.find("\n1,256,"), std::string::npos) << log;
  EXPECT_EQ(log.find(",-1"), std::string::npos) << log;
  EXPECT_NE(log.find(",,"), std::string::npos) << log;
  // a staged recipe: --init starts from out's weights (with a learning rate of ~0 the next stage ends
  // where it started), the card names the start, and an architecture mismatch is refused
  auto o2 = o;
  o2.steps = 1;
  o2.warmup_steps = 1;
  o2.lr = 1e-12;
  o2.min_lr = 1e-12;
  o2.save_dtype = "f32";
  write_file_atomic(tmp.file("stage2.json"), nlohmann::json({{"model", test::tiny_train_model_config().to_json()}, {"train", o2.to_json()}}).dump());
  ASSERT_EQ(test::run_command(std::string(CCC_BINARY) + " train -c " + tmp.file("stage2.json") + " --corpora " + tmp.path() +
                                  " -o " + tmp.file("s2") + " --init " + tmp.file("out"), &out), 0) << out;
  auto s2 = load_model(tmp.file("s2"));
  auto src = m.model->named_parameters();
  double worst = 0;
  for (const auto& p : s2.model->named_parameters())
    worst = std::max(worst, (p.value() - src[p.key()]).abs().max().item<double>());
  EXPECT_LT(worst, 1e-6);
  EXPECT_EQ(nlohmann::json::parse(read_file(tmp.file("s2/model_card.json")))["init_from"]["fingerprint"], m.fingerprint);
  auto wide = test::tiny_train_model_config();
  wide.d_mlp *= 2;
  write_file_atomic(tmp.file("wide.json"), nlohmann::json({{"model", wide.to_json()}, {"train", o2.to_json()}}).dump());
  EXPECT_NE(test::run_command(std::string(CCC_BINARY) + " train -c " + tmp.file("wide.json") + " --corpora " + tmp.path() +
                                  " -o " + tmp.file("w") + " --init " + tmp.file("out"), &out), 0);
  EXPECT_NE(out.find("model config differs"), std::string::npos) << out;
  // a later stage may lengthen the context of a model without learned positions, never of one with them
  auto longer = test::tiny_train_model_config();
  longer.n_ctx = 64;
  write_file_atomic(tmp.file("long.json"), nlohmann::json({{"model", longer.to_json()}, {"train", o2.to_json()}}).dump());
  EXPECT_NE(test::run_command(std::string(CCC_BINARY) + " train -c " + tmp.file("long.json") + " --corpora " + tmp.path() +
                                  " -o " + tmp.file("l") + " --init " + tmp.file("out"), &out), 0);
  EXPECT_NE(out.find("model config differs"), std::string::npos) << out;
  auto rot = test::tiny_train_model_config();
  rot.pos = PosKind::kRotary;
  rot.rotary_dim = 4;
  Transformer rot_model(rot);
  rot_model->init_weights(11);
  save_model(tmp.file("rot"), rot, rot_model, SaveDtype::kF32);
  auto rot_longer = rot;
  rot_longer.n_ctx = 64;
  write_file_atomic(tmp.file("rot_long.json"), nlohmann::json({{"model", rot_longer.to_json()}, {"train", o2.to_json()}}).dump());
  ASSERT_EQ(test::run_command(std::string(CCC_BINARY) + " train -c " + tmp.file("rot_long.json") + " --corpora " + tmp.path() +
                                  " -o " + tmp.file("rl") + " --init " + tmp.file("rot"), &out), 0) << out;
  EXPECT_EQ(load_model(tmp.file("rl")).config.n_ctx, 64);
  // finetune: saved in the dtype its card states, and its model card is a card (not the trade-off report)
  ASSERT_EQ(test::run_command(std::string(CCC_BINARY) + " finetune -m " + tmp.file("out") + " --corpus toy --corpora " +
                                  tmp.path() + " --steps 2 --batch 4 --seq-len 32 -o " + tmp.file("ft"), &out), 0) << out;
  const auto ft_card = nlohmann::json::parse(read_file(tmp.file("ft/model_card.json")));
  const auto tradeoff = nlohmann::json::parse(read_file(tmp.file("ft/tradeoff.json")));
  EXPECT_NE(ft_card, tradeoff);
  EXPECT_EQ(ft_card["dtype"], "f32");
  EXPECT_EQ(ft_card["finetuned_from"]["fingerprint"], m.fingerprint);
  EXPECT_EQ(ft_card["fingerprint"], load_model(tmp.file("ft")).fingerprint);
  EXPECT_NEAR(ft_card["held_out_bpb"]["toy"].get<double>(), tradeoff["tradeoff"][0]["bpb_after"].get<double>(), 1e-12);
  const std::string st = read_file(tmp.file("ft/model.safetensors"));
  EXPECT_NE(st.find("\"F32\""), std::string::npos);
  EXPECT_EQ(st.find("\"F16\""), std::string::npos);
}

}  // namespace
}  // namespace ccc::model

namespace ccc::compress {
namespace {

TEST(CompressCliTest, RoundTripRefusesOverwriteAndLeavesNoOutputOnError) {
  test::TempDir tmp;
  auto m = test::tiny_byte_lm();
  model::save_model(tmp.file("model"), m.config, m.model);
  const std::string data = test::unicode_text();
  write_file_atomic(tmp.file("in.txt"), data);
  const std::string ccc = std::string(CCC_BINARY) + " ";
  const std::string model = " -m " + tmp.file("model") + " ";
  std::string out;
  ASSERT_EQ(test::run_command(ccc + "compress -q" + model + tmp.file("in.txt"), &out), 0) << out;
  const auto packed = read_file(tmp.file("in.txt.ccc"));
  // output exists: refused, file untouched
  EXPECT_NE(test::run_command(ccc + "compress -q" + model + tmp.file("in.txt"), &out), 0);
  EXPECT_NE(out.find("exists"), std::string::npos) << out;
  EXPECT_EQ(read_file(tmp.file("in.txt.ccc")), packed);
  ASSERT_EQ(test::run_command(ccc + "decompress" + model + tmp.file("in.txt.ccc") + " -o " + tmp.file("back.txt"), &out), 0)
      << out;
  EXPECT_EQ(read_file(tmp.file("back.txt")), data);
  // stdin to stdout
  ASSERT_EQ(test::run_command(ccc + "compress -q" + model + "- < " + tmp.file("in.txt") + " | " + ccc + "decompress" +
                                  model + "- -o - > " + tmp.file("pipe.txt"),
                              &out),
            0)
      << out;
  EXPECT_EQ(read_file(tmp.file("pipe.txt")), data);
  // corrupt input: error, non-zero exit, no output file
  auto bad = packed;
  bad[bad.size() - 3] ^= 0x40;
  write_file_atomic(tmp.file("bad.ccc"), bad);
  EXPECT_NE(test::run_command(ccc + "decompress" + model + tmp.file("bad.ccc"), &out), 0);
  EXPECT_NE(out.find("error:"), std::string::npos) << out;
  EXPECT_FALSE(std::filesystem::exists(tmp.file("bad")));
}

}  // namespace
}  // namespace ccc::compress

namespace ccc {
namespace {

// docs/example.cpp, built against ccc.h alone, scores a file as the compressor codes it and prices a head:
// its figures are those of `ccc bits --streams` and `ccc ablate` on the same file.
TEST(Example, TheLibraryExampleMatchesTheCommands) {
  test::TempDir tmp;
  std::string text = test::synthetic_text(5, 3000);
  text.resize(3000);  // two streams of 1500 bytes
  write_file_atomic(tmp.file("in.txt"), text);
  const std::string model = std::string(CCC_SOURCE_DIR) + "/data/models/ccc-attn2";
  std::string out;
  ASSERT_EQ(test::run_command(std::string(CCC_EXAMPLE) + " " + model + " " + tmp.file("in.txt") + " 2>&1", &out), 0) << out;
  auto field = [&](const std::string& name) {
    const size_t at = out.find(name + " ");
    EXPECT_NE(at, std::string::npos) << name << " missing from: " << out;
    return at == std::string::npos ? NAN : std::stod(out.substr(at + name.size() + 1));
  };
  const double total = field("total_bits"), delta = field("delta_bits"), seen = field("bytes_seen");
  std::string bits_json, ablate_json;
  ASSERT_EQ(test::run_command(std::string(CCC_BINARY) + " bits --json --streams 2 -m " + model + " " + tmp.file("in.txt") +
                                  " 2>/dev/null", &bits_json), 0) << bits_json;
  ASSERT_EQ(test::run_command(std::string(CCC_BINARY) + " ablate --json -q -c 1.0 -m " + model + " " + tmp.file("in.txt") +
                                  " 2>/dev/null", &ablate_json), 0) << ablate_json;
  const auto b = nlohmann::json::parse(bits_json), a = nlohmann::json::parse(ablate_json);
  EXPECT_NEAR(total, b["total_bits"].get<double>(), 1e-3);
  EXPECT_NEAR(delta, a["delta_bits"].get<double>(), 1e-3);
  EXPECT_GT(std::abs(delta), 0.0);
  // the observer on block 0 saw the position of every input byte but each stream's last (predicted, never fed)
  EXPECT_EQ(seen, 2998);
}

}  // namespace
}  // namespace ccc

namespace ccc {
namespace {

// Plots and side outputs (issue 28, items 1-2): a planted link at the old predictable temporary is never
// followed, a FIFO target is written into and stays a FIFO, existing outputs are refused without --force,
// and a dump never overwrites its own input.
TEST(CliTest, PlotsAndSideOutputsAreWrittenSafely) {
  test::TempDir tmp;
  const std::string ccc = std::string(CCC_BINARY) + " ", m = " -m " + std::string(CCC_SOURCE_DIR) + "/data/models/ccc-byte-xs ";
  const std::string in = tmp.file("in.txt");
  write_file_atomic(in, test::synthetic_text(4, 600));
  write_file_atomic(tmp.file("victim.txt"), "victim");
  std::filesystem::create_symlink(tmp.file("victim.txt"), tmp.file("heads.png.tmp.png"));
  std::filesystem::create_symlink(tmp.file("victim.txt"), tmp.file("heads.png.dat.tmp"));
  std::string out;
  const std::string sweep = ccc + "sweep -q" + m + in + " --plot " + tmp.file("heads.png") + " --csv " + tmp.file("h.csv");
  ASSERT_EQ(test::run_command(sweep + " 2>&1", &out), 0) << out;
  EXPECT_EQ(read_file(tmp.file("victim.txt")), "victim");
  EXPECT_EQ(read_file(tmp.file("heads.png")).substr(1, 3), "PNG");
  // existing --plot / --csv: refused without -f, both kept; replaced with -f
  const std::string png = read_file(tmp.file("heads.png"));
  write_file_atomic(tmp.file("h.csv"), "mine");
  EXPECT_NE(test::run_command(sweep + " 2>&1", &out), 0);
  EXPECT_NE(out.find("exists"), std::string::npos) << out;
  EXPECT_EQ(read_file(tmp.file("h.csv")), "mine");
  ASSERT_EQ(test::run_command(sweep + " -f 2>&1", &out), 0) << out;
  EXPECT_NE(read_file(tmp.file("h.csv")), "mine");
  // a FIFO target receives the PNG and stays a FIFO
  const std::string fifo = tmp.file("plot.fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  ASSERT_EQ(test::run_command("timeout 60 cat " + fifo + " > " + tmp.file("got.png") + " & " + ccc + "sweep -q" + m + in +
                                  " --plot " + fifo + " && wait", &out), 0) << out;
  struct stat st{};
  ASSERT_EQ(::stat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_EQ(read_file(tmp.file("got.png")).substr(1, 3), "PNG");
  // discover -o: an existing file is refused without -f
  write_file_atomic(tmp.file("circuit.json"), "mine");
  EXPECT_NE(test::run_command(ccc + "discover -q --method attribution" + m + in + " -o " + tmp.file("circuit.json") + " 2>&1",
                              &out), 0);
  EXPECT_NE(out.find("exists"), std::string::npos) << out;
  EXPECT_EQ(read_file(tmp.file("circuit.json")), "mine");
  // a dump never replaces its input, with or without --force
  const std::string text = read_file(in);
  EXPECT_NE(test::run_command(ccc + "dump -f" + m + in + " -o " + in + " 2>&1", &out), 0);
  EXPECT_NE(out.find("input"), std::string::npos) << out;
  EXPECT_NE(test::run_command(ccc + "compress -q" + m + in + " -o " + tmp.file("c.ccc") + " --dump " + in +
                                  " --dump-force 2>&1", &out), 0);
  EXPECT_NE(out.find("input"), std::string::npos) << out;
  EXPECT_EQ(read_file(in), text);
}

}  // namespace
}  // namespace ccc

namespace ccc {
namespace {

// SIGXFSZ is ignored (issue 28, item 7): a write past `ulimit -f` fails with EFBIG into the one-line error
// path, and nothing is left behind — no output, no temporary.
// `ablate --positions…` counts only the selected positions: its delta_bits equal the sum of the per-token
// Δbits (--per-token, one stream: token k is byte k of a byte model) at the bytes the regex selects, the
// JSON names the mask and its size, sweep rows agree with ablate, and commands without masks refuse one.
TEST(CliTest, PositionMasksCountOnlyTheSelectedTokens) {
  test::TempDir tmp;
  const std::string text = test::synthetic_text(4, 1500);
  write_file_atomic(tmp.file("t.txt"), text);
  const std::string ablate = std::string(CCC_BINARY) + " ablate -q -m " + std::string(CCC_SOURCE_DIR) +
                             "/data/models/ccc-attn2 " + tmp.file("t.txt") + " --streams 1";
  const std::string base = ablate + " -c 1.0,1.1";
  std::string out;
  ASSERT_EQ(test::run_command(base + " --per-token", &out), 0) << out;
  const auto all = nlohmann::json::parse(out);
  EXPECT_EQ(all["positions"]["mask"], "all");
  const auto clean = all["clean_bits"].get<std::vector<double>>(), abl = all["ablated_bits"].get<std::vector<double>>();
  ASSERT_EQ(clean.size(), text.size());
  double want = 0;
  int64_t count = 0;
  for (size_t i = 0; i < text.size(); ++i)
    if (text[i] == 'e' || text[i] == ' ') want += abl[i] - clean[i], ++count;
  ASSERT_EQ(test::run_command(base + " --json --positions-regex '[e ]'", &out), 0) << out;
  const auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["positions"]["mask"], "regex [e ]");
  EXPECT_EQ(j["positions"]["count"].get<int64_t>(), count);
  EXPECT_EQ(j["positions"]["bytes"].get<int64_t>(), count);
  EXPECT_NEAR(j["delta_bits"].get<double>(), want, 1e-3) << "max difference " << std::abs(j["delta_bits"].get<double>() - want);
  EXPECT_NEAR(j["delta_bits_per_byte"].get<double>(), want / static_cast<double>(count), 1e-6);
  const std::string sweep = std::string(CCC_BINARY) + " sweep -q -m " + std::string(CCC_SOURCE_DIR) + "/data/models/ccc-attn2 " +
                            tmp.file("t.txt") + " --streams 1 --json --positions-regex '[e ]'";
  ASSERT_EQ(test::run_command(sweep, &out), 0) << out;
  const auto sw = nlohmann::json::parse(out);
  EXPECT_EQ(sw["positions"]["count"].get<int64_t>(), count);
  ASSERT_EQ(test::run_command(ablate + " -c 1.0 --json --positions-regex '[e ]'", &out), 0) << out;
  const auto one = nlohmann::json::parse(out);
  for (const auto& row : sw["components"])
    if (row["component"] == "1.0") {
      EXPECT_NEAR(row["delta_bits"].get<double>(), one["delta_bits"].get<double>(), 1e-3);
    }
  EXPECT_NE(test::run_command(base + " --positions-regex 'zzzz' 2>&1", &out), 0);
  EXPECT_NE(out.find("hold no coded token"), std::string::npos) << out;
  ASSERT_EQ(test::run_command(std::string(CCC_BINARY) + " attribute -q --json --check -m " + std::string(CCC_SOURCE_DIR) +
                                  "/data/models/ccc-attn2 " + tmp.file("t.txt") + " --streams 1 --positions-regex '[e ]'", &out), 0) << out;
  const auto aj = nlohmann::json::parse(out);
  EXPECT_EQ(aj["positions"]["count"].get<int64_t>(), count);
  for (const auto& row : sw["components"])  // --check's exact column is the masked sweep
    for (const auto& c : aj["components"])
      if (c["component"] == row["component"]) {
        EXPECT_NEAR(c["delta_bits"].get<double>(), row["delta_bits"].get<double>(), 1e-3);
      }
  // bits: the masked total is the sum of the per-token bits over the mask
  const std::string bits = std::string(CCC_BINARY) + " bits -q -m " + std::string(CCC_SOURCE_DIR) +
                           "/data/models/ccc-attn2 " + tmp.file("t.txt") + " --streams 1 --json";
  ASSERT_EQ(test::run_command(bits, &out), 0) << out;
  const auto per = nlohmann::json::parse(out)["bits"][0].get<std::vector<double>>();
  ASSERT_EQ(per.size(), text.size());
  double want_bits = 0;
  for (size_t i = 0; i < text.size(); ++i)
    if (text[i] == 'e' || text[i] == ' ') want_bits += per[i];
  ASSERT_EQ(test::run_command(bits + " --positions-regex '[e ]'", &out), 0) << out;
  const auto bj = nlohmann::json::parse(out)["positions"];
  EXPECT_EQ(bj["count"].get<int64_t>(), count);
  EXPECT_NEAR(bj["total_bits"].get<double>(), want_bits, 1e-6);
  // discover: the same circuit search, priced over the mask only
  ASSERT_EQ(test::run_command(std::string(CCC_BINARY) + " discover -q --json -m " + std::string(CCC_SOURCE_DIR) +
                                  "/data/models/ccc-attn2 " + tmp.file("t.txt") + " --streams 1 --positions-regex '[e ]'",
                              &out), 0) << out;
  const auto dj = nlohmann::json::parse(out);
  EXPECT_EQ(dj["positions"]["count"].get<int64_t>(), count);
  EXPECT_EQ(dj["n_bytes"].get<int64_t>(), count);
  EXPECT_NEAR(dj["clean_total_bits"].get<double>(), want_bits, 1e-6);
}

// Paired patching from the command line: make-probe's corrupt twin, both directions in one table, the
// noising column equal to sweep --corrupt, an identical corrupt input costing nothing, and unpairable or
// contradictory inputs refused by name.
TEST(CliTest, PairedPatchingOfAProbeAndItsCorruptTwin) {
  test::TempDir tmp;
  std::string out;
  ASSERT_EQ(test::run_command(std::string(CCC_BINARY) + " make-probe -o " + tmp.file("rep.txt") + " --strings 12 --len 30 --seed 4", &out), 0) << out;
  const std::string model = " -q -m " + std::string(CCC_SOURCE_DIR) + "/data/models/ccc-attn2 --streams 1 ";
  const std::string patch = std::string(CCC_BINARY) + " patch" + model + "--clean " + tmp.file("rep.txt") +
                            " --corrupt " + tmp.file("rep-corrupt.txt") + " --positions repeated";
  ASSERT_EQ(test::run_command(patch + " --json --csv " + tmp.file("p.csv"), &out), 0) << out;
  const auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["components"].size(), 8u);  // --over heads by default
  EXPECT_GT(j["effect_bits_per_byte"].get<double>(), 2.0) << "the corruption's cost over the second copies";
  double best = 0;
  std::string best_name;
  for (const auto& c : j["components"])
    if (c["denoising"]["recovered"].get<double>() > best) best = c["denoising"]["recovered"], best_name = c["component"];
  EXPECT_GT(best, 0.5) << best_name;
  EXPECT_TRUE(best_name == "1.2" || best_name == "1.3") << best_name << " (the organism's induction heads)";
  const std::string csv = read_file(tmp.file("p.csv"));
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 9);
  ASSERT_EQ(test::run_command(std::string(CCC_BINARY) + " sweep" + model + tmp.file("rep.txt") + " --corrupt " +
                                  tmp.file("rep-corrupt.txt") + " --positions repeated --json", &out), 0) << out;
  const auto sw = nlohmann::json::parse(out);
  EXPECT_EQ(sw["mode"], "corrupt");
  for (size_t i = 0; i < 8; ++i)
    EXPECT_NEAR(sw["components"][i]["delta_bits"].get<double>(), j["components"][i]["noising"]["delta_bits"].get<double>(), 1e-3)
        << sw["components"][i]["component"];
  ASSERT_EQ(test::run_command(std::string(CCC_BINARY) + " patch" + model + tmp.file("rep.txt") + " --corrupt " +
                                  tmp.file("rep.txt") + " -c 1.2,0.2 --json", &out), 0) << out;
  const auto same = nlohmann::json::parse(out);
  EXPECT_EQ(same["effect_bits"].get<double>(), 0.0);
  for (const auto& c : same["components"]) {
    EXPECT_EQ(c["noising"]["delta_bits"].get<double>(), 0.0) << c["component"];
    EXPECT_EQ(c["denoising"]["delta_bits"].get<double>(), 0.0) << c["component"];
  }
  write_file_atomic(tmp.file("short.txt"), "abc");
  EXPECT_NE(test::run_command(std::string(CCC_BINARY) + " patch" + model + tmp.file("rep.txt") + " --corrupt " +
                                  tmp.file("short.txt") + " 2>&1", &out), 0);
  EXPECT_NE(out.find(tmp.file("short.txt")), std::string::npos) << out;
  EXPECT_NE(out.find("tokens"), std::string::npos) << out;
  EXPECT_NE(test::run_command(std::string(CCC_BINARY) + " ablate" + model + tmp.file("rep.txt") + " -c 1.2 --mode zero --corrupt " +
                                  tmp.file("rep.txt") + " 2>&1", &out), 0);
  EXPECT_NE(out.find("--corrupt goes with --mode corrupt"), std::string::npos) << out;
  EXPECT_NE(test::run_command(std::string(CCC_BINARY) + " ablate" + model + tmp.file("rep.txt") + " -c 1.2 --mode corrupt 2>&1", &out), 0);
  EXPECT_NE(out.find("needs --corrupt FILE"), std::string::npos) << out;
  EXPECT_NE(test::run_command(std::string(CCC_BINARY) + " patch" + model + tmp.file("rep.txt") + " 2>&1", &out), 0);
  EXPECT_NE(out.find("--sender"), std::string::npos) << out;
}

// heads --checkpoints refuses an existing emergence CSV or PNG without -f before it scores anything.
TEST(CliTest, EmergenceOutputsAreRefusedBeforeScoring) {
  test::TempDir tmp;
  write_file_atomic(tmp.file("e.png"), "keep");
  std::string out;
  EXPECT_NE(test::run_command(std::string(CCC_BINARY) + " heads --checkpoints " + std::string(CCC_SOURCE_DIR) +
                                  "/data/models/ccc-attn2 -o " + tmp.file("e.csv") + " 2>&1", &out), 0);
  EXPECT_NE(out.find(tmp.file("e.png") + " exists"), std::string::npos) << out;
  EXPECT_EQ(read_file(tmp.file("e.png")), "keep");
  EXPECT_FALSE(std::filesystem::exists(tmp.file("e.csv")));
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;  // the error only: no checkpoint row was scored
}

// An interrupted dump leaves no temporary: SIGINT, SIGTERM and SIGHUP remove the HDF5 file being written
// (its final name never appears), and the process still ends by the signal.
TEST(CliTest, InterruptedDumpsLeaveNoTemporary) {
  test::TempDir tmp;
  write_file_atomic(tmp.file("in.txt"), test::synthetic_text(3, 100000));
  const std::string m = " -m " + std::string(CCC_SOURCE_DIR) + "/data/models/ccc-byte-xs ";
  for (const std::string sig : {"INT", "TERM", "HUP"}) {
    std::string out;
    // wait until the temporary exists, then signal the core (the launcher execs it: same pid)
    // set -m: a background job of a script otherwise starts with SIGINT ignored (and then keeps ignoring it)
    const std::string script = "set -m; " + std::string(CCC_BINARY) + " dump -q " + tmp.file("in.txt") + " -o " + tmp.file("d.h5") + m +
                               "--hooks '*' & p=$!; for i in $(seq 1 200); do ls -a " + tmp.path() +
                               " | grep -q 'd.h5~ccc' && break; sleep 0.05; done; kill -" + sig +
                               " $p; wait $p; echo status=$?";
    write_file_atomic(tmp.path() + "/../interrupt-" + sig + ".sh", script);
    ASSERT_EQ(test::run_command("bash " + tmp.path() + "/../interrupt-" + sig + ".sh 2>&1", &out), 0) << out;
    std::filesystem::remove(tmp.path() + "/../interrupt-" + sig + ".sh");
    const std::map<std::string, int> code = {{"INT", 130}, {"TERM", 143}, {"HUP", 129}};
    EXPECT_NE(out.find("status=" + std::to_string(code.at(sig))), std::string::npos) << sig << ": " << out;
    size_t n = 0;
    for (const auto& e : std::filesystem::directory_iterator(tmp.path())) n += e.path().filename() != "in.txt";
    EXPECT_EQ(n, 0u) << sig;
  }
}

TEST(CliTest, WritesPastTheFileSizeLimitAreErrorsNotSignals) {
  test::TempDir tmp;
  std::string bytes;
  std::mt19937_64 rng(5);
  for (int i = 0; i < 65536; ++i) bytes.push_back(static_cast<char>(rng() & 0xff));
  write_file_atomic(tmp.file("r.bin"), bytes);
  const std::string m = " -m " + std::string(CCC_SOURCE_DIR) + "/data/models/ccc-byte-xs ";
  std::string out;
  const int rc = test::run_command("ulimit -f 8; " + std::string(CCC_BINARY) + " compress -q" + m + tmp.file("r.bin") +
                                       " -o " + tmp.file("r.ccc") + " 2>&1", &out);
  EXPECT_EQ(rc, 1) << out;  // exit status 1, not death by signal 25 (the shell would say 153)
  EXPECT_NE(out.find("r.ccc: File too large"), std::string::npos) << out;
  // A dump whose write fails (HDF5 chunks flushed past the limit) is one line too: no HDF5 diagnostic
  // stack, no segfault while the half-written file is closed, no temporary left.
  for (const std::string& args : {" dump -q " + tmp.file("r.bin") + " -o " + tmp.file("d.h5"),
                                 " compress -q " + tmp.file("r.bin") + " -o " + tmp.file("c.ccc") +
                                     " --dump " + tmp.file("d.h5")}) {
    const int rc2 = test::run_command("ulimit -f 100; " + std::string(CCC_BINARY) + args + m + "--hooks '*' 2>&1", &out);
    EXPECT_EQ(rc2, 1) << args << "\n" << out;
    EXPECT_NE(out.find("cannot write " + tmp.file("d.h5") + ": File too large"), std::string::npos) << out;
    EXPECT_EQ(out.find("HDF5-DIAG"), std::string::npos) << out;
    EXPECT_EQ(out.find("H5Dclose"), std::string::npos) << out;
  }
  size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(tmp.path())) n += e.path().filename() != "r.bin";
  EXPECT_EQ(n, 0u);
}

}  // namespace
}  // namespace ccc

namespace ccc {
namespace {

// report.md is valid UTF-8 even when a context window cuts a multi-byte character: the cut bytes are
// written \xNN (checked with Python's strict decoder, an independent UTF-8 validator).
TEST(CliTest, UnitReportsAreValidUtf8) {
  test::TempDir tmp;
  std::string text;
  while (text.size() < 6000) text += test::unicode_text();
  write_file_atomic(tmp.file("u.txt"), text);
  std::string out;
  const std::string model = " -m " + std::string(CCC_SOURCE_DIR) + "/data/models/ccc-attn2 ";
  ASSERT_EQ(test::run_command(std::string(CCC_BINARY) + " dump" + model + tmp.file("u.txt") + " -o " + tmp.file("d.h5") +
                                  " --hooks 'blocks.*.attn.hook_z' 2>&1", &out), 0) << out;
  ASSERT_EQ(test::run_command(std::string(CCC_BINARY) + " units -q " + tmp.file("d.h5") + " -o " + tmp.file("u") + " 2>&1", &out), 0)
      << out;
  const std::string report = read_file(tmp.file("u") + "/report.md");
  EXPECT_NE(report.find("⟦"), std::string::npos) << "no contexts in the report";
  EXPECT_EQ(test::run_command("/usr/bin/python3 -c \"open('" + tmp.file("u") + "/report.md', encoding='utf-8', errors='strict').read()\" 2>&1", &out), 0)
      << out;
}

}  // namespace
}  // namespace ccc

namespace ccc {
namespace {

// Every help page is free of CLI11's flag artefacts ({false}); an unknown command (at the top or under
// bench) is named as such instead of "A subcommand is required" or a neighbour's parse.
TEST(CliTest, HelpPagesAreCleanAndUnknownCommandsAreNamed) {
  const std::string ccc = CCC_BINARY;
  std::string out;
  ASSERT_EQ(test::run_command(ccc + " --help", &out), 0) << out;
  std::vector<std::string> commands;
  bool in_list = false;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("Subcommands:", 0) == 0) in_list = true;
    else if (in_list && line.size() > 2 && line[0] == ' ' && line[2] != ' ') commands.push_back(line.substr(2, line.find(' ', 2) - 2));
  }
  ASSERT_GT(commands.size(), 20u) << out;
  for (const auto& c : commands) {
    ASSERT_EQ(test::run_command(ccc + " " + c + " --help", &out), 0) << c;
    EXPECT_EQ(out.find("{false}"), std::string::npos) << c << ": " << out;
    EXPECT_EQ(out.find("{true}"), std::string::npos) << c << ": " << out;
  }
  for (const std::string bad : {"frobnicate", "frob train x", "bench frobnicate", "sae frobnicate"}) {
    EXPECT_NE(test::run_command(ccc + " " + bad + " 2>&1", &out), 0) << bad;
    const std::string word = bad.rfind("frob ", 0) == 0 ? bad.substr(0, bad.find(' ')) : bad;
    EXPECT_NE(out.find("unknown command '" + word + "'"), std::string::npos) << bad << ": " << out;
  }
}

// Outputs say how they were measured: ablate's JSON and text carry the stream count and window, and
// `--streams 0` is the automatic count in bits as in every other command.
TEST(CliTest, OutputsNameTheirStreamsAndWindow) {
  test::TempDir tmp;
  const std::string text = test::synthetic_text(6, 3000);
  write_file_atomic(tmp.file("t.txt"), text);
  const std::string model = " -q -m " + std::string(CCC_SOURCE_DIR) + "/data/models/ccc-attn2 ";
  std::string out;
  ASSERT_EQ(test::run_command(std::string(CCC_BINARY) + " ablate" + model + tmp.file("t.txt") + " -c 1.2 --json", &out), 0) << out;
  const auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["streams"].get<int64_t>(), model::auto_streams(text.size()));
  EXPECT_EQ(j["policy"], "rolling W=128");
  ASSERT_EQ(test::run_command(std::string(CCC_BINARY) + " ablate" + model + tmp.file("t.txt") + " -c 1.2", &out), 0) << out;
  EXPECT_NE(out.find(std::to_string(model::auto_streams(text.size())) + " streams, rolling W=128"), std::string::npos) << out;
  ASSERT_EQ(test::run_command(std::string(CCC_BINARY) + " bits" + model + tmp.file("t.txt") + " --streams 0 --json", &out), 0) << out;
  EXPECT_EQ(nlohmann::json::parse(out)["streams"].get<int64_t>(), model::auto_streams(text.size()));
}

}  // namespace
}  // namespace ccc

namespace ccc {
namespace {

// `ccc experiment competition --quick`: result.json (schema, every measurement with its null, verdict and
// its rule), the CSVs, section.md and the plot appear together; the same seed reproduces result.json; an
// unknown experiment or an existing directory is refused.
TEST(CliTest, ExperimentCompetitionWritesItsResultDirectory) {
  test::TempDir tmp;
  std::string out;
  ASSERT_EQ(test::run_command(std::string(CCC_BINARY) + " make-probe -o " + tmp.file("rep.txt") + " --strings 10 --len 30", &out), 0) << out;
  const std::string run = std::string(CCC_BINARY) + " experiment competition " + tmp.file("rep.txt") + " --quick -q -m " +
                          std::string(CCC_SOURCE_DIR) + "/data/models/ccc-attn2 -o ";
  ASSERT_EQ(test::run_command(run + tmp.file("a") + " 2>&1", &out), 0) << out;
  for (const char* f : {"result.json", "section.md", "tokens.csv", "winners.csv", "pairs.csv", "dominance.png"})
    EXPECT_TRUE(std::filesystem::exists(tmp.file("a") + "/" + f)) << f;
  const auto j = nlohmann::json::parse(read_file(tmp.file("a/result.json")));
  EXPECT_EQ(j["schema"], "ccc.experiment/1");
  EXPECT_EQ(j["experiment"], "competition");
  EXPECT_TRUE(j["verdict"] == "supported" || j["verdict"] == "not_supported" || j["verdict"] == "inconclusive");
  EXPECT_FALSE(j["verdict_rule"].get<std::string>().empty());
  for (const auto& [name, m] : j["measurements"].items()) {
    for (const char* k : {"value", "ci_low", "ci_high", "unit"}) EXPECT_TRUE(m.contains(k)) << name << " " << k;
    EXPECT_TRUE(j["null"].contains(name)) << name;
  }
  EXPECT_EQ(j["input_sha256"], sha256_hex(read_file(tmp.file("rep.txt"))));
  // the batched sweep beside one run per component: the same per-token bits, and a speed-up figure
  EXPECT_LT(j["timing"]["naive_max_abs_diff_bits"].get<double>(), 1e-4);
  EXPECT_GT(j["timing"]["speedup_over_one_run_per_component"].get<double>(), 0.0);
  ASSERT_EQ(test::run_command(run + tmp.file("b") + " 2>&1", &out), 0) << out;
  auto k = nlohmann::json::parse(read_file(tmp.file("b/result.json")));
  auto strip = [](nlohmann::json x) { x.erase("command"); x.erase("timing"); return x; };  // timings aside
  EXPECT_EQ(strip(j), strip(k)) << "same command and seed, same result";
  EXPECT_NE(test::run_command(run + tmp.file("a") + " 2>&1", &out), 0);
  EXPECT_NE(out.find("exists"), std::string::npos) << out;
  EXPECT_NE(test::run_command(std::string(CCC_BINARY) + " experiment nope -o " + tmp.file("c") + " 2>&1", &out), 0);
  EXPECT_NE(out.find("experiment nope: unknown"), std::string::npos) << out;
  EXPECT_FALSE(std::filesystem::exists(tmp.file("c")));
}

// copy-vs-recall --quick on the default model writes its directory with the schema the issue names; the
// competition on the organism and it make one report, which a real browser (Debian's chromium, headless)
// renders with every plot decoded and no error; the screenshot stays beside the test binary.
TEST(CliTest, CopyVsRecallAndTheReportRenderInAHeadlessBrowser) {
  test::TempDir tmp;
  std::string out;
  const std::string ccc = CCC_BINARY;
  ASSERT_EQ(test::run_command(ccc + " experiment copy-vs-recall --quick -q -o " + tmp.file("cvr") + " 2>&1", &out), 0) << out;
  for (const char* f : {"result.json", "section.md", "positions.csv", "components.csv", "win_rates.csv", "dose.csv",
                        "win_rate.png", "dose.png"})
    EXPECT_TRUE(std::filesystem::exists(tmp.file("cvr/") + f)) << f;
  const auto j = nlohmann::json::parse(read_file(tmp.file("cvr/result.json")));
  EXPECT_EQ(j["schema"], "ccc.experiment/1");
  EXPECT_EQ(j["experiment"], "copy-vs-recall");
  EXPECT_EQ(j["repeats"], nlohmann::json({0, 1, 2, 4}));
  for (int k : {0, 1, 2, 4}) {
    const std::string K = "k" + std::to_string(k);
    for (const std::string& name : {"win_rate_" + K, "bits_fact_" + K, "bits_counterfactual_" + K,
                                    "win_rate_" + K + "_copy_ablated", "win_rate_" + K + "_recall_ablated"}) {
      ASSERT_TRUE(j["measurements"].contains(name)) << name;
      for (const char* f : {"value", "ci_low", "ci_high", "unit"}) EXPECT_TRUE(j["measurements"][name].contains(f)) << name << " " << f;
    }
    EXPECT_TRUE(j["null"].contains("win_rate_" + K + "_copy_ablated"));
  }
  EXPECT_TRUE(j["measurements"].contains("switch_point"));
  EXPECT_EQ(j["components"].size(), 25u) << "20 heads and 5 MLPs";
  for (const auto& c : j["components"]) {
    EXPECT_TRUE(c["side"] == "copy" || c["side"] == "recall");
    EXPECT_TRUE(c.contains("logit_diff") && c.contains("win_rate_ablated_k1")) << c.dump();
  }
  EXPECT_FALSE(j["copy_components"].empty());
  EXPECT_FALSE(j["recall_components"].empty());
  EXPECT_TRUE(j["measurements"].contains(j["headline"].get<std::string>()));

  ASSERT_EQ(test::run_command(ccc + " make-probe -o " + tmp.file("rep.txt") + " --strings 10 --len 30", &out), 0) << out;
  ASSERT_EQ(test::run_command(ccc + " experiment competition " + tmp.file("rep.txt") + " --quick -q -m " +
                                  std::string(CCC_SOURCE_DIR) + "/data/models/ccc-attn2 -o " + tmp.file("comp") + " 2>&1", &out), 0) << out;
  ASSERT_EQ(test::run_command(ccc + " report " + tmp.file("cvr") + " " + tmp.file("comp") + " -o " + tmp.file("report") + " 2>&1", &out), 0) << out;
  EXPECT_NE(out.find("| claim of the conjecture |"), std::string::npos) << out;
  EXPECT_NE(out.find("copy-vs-recall (default"), std::string::npos) << out;
  EXPECT_NE(out.find("competition (ccc-attn2"), std::string::npos) << out;
  for (const char* f : {"report.html", "report.md", "1-copy-vs-recall-win_rate.png", "1-copy-vs-recall-dose.png",
                        "2-competition-dominance.png"})
    EXPECT_TRUE(std::filesystem::exists(tmp.file("report/") + f)) << f;
  const std::string html = read_file(tmp.file("report/report.html"));
  size_t images = 0;
  for (size_t at = html.find("<img "); at != std::string::npos; at = html.find("<img ", at + 1)) ++images;
  EXPECT_EQ(images, 3u);
  EXPECT_EQ(test::run_command(ccc + " report " + tmp.file("cvr") + " -o " + tmp.file("report") + " 2>&1", &out) == 0, false);
  EXPECT_NE(out.find("exists"), std::string::npos) << out;
  EXPECT_NE(test::run_command(ccc + " report " + tmp.file("nope") + " -o " + tmp.file("r2") + " 2>&1", &out), 0);
  EXPECT_NE(out.find("nope/result.json: missing"), std::string::npos) << out;
  EXPECT_FALSE(std::filesystem::exists(tmp.file("r2")));

  // the browser: every image decoded, no error; a screenshot for the reader of the test log
  ASSERT_EQ(test::run_command("command -v chromium >/dev/null"), 0) << "chromium is not installed: ./setup.sh test installs it";
  const std::string browser = "HOME=" + tmp.path() + " timeout 120 chromium --headless --no-sandbox --disable-gpu "
                              "--user-data-dir=" + tmp.file("profile") + " ";
  const std::string url = "file://" + std::filesystem::absolute(tmp.file("report/report.html")).string();
  ASSERT_EQ(test::run_command(browser + "--dump-dom " + url + " 2>/dev/null", &out), 0) << out;
  EXPECT_NE(out.find("data-images=\"3/3\""), std::string::npos) << out.substr(0, 2000);
  EXPECT_NE(out.find("data-errors=\"0\""), std::string::npos) << out.substr(0, 2000);
  const std::string shot = std::filesystem::absolute("report_browser_test.png").string();
  ASSERT_EQ(test::run_command(browser + "--hide-scrollbars --window-size=1200,3000 --screenshot=" + shot + " " + url + " 2>&1", &out), 0) << out;
  EXPECT_GT(std::filesystem::file_size(shot), 10000u);
  std::printf("report screenshot: %s\n", shot.c_str());
}

// icl and scaling --quick write their directories with named measurements and nulls; a study of the default
// model writes one directory per experiment and the report, and prints the summary table and its path.
TEST(CliTest, IclScalingAndTheStudyWriteTheirOutputs) {
  test::TempDir tmp;
  std::string out;
  const std::string ccc = CCC_BINARY;
  ASSERT_EQ(test::run_command(ccc + " experiment icl --quick -q -o " + tmp.file("icl") + " 2>&1", &out), 0) << out;
  auto j = nlohmann::json::parse(read_file(tmp.file("icl/result.json")));
  EXPECT_EQ(j["experiment"], "icl");
  for (const char* k : {"icl_score_clean", "icl_score_induction_ablated", "icl_score_rise_induction",
                        "second_copy_rise_induction", "crossover_position", "crossover_position_repeated"})
    EXPECT_TRUE(j["measurements"].contains(k)) << k;
  for (const char* k : {"icl_score_rise_induction", "second_copy_rise_induction"}) EXPECT_TRUE(j["null"].contains(k)) << k;
  EXPECT_EQ(j["induction_heads"], nlohmann::json({"1.2", "3.0"})) << "the default model's induction heads";
  for (const char* f : {"section.md", "bits_by_position.csv", "repeated_by_position.csv", "bits_vs_position.png"})
    EXPECT_TRUE(std::filesystem::exists(tmp.file("icl/") + f)) << f;

  ASSERT_EQ(test::run_command(ccc + " experiment scaling --quick -q -o " + tmp.file("scaling") + " 2>&1", &out), 0) << out;
  j = nlohmann::json::parse(read_file(tmp.file("scaling/result.json")));
  EXPECT_EQ(j["experiment"], "scaling");
  EXPECT_EQ(j["model"], "ccc-byte-xs,ccc-byte-s,ccc-byte-m,ccc-byte-l");
  EXPECT_TRUE(j["null"].contains("power_law_exponent"));
  EXPECT_EQ(j["family"].size(), 4u);
  EXPECT_GE(j["domains"].size(), 2u) << "at least prose and code";
  EXPECT_TRUE(j["classic_bits_per_byte"].contains("xz -9e"));
  for (const char* f : {"section.md", "scaling.csv", "classic.csv", "scaling.png"})
    EXPECT_TRUE(std::filesystem::exists(tmp.file("scaling/") + f)) << f;
  EXPECT_NE(test::run_command(ccc + " experiment scaling --quick -q --models " + std::string(CCC_SOURCE_DIR) +
                                  "/data/models/ccc-byte-xs -o " + tmp.file("sc2") + " 2>&1", &out), 0);
  EXPECT_NE(out.find("at least 3 models"), std::string::npos) << out;

  ASSERT_EQ(test::run_command(ccc + " study --quick -q --default-only --experiments icl -o " + tmp.file("study") + " 2>&1", &out), 0) << out;
  EXPECT_NE(out.find("icl-default"), std::string::npos) << out;
  EXPECT_NE(out.find("| claim of the conjecture |"), std::string::npos) << out;
  EXPECT_NE(out.find("report: "), std::string::npos) << out;
  EXPECT_TRUE(std::filesystem::exists(tmp.file("study/icl-default/result.json")));
  EXPECT_TRUE(std::filesystem::exists(tmp.file("study/report/report.html")));
  EXPECT_NE(test::run_command(ccc + " study --quick -q --experiments nope -o " + tmp.file("study2") + " 2>&1", &out), 0);
  EXPECT_NE(out.find("unknown experiment nope"), std::string::npos) << out;
}

// `ccc experiment emergence` on the organism's checkpoints (no size series) and `ccc experiment finetune` /
// `ccc finetune --save-every --circuits` on a tiny model and corpora the test writes: the result.json keys
// the issue names; the circuit tables equal direct `ccc ablate` calls on the same saved models; the
// experiment repeats with its seed (timings aside); frozen parameters stay bit-identical.
TEST(CliTest, EmergenceAndFinetuneExperimentsWriteTheirOutputs) {
  test::TempDir tmp;
  std::string out;
  const std::string ccc = CCC_BINARY;
  ASSERT_EQ(test::run_command(ccc + " experiment emergence --quick -q --models none -m " + std::string(CCC_SOURCE_DIR) +
                                  "/data/models/ccc-attn2 -o " + tmp.file("em") + " 2>&1", &out), 0) << out;
  auto j = nlohmann::json::parse(read_file(tmp.file("em/result.json")));
  EXPECT_EQ(j["experiment"], "emergence");
  for (const char* k : {"ability_change_step", "circuit_change_step", "lag_steps"}) {
    ASSERT_TRUE(j["measurements"].contains(k)) << k;
    for (const char* f : {"value", "ci_low", "ci_high", "unit"}) EXPECT_TRUE(j["measurements"][k].contains(f)) << k << " " << f;
  }
  EXPECT_EQ(j["measurements"]["ability_change_step"]["value"], 1100.0);  // the organism's phase change (steps 1000-1100)
  EXPECT_EQ(j["measurements"]["circuit_change_step"]["value"], 1100.0);
  EXPECT_EQ(j["series"].size(), 30u);
  for (const char* k : {"step", "induction_score", "icl_score", "bits_repeated", "bits_fresh", "circuit_delta_bits"})
    EXPECT_TRUE(j["series"][0].contains(k)) << k;
  for (const char* f : {"section.md", "emergence.csv", "emergence.png"}) EXPECT_TRUE(std::filesystem::exists(tmp.file("em/") + f)) << f;
  EXPECT_NE(test::run_command(ccc + " experiment emergence --quick -q --models none -m " + tmp.path() + " -o " + tmp.file("em2") + " 2>&1", &out), 0);
  EXPECT_NE(out.find("no checkpoints/ directory"), std::string::npos) << out;
  EXPECT_FALSE(std::filesystem::exists(tmp.file("em2")));
  EXPECT_NE(test::run_command(ccc + " experiment icl -m a -m b -o " + tmp.file("x") + " 2>&1", &out), 0);
  EXPECT_NE(out.find("takes one model"), std::string::npos) << out;

  // a tiny model and three corpora
  write_file_atomic(tmp.file("toy.txt"), test::synthetic_text(1, 12000));
  write_file_atomic(tmp.file("ref.txt"), test::synthetic_text(2, 12000));
  write_file_atomic(tmp.file("rep.txt"), test::repeated_strings(300, 20, 3, true));
  auto m = test::tiny_byte_lm(3, 32);
  model::save_model(tmp.file("base"), m.config, m.model);
  const std::string ft = ccc + " experiment finetune --quick -q -m " + tmp.file("base") + " --corpora " + tmp.path() + " --corpus toy ";
  ASSERT_EQ(test::run_command(ft + "-o " + tmp.file("ft") + " 2>&1", &out), 0) << out;
  j = nlohmann::json::parse(read_file(tmp.file("ft/result.json")));
  EXPECT_EQ(j["experiment"], "finetune");
  ASSERT_TRUE(j["measurements"].contains("circuit_shift_correlation"));
  ASSERT_TRUE(j["null"].contains("circuit_shift_correlation"));
  ASSERT_EQ(j["runs"].size(), 6u);  // quick: all and mlp x 3 snapshots
  for (const auto& r : j["runs"]) {
    for (const char* k : {"params", "steps", "target_delta_bits_per_byte", "other_delta_bits_per_byte", "circuit_shift"})
      EXPECT_TRUE(r.contains(k)) << k;
    EXPECT_EQ(r["other_delta_bits_per_byte"].size(), 2u);
    if (r["params"] != "all") {
      EXPECT_EQ(r["frozen_max_abs_diff"], 0.0);
    }
  }
  EXPECT_TRUE(j.contains("unit_classes"));
  EXPECT_TRUE(j.contains("crosscoder"));
  EXPECT_TRUE(j.contains("competition_winner_shares"));
  ASSERT_TRUE(j.contains("mechanism_notes"));  // the tiny context cannot hold copy-vs-recall's prompts: said, not fatal
  EXPECT_NE(j["mechanism_notes"][0].get<std::string>().find("more than"), std::string::npos);
  for (const char* f : {"section.md", "tradeoff.csv", "circuit_shift.csv", "tradeoff.png", "shift_vs_delta.png", "models/mlp-12/model.safetensors"})
    EXPECT_TRUE(std::filesystem::exists(tmp.file("ft/") + f)) << f;
  // the table's entry against `ccc ablate` on the kept snapshot and the same held-out head
  const auto corpora = model::load_corpora(tmp.path(), {"ref"});
  std::filesystem::create_directory(tmp.file("heads"));  // not beside the corpora (it is not one)
  write_file_atomic(tmp.file("heads/ref_head.txt"), corpora[0].split(model::Split::kHeldOut).substr(0, 256));
  for (const char* comp : {"0.1", "mlp1"}) {
    ASSERT_EQ(test::run_command(ccc + " ablate -m " + tmp.file("ft/models/mlp-12") + " " + tmp.file("heads/ref_head.txt") + " -c " + comp +
                                    " --mode mean --json", &out), 0) << out;
    const auto a = nlohmann::json::parse(out);
    const double table = j["runs"][5]["circuit_shift"][comp]["ref"]["after"].get<double>();
    EXPECT_NEAR(a["delta_bits_per_byte"].get<double>(), table, 1e-4) << comp;
  }
  // reproducible by seed, timings aside
  ASSERT_EQ(test::run_command(ft + "-o " + tmp.file("ft2") + " 2>&1", &out), 0) << out;
  auto j2 = nlohmann::json::parse(read_file(tmp.file("ft2/result.json")));
  auto strip = [](nlohmann::json x) {
    x.erase("wall_seconds");
    x.erase("command");
    x.erase("mechanism_seconds");
    x.erase("mechanism_notes");  // they name the snapshot's temporary path
    x["base"].erase("eval_seconds");
    x["unit_classes"].erase("seconds");
    x["crosscoder"].erase("seconds");
    for (auto& r : x["runs"]) r.erase("train_seconds"), r.erase("eval_seconds");
    return x;
  };
  const auto a1 = strip(j), a2 = strip(j2);
  for (const auto& [k, v] : a1.items()) EXPECT_EQ(v, a2[k]) << k;

  // ccc finetune keeps checkpoints and the per-circuit table
  ASSERT_EQ(test::run_command(ccc + " finetune -m " + tmp.file("base") + " --corpus toy --corpora " + tmp.path() +
                                  " --reference ref --reference rep --steps 4 --batch 4 --seq-len 32 --eval-bytes 256 --save-every 2 --circuits -q -o " + tmp.file("f1"), &out), 0) << out;
  EXPECT_TRUE(std::filesystem::exists(tmp.file("f1/checkpoints/step-2/model.safetensors")));
  EXPECT_TRUE(std::filesystem::exists(tmp.file("f1/checkpoints/step-4/model.safetensors")));
  EXPECT_NE(out.find("per-circuit shift"), std::string::npos) << out;
  const std::string csv = read_file(tmp.file("f1/circuits.csv"));
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 1 + 3 * (2 * 2 + 2));  // header + corpora x (4 heads + 2 MLPs)
  const auto row = csv.find("\n0.1,ref,");
  ASSERT_NE(row, std::string::npos) << csv;
  std::vector<double> f;
  std::stringstream ls(csv.substr(row + 1, csv.find('\n', row + 1) - row - 1));
  std::string cell;
  while (std::getline(ls, cell, ',')) f.push_back(std::atof(cell.c_str()));
  ASSERT_EQ(f.size(), 7u);
  ASSERT_EQ(test::run_command(ccc + " ablate -m " + tmp.file("f1") + " " + tmp.file("heads/ref_head.txt") + " -c 0.1 --mode mean --json", &out), 0) << out;
  EXPECT_NEAR(nlohmann::json::parse(out)["delta_bits_per_byte"].get<double>(), f[3], 1e-4);
  EXPECT_NEAR(f[4], f[3] - f[2], 1e-5);
}

// `ccc sae train` on a dump the test writes: a loadable dictionary in SAELens' layout with its sae.json;
// a hook the dump lacks and an existing output are named errors that write nothing.
TEST(CliTest, SaeTrainEvalAndCompressWithTheDictionaryInTheLoop) {
  test::TempDir tmp;
  std::string out;
  const std::string ccc = CCC_BINARY;
  write_file_atomic(tmp.file("in.txt"), test::synthetic_text(3, 3000));
  ASSERT_EQ(test::run_command(ccc + " dump " + tmp.file("in.txt") + " -o " + tmp.file("d.h5") +
                                  " --hooks blocks.0.mlp.hook_post 2>&1", &out), 0) << out;
  const std::string train = ccc + " sae train " + tmp.file("d.h5") + " --steps 30 --batch 256 --expansion 1 --k 8 --buffer 2048 -q ";
  ASSERT_EQ(test::run_command(train + "--hook blocks.0.mlp.hook_post -o " + tmp.file("sae") + " 2>&1", &out), 0) << out;
  const auto j = nlohmann::json::parse(read_file(tmp.file("sae/sae.json")));
  EXPECT_EQ(j["schema"], "ccc.sae/1");
  EXPECT_EQ(j["architecture"], "topk");
  EXPECT_EQ(j["d_in"], 1024);
  EXPECT_EQ(j["d_sae"], 1024);
  EXPECT_EQ(j["hook"], "blocks.0.mlp.hook_post");
  EXPECT_FALSE(j["model_fingerprint"].get<std::string>().empty());
  for (const char* k : {"explained_variance", "l0", "dead_fraction", "input_scale", "rows_per_second"})
    EXPECT_TRUE(j["training"].contains(k)) << k;
  EXPECT_LE(j["training"]["l0"].get<double>(), 8.0);
  const auto t = model::load_safetensors_float(tmp.file("sae/sae.safetensors"));
  EXPECT_EQ(t.at("W_enc").sizes().vec(), (std::vector<int64_t>{1024, 1024}));
  EXPECT_EQ(t.at("b_dec").sizes().vec(), (std::vector<int64_t>{1024}));
  EXPECT_NE(test::run_command(train + "--hook blocks.3.mlp.hook_post -o " + tmp.file("sae2") + " 2>&1", &out), 0);
  EXPECT_NE(out.find("no hook blocks.3.mlp.hook_post"), std::string::npos) << out;
  EXPECT_FALSE(std::filesystem::exists(tmp.file("sae2")));
  EXPECT_NE(test::run_command(train + "--hook blocks.0.mlp.hook_post -o " + tmp.file("sae") + " 2>&1", &out), 0);
  EXPECT_NE(out.find("exists"), std::string::npos) << out;

  // sae eval: the fields, and bits_recovered from the bits it reports
  write_file_atomic(tmp.file("held.txt"), test::synthetic_text(9, 1500));
  ASSERT_EQ(test::run_command(ccc + " sae eval " + tmp.file("sae") + " " + tmp.file("held.txt") + " --json 2>&1", &out), 0) << out;
  const auto e = nlohmann::json::parse(out);
  for (const char* k : {"l0", "explained_variance", "dead_fraction", "dense_fraction", "bits_clean", "bits_sae", "bits_zero",
                        "bits_mean", "bits_recovered", "bits_recovered_mean"})
    EXPECT_TRUE(e.contains(k)) << k;
  const double clean = e["bits_clean"], sae = e["bits_sae"], zero = e["bits_zero"];
  EXPECT_NEAR(e["bits_recovered"].get<double>(), (zero - sae) / (zero - clean), 1e-9);
  EXPECT_LE(e["l0"].get<double>(), 8.0);
  EXPECT_EQ(e["bytes"].get<int64_t>(), static_cast<int64_t>(read_file(tmp.file("held.txt")).size()));

  // compress --sae: the dictionary in the loop; decoding needs the same dictionary
  const std::string small = tmp.file("held.txt");
  ASSERT_EQ(test::run_command(ccc + " compress -q " + small + " -o " + tmp.file("s.ccc") + " --sae " + tmp.file("sae") + " 2>&1", &out), 0) << out;
  ASSERT_EQ(test::run_command(ccc + " decompress -q " + tmp.file("s.ccc") + " -o " + tmp.file("s.out") + " --sae " + tmp.file("sae") + " 2>&1", &out), 0) << out;
  EXPECT_EQ(read_file(tmp.file("s.out")), read_file(small));
  EXPECT_NE(test::run_command(ccc + " decompress -q " + tmp.file("s.ccc") + " -o " + tmp.file("s2.out") + " 2>&1", &out), 0);
  EXPECT_NE(out.find("--sae"), std::string::npos) << out;
  ASSERT_EQ(test::run_command(train + "--seed 1 --hook blocks.0.mlp.hook_post -o " + tmp.file("sae3") + " 2>&1", &out), 0) << out;
  EXPECT_NE(test::run_command(ccc + " decompress -q " + tmp.file("s.ccc") + " -o " + tmp.file("s3.out") + " --sae " + tmp.file("sae3") + " 2>&1", &out), 0);
  EXPECT_NE(out.find("fingerprint"), std::string::npos) << out;
  EXPECT_FALSE(std::filesystem::exists(tmp.file("s2.out")) || std::filesystem::exists(tmp.file("s3.out")));

  // units --sae: the dictionary's features analysed beside the neurons of its hook, on the same rows
  ASSERT_EQ(test::run_command(ccc + " units " + tmp.file("d.h5") + " --sae " + tmp.file("sae") + " -o " + tmp.file("u") + " 2>&1", &out), 0) << out;
  EXPECT_NE(out.find("[shares]"), std::string::npos) << out;
  const auto u = nlohmann::json::parse(read_file(tmp.file("u/summary.json")));
  ASSERT_EQ(u["hooks"].size(), 2u) << u.dump();
  EXPECT_EQ(u["hooks"][0]["hook"], "blocks.0.mlp.hook_post");
  EXPECT_EQ(u["hooks"][1]["hook"], "blocks.0.mlp.hook_post:sae");
  for (const auto& h : u["hooks"]) {
    int64_t n = 0;
    for (const auto& [cls, c] : h["counts"].items()) n += c.get<int64_t>();
    EXPECT_EQ(n, 1024) << h.dump();  // 1024 neurons, 1024 features (expansion 1)
  }
  EXPECT_EQ(u["rows_analysed"].get<int64_t>(), static_cast<int64_t>(read_file(tmp.file("in.txt")).size()));
  ASSERT_EQ(u["superposition"].size(), 2u);
  for (const char* k : {"share_covered", "share_covered_null", "median_coverage", "median_coverage_null", "median_frac_active"})
    EXPECT_TRUE(u["superposition"][1].contains(k)) << k;

  // sae sweep: a point per k and per λ; each saved dictionary evaluates (sae eval) to the figures of frontier.csv
  ASSERT_EQ(test::run_command(ccc + " sae sweep " + tmp.file("d.h5") + " --hook blocks.0.mlp.hook_post --eval " + tmp.file("held.txt") +
                                  " -o " + tmp.file("sw") + " --archs topk,relu --ks 4,8 --l1s 1 --steps 10 --batch 256 --expansion 1 "
                                  "--buffer 2048 -q 2>&1", &out), 0) << out;
  const std::string csv = read_file(tmp.file("sw/frontier.csv"));
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 4) << csv;  // header + 3 points
  EXPECT_TRUE(std::filesystem::exists(tmp.file("sw/frontier.png")));
  const auto fj = nlohmann::json::parse(read_file(tmp.file("sw/frontier.json")));
  ASSERT_EQ(fj["points"].size(), 3u);
  EXPECT_EQ(fj["points"][0]["k"], 4);
  EXPECT_EQ(fj["points"][2]["arch"], "relu");
  ASSERT_EQ(test::run_command(ccc + " sae eval " + tmp.file("sw/topk-k8") + " " + tmp.file("held.txt") + " --json 2>&1", &out), 0) << out;
  const auto e8 = nlohmann::json::parse(out);
  EXPECT_NEAR(e8["bits_recovered"].get<double>(), fj["points"][1]["eval"]["bits_recovered"].get<double>(), 1e-9);
  EXPECT_EQ(e8["l0"].get<double>(), 8.0);

  // bench sae on this dump: the GFLOP/s it prints are its FLOPs per row (2·d·f + 8·k·d) times its rows/s
  ASSERT_EQ(test::run_command(ccc + " bench sae --dump " + tmp.file("d.h5") + " --hook blocks.0.mlp.hook_post --expansion 1 "
                                    "--k 8 --batch 256 --steps 2 2>&1", &out), 0) << out;
  auto figure = [&](const std::string& label) {
    const auto at = out.find(label);
    EXPECT_NE(at, std::string::npos) << label << ": " << out;
    return at == std::string::npos ? 0.0 : std::stod(out.substr(out.find("| ", at + label.size()) + 2));
  };
  const double rps = figure("| training rows/s (read from the dump)"), gf = figure("| achieved GFLOP/s, FLOPs computed");
  EXPECT_GT(rps, 0);
  EXPECT_NEAR(gf, rps * (2.0 * 1024 * 1024 + 8.0 * 8 * 1024) / 1e9, 0.06 + 1e-3 * gf) << out;
  EXPECT_GT(figure("| encoder matmul roofline GFLOP/s"), 0);
}

}  // namespace
}  // namespace ccc
