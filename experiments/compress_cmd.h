#pragma once
// `ccc compress`, `ccc decompress` and `ccc bench compress`.

#include <cstdint>
#include <string>
#include <vector>

namespace ccc::experiments {

struct CompressCmdOptions {
  std::string model;  ///< "" = default
  std::string tokenizer;
  std::string in;     ///< "-" = stdin
  std::string out;    ///< "" = IN.ccc (compress) / IN without .ccc (decompress); "-" = stdout
  int64_t streams = 0;
  int64_t groups = 0;
  int64_t threads = 0;
  int64_t window = 0;    ///< 0 = automatic (see compress::CodecOptions)
  bool strided = false;  ///< strided window policy instead of rolling
  bool force = false;
  bool quiet = false;
};
void run_compress(const CompressCmdOptions& o);
void run_decompress(const CompressCmdOptions& o);

struct BenchCompressOptions {
  std::vector<std::string> files;   ///< default: held-out parts of the corpora
  std::vector<std::string> models;  ///< default: the shipped family
  std::string out_dir = "bench-out";
  std::string corpora_dir;
};
void bench_compress(const BenchCompressOptions& o);

}  // namespace ccc::experiments
