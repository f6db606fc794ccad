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
  std::string suite;      ///< "diverse": the file suite of data/bench_suite.sh (bench_compress_suite)
  std::string suite_dir;  ///< where the suite is built (default .cache/diverse)
};
void bench_compress(const BenchCompressOptions& o);
/// `ccc bench compress --suite diverse`: ccc (mixed, the default) and ccc --pure beside gzip, bzip2, xz,
/// zstd, brotli and zpaq on every file of the suite, round trips checked; the model alone, the context
/// models alone and the mix in bits per byte; the floor, the xz / zpaq / CRLF / speed targets; CSV and PNG.
void bench_compress_suite(const BenchCompressOptions& o);

}  // namespace ccc::experiments
