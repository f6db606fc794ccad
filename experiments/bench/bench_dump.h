#pragma once
// `ccc bench dump`: the cost of activation capture, measured side by side in one run: the compressor's
// encoding run alone vs the same run dumping every MLP and residual hook (time ratio, MB/s written),
// the dump compression settings (size and time), and peak RSS of `ccc dump` on 1 MB vs 10 MB inputs.

#include <cstdint>
#include <ostream>
#include <string>

namespace ccc::experiments {

struct BenchDumpOptions {
  std::string tokenizer;      ///< overrides discovery for -m and --rss-model
  std::string model;          ///< "" = default model
  std::string file;           ///< timing input ("" = the held-out corpora, concatenated, first `bytes`)
  int64_t bytes = 32 << 10;   ///< timing input size (the default model writes ~18 KB of activations per byte)
  std::string rss_model;      ///< model of the RSS runs ("" = data/models/ccc-byte-xs)
  int64_t compression_bytes = 8 << 10;  ///< input bytes of the compression-setting comparison
  bool rss = true;            ///< run the 1 MB / 10 MB RSS comparison
  std::string corpora_dir;
  std::string tmp_dir = "";   ///< where dumps go ("" = the system temp dir)
};
void bench_dump(const BenchDumpOptions& o, std::ostream& out);

}  // namespace ccc::experiments
