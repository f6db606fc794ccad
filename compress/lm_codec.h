#pragma once
// Lossless compression with a language model: B independent streams (input segments) coded side by side,
// one model call per step per stream group, the KV-cache path and the window policy of `ccc bits`.
//
// Exactness: encoder and decoder run the same model calls with the same shapes. Each group is computed
// on one thread with single-threaded kernels (LibTorch intra-op threads = 1, OpenBLAS threads = 1 for
// the duration of the run), groups run in parallel; so the result depends on neither the thread count
// nor the core count of the machine. The build, LibTorch version and BLAS kernel path are recorded in the
// header; the original's checksum is verified before any byte is written.

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "compress/container.h"
#include "model/loader.h"

namespace ccc::compress {

struct CodecOptions {
  int64_t streams = 0;  ///< 0 = automatic: one stream per 4 KiB of input, at most 256
  int64_t groups = 0;   ///< 0 = min(streams, hardware threads); recorded, so decoding uses the same
  int64_t threads = 0;  ///< worker threads (0 = hardware threads); never changes the output
  uint8_t total_log2 = 30;
  uint64_t max_tokens = 0;  ///< decompress refuses containers declaring more tokens (0 = no limit)
  std::function<void(uint64_t done_tokens, uint64_t total_tokens)> progress;  ///< called from worker threads
};

/// Identity of the arithmetic path of this process (compiler, LibTorch, BLAS library and kernel).
std::string runtime_id();

/// Compresses `input` with `m`; returns the whole container.
std::string lm_compress(model::LoadedModel& m, std::string_view input, const CodecOptions& opt);

/// Decompresses a container produced by lm_compress with the same model. Throws ccc::Error (naming
/// `name`) on a wrong model, corruption, truncation or a checksum mismatch; returns nothing partial.
std::string lm_decompress(model::LoadedModel& m, std::string_view container, const std::string& name,
                          const CodecOptions& opt = {});

/// Σ −log2 p over all coded tokens under the same segmentation and windows, computed with score_bits
/// (what `ccc bits` reports per segment). For comparing with the payload size.
double segmented_bits(model::LoadedModel& m, std::string_view input, int64_t streams);

/// The segment boundaries lm_compress uses: segment i = [i*n/B, (i+1)*n/B).
int64_t auto_streams(uint64_t n_bytes);

}  // namespace ccc::compress
