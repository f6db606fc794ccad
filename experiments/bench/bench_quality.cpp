#include "experiments/bench/bench_quality.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "experiments/bench/bench_support.h"
#include "experiments/support/common.h"
#include "model/base/error.h"
#include "model/base/util.h"
#include "model/formats/loader.h"
#include "model/core/fused_ops.h"
#include "model/training/corpus.h"
#include "model/training/trainer.h"

namespace ccc::experiments {

namespace fs = std::filesystem;

void bench_quality(const std::vector<std::string>& models, const std::string& corpora_dir, const std::string& tokenizer) {
  const std::string dir = corpora_dir_or_default(corpora_dir);
  auto corpora = model::load_corpora(dir, model::present_corpora(dir));
  // classic compressors on exactly the held-out bytes
  auto classic = [&](const std::string& cmd, const std::string& bytes) {
    const std::string tmp = (fs::temp_directory_path() / ("ccc_bench_" + std::to_string(::getpid()))).string();
    write_file_atomic(tmp, bytes);
    std::string out;
    const int rc = run_capture(cmd + " < " + tmp, &out);
    fs::remove(tmp);
    CCC_CHECK(rc == 0, cmd, " failed (is it installed?)");
    return 8.0 * static_cast<double>(out.size()) / static_cast<double>(bytes.size());
  };
  std::vector<std::string> header{"bzip2 -9", "xz -9e"};
  std::vector<std::vector<double>> table(corpora.size());
  for (size_t i = 0; i < corpora.size(); ++i) {
    const auto held = corpora[i].split(model::Split::kHeldOut);
    table[i].push_back(classic("bzip2 -9 -c", held));
    table[i].push_back(classic("xz -9e -c", held));
  }
  int64_t held_bytes = 0, done = 0;
  for (const auto& c : corpora) held_bytes += static_cast<int64_t>(c.split(model::Split::kHeldOut).size());
  ProgressLine line("bench quality (held-out bytes x models)", held_bytes * static_cast<int64_t>(models.size()));
  for (const auto& mp : models) {
    auto m = model::load_model(mp, tokenizer);
    header.push_back(fs::path(mp).filename().string() + " (" + std::to_string(m.config.n_params() / 1000) + "k)");
    for (size_t i = 0; i < corpora.size(); ++i) {
      const std::string held = corpora[i].split(model::Split::kHeldOut);
      table[i].push_back(model::text_bits_per_byte(m.model, held, m.config.bos_id));
      line.update(done += static_cast<int64_t>(held.size()));
    }
  }
  std::printf("held-out bits per byte (last 5%% of each corpus)\n\n| corpus | bytes |");
  for (const auto& h : header) std::printf(" %s |", h.c_str());
  std::printf("\n|---|---|");
  for (size_t k = 0; k < header.size(); ++k) std::printf("---|");
  std::printf("\n");
  for (size_t i = 0; i < corpora.size(); ++i) {
    auto [a, b] = corpora[i].range(model::Split::kHeldOut);
    std::printf("| %s | %zu |", corpora[i].name.c_str(), b - a);
    for (double v : table[i]) std::printf(" %.4f |", v);
    std::printf("\n");
  }
}

}  // namespace ccc::experiments
