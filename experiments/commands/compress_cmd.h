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
  std::vector<std::string> inputs;  ///< compress / decompress: every input file (each handled as `in`)
  bool to_stdout = false;  ///< -c: write to standard output
  bool test = false;       ///< -t: decompress in memory and verify, write nothing
  bool list = false;       ///< -l: print the container's header, decompress nothing
  bool decompress = false; ///< -d on compress
  std::string out;    ///< "" = IN.ccc (compress) / IN without .ccc (decompress); "-" = stdout
  int64_t streams = 0;
  int64_t groups = 0;
  int64_t threads = 0;
  int64_t window = 0;    ///< 0 = automatic (see compress::CodecOptions)
  bool strided = false;  ///< strided window policy instead of rolling
  uint64_t frame_bytes = 16u << 20;  ///< input bytes per frame (compress::kFrameBytes; memory is bounded by one)
  bool force = false;
  bool quiet = false;
  bool pure = false;     ///< --pure: model-only coding (compress::CodecOptions::pure)
  bool explain = false;  ///< --explain: also print the bits of the model alone, the context models alone and the mix
  // activation capture (ccc dump; ccc compress --dump)
  std::string dump;                 ///< HDF5 output ("" = none)
  std::vector<std::string> hooks;   ///< hook names / globs to capture
  std::string dump_dtype = "f16";   ///< f16 | f32
  std::string dump_compression = "none";  ///< none | gzip | fast
  bool dump_force = false;
  std::string command;              ///< recorded in the dump
  // ablated model (ccc compress / decompress --ablate): the header's fingerprint covers the edit
  std::string ablate;               ///< component spec ("" = none)
  std::string ablate_mode = "zero"; ///< zero | mean | resample
  std::string reference;            ///< reference text of mean / resample (required: the decoder rebuilds it)
  uint64_t seed = 0;
  std::string sae;                  ///< a dictionary spliced in at its hook (ccc compress / decompress --sae)
};
void run_compress(const CompressCmdOptions& o);
/// `ccc dump`: the compressor's encoding run with activation capture, no compressed output.
void run_dump(const CompressCmdOptions& o);
void run_decompress(const CompressCmdOptions& o);
/// compress / decompress over `inputs` with the gzip/xz/zstd conventions (-c, -d, -t, -l, -o for one input).
void run_codec_files(const CompressCmdOptions& o, bool decompress);

}  // namespace ccc::experiments
