#pragma once
// `ccc bench compress`: every model and classic compressor on the held-out corpora (size, bits/byte, speed beside the rooflines, round trip).

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace ccc::experiments {

struct BenchCompressOptions {
  std::string tokenizer;            ///< overrides discovery for every model
  std::vector<std::string> files;   ///< default: held-out parts of the corpora
  std::vector<std::string> models;  ///< default: the shipped family
  std::string out_dir = "bench-out";
  std::string corpora_dir;
  /// rolling windows to run each model at (0 = the compressor's automatic window): the bits / speed trade-off
  std::vector<int64_t> windows{0};
};
void bench_compress(const BenchCompressOptions& o);

}  // namespace ccc::experiments
