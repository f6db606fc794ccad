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
#include <vector>

#include "compress/container.h"
#include "model/core/score.h"
#include "model/formats/loader.h"

namespace ccc::compress {

/// Automatic stream count: one stream per kBytesPerStream bytes of input, at most kMaxAutoStreams.
constexpr int64_t kBytesPerStream = 1024;
constexpr int64_t kMaxAutoStreams = 256;
/// Default stream groups (each is coded on its own worker thread; measured on 2 cores with 32 KB: 8
/// groups 4.43 s, 2 groups 4.65 s, and 15 bytes more in all).
constexpr int64_t kDefaultGroups = 8;
/// Cache-aware grouping: a group's rows step together, so every step reads all of their K/V caches. When
/// at least kMinCacheRows rows' caches fit in kGroupCacheBytes, the automatic grouping adds groups until
/// each one's caches do (measured on 2 cores, 669 KB, 256 streams: ccc-byte-s 49-55 KB/s with 8 groups of
/// 32 rows, 67 KB/s with 16 groups of 16; ccc-byte-m 20.9 -> 23.3 KB/s with 32 groups of 8; about 13
/// bytes per extra group). Depends only on the model, the window and the input size (machine-independent).
constexpr int64_t kGroupCacheBytes = int64_t{3} << 20;
constexpr int64_t kMinCacheRows = 8;

struct CodecOptions {
  int64_t streams = 0;  ///< 0 = automatic (auto_streams)
  int64_t window = 0;   ///< 0 = automatic: rolling over n_ctx / 2 (rotary models), strided over n_ctx (learned positions)
  bool strided = false; ///< force the strided window policy (re-encoding) even where rolling is possible
  bool rolling = false; ///< require the rolling policy (error for learned positions)
  int64_t groups = 0;   ///< 0 = automatic (auto_groups: kDefaultGroups, cache-aware, kMaxStreamsPerGroup): never the
                        ///< machine's core count, so the bytes do not depend on the machine; recorded
  int64_t threads = 0;  ///< worker threads (0 = hardware threads); never changes the output
  uint8_t total_log2 = 30;
  uint64_t max_tokens = 0;  ///< decompress refuses containers declaring more tokens (0 = no limit)
  std::function<void(uint64_t done_tokens, uint64_t total_tokens)> progress;  ///< called from worker threads
  /// Hooks for stream group g (called once per group, from the worker thread that codes it; the set must
  /// not be shared between groups). Every model call of the group runs them with a RunInfo: row r is
  /// stream s0 + r, positions within the stream (BOS = 0), byte offsets in the input, rows whose stream has
  /// ended are not live. Observers never change the output; editors change the model, so the decoder
  /// needs the same editors. segmented_bits calls hooks(0) once for its single batched run.
  std::function<model::HookSet*(int64_t group)> hooks;
  /// Capture callbacks (activation dumps): called from group g's worker thread, never change the output.
  /// With either one set, each stream's last token is fed to the model too (one model call that codes
  /// nothing), so every token of the input has a fed position. on_fed runs after each model call (after
  /// its hooks): `pos` is the stream position of the fed tokens (BOS = 0), and per row r (stream s0 + r)
  /// the fed token, its byte offset in the input (−1 for BOS and padding) and whether the row is live.
  std::function<void(int64_t g, int64_t s0, int64_t pos, const std::vector<int64_t>& tokens,
                     const std::vector<uint8_t>& live, const std::vector<int64_t>& offsets)>
      on_fed;
  /// After token `token` at position `pos` of stream `stream` is coded: its cost −log2 p in bits under the
  /// model's fp32 distribution (the one the CDF quantizes), i.e. what ccc bits --streams sums.
  std::function<void(int64_t g, int64_t stream, int64_t pos, int64_t token, double bits)> on_coded;
};

/// Identity of the arithmetic path of this process (compiler, LibTorch, BLAS library and kernel).
std::string runtime_id();

/// Compresses `input` with `m`; returns the whole container.
std::string lm_compress(model::LoadedModel& m, std::string_view input, const CodecOptions& opt);

/// Compresses `input` as consecutive frames of `frame_bytes` (one lm_compress container each, concatenated):
/// what streaming compress writes. An input of at most one frame gives exactly lm_compress's bytes.
std::string lm_compress_frames(model::LoadedModel& m, std::string_view input, const CodecOptions& opt,
                               uint64_t frame_bytes = kFrameBytes);

/// Decompresses a .ccc file (one or more frames) produced with the same model. Throws ccc::Error (naming
/// `name`) on a wrong model, corruption, truncation, trailing bytes or a checksum mismatch; returns
/// nothing partial.
std::string lm_decompress(model::LoadedModel& m, std::string_view container, const std::string& name,
                          const CodecOptions& opt = {});

/// Decompresses exactly one frame (a whole container, nothing after it).
std::string lm_decompress_frame(model::LoadedModel& m, std::string_view container, const std::string& name,
                                const CodecOptions& opt = {});

/// Σ −log2 p over all coded tokens under the same segmentation and window policy as lm_compress with
/// `opt`, computed on the batched full-sequence path (score_bits / score_bits_rolling): what
/// `ccc bits --streams` reports. For comparing with the payload size.
double segmented_bits(model::LoadedModel& m, std::string_view input, const CodecOptions& opt);

/// The same bits per coded token, one vector per stream (stream order). With `copies` > 1 (rolling policy
/// only) the streams are scored `copies` times side by side in one batch — rows c·B + s, where hooks can
/// give each copy its own edit (batched ablation sweeps) — and the result holds copies·B vectors.
std::vector<std::vector<double>> segmented_token_bits(model::LoadedModel& m, std::string_view input,
                                                      const CodecOptions& opt, int64_t copies = 1);

/// The same per-token bits of the clean model (when `clean`) and of every branch (model::Branch: copies of
/// the streams continuing from the clean residual stream entering a block, blocks before it computed once;
/// rows c·B + s as above), in one rolling pass (rolling policy only). opt.hooks is not used: each branch
/// carries its own hooks. See model::score_bits_rolling_branched.
model::BranchedBits segmented_branched_bits(model::LoadedModel& m, std::string_view input, const CodecOptions& opt,
                                            const std::vector<model::Branch>& branches, bool clean = true);

/// BOS + the tokens of each stream lm_compress codes (its segmentation of `input`).
std::vector<std::vector<int64_t>> stream_tokens(const model::LoadedModel& m, std::string_view input, const CodecOptions& opt);

/// The segmentation lm_compress uses for `input`: the number of coded tokens (BOS excluded) of each stream.
std::vector<uint64_t> stream_token_counts(const model::LoadedModel& m, std::string_view input, const CodecOptions& opt);

/// The window lm_compress would use (W of the rolling or strided policy) and whether it rolls.
std::pair<int64_t, bool> resolve_window_policy(const model::ModelConfig& cfg, const CodecOptions& opt);

/// The window policy lm_compress would use: "rolling W=128" or "strided W=1024 S=512".
std::string describe_policy(const model::ModelConfig& cfg, const CodecOptions& opt);

/// Attention FLOPs of a codec run: for every fed position, 2·keys·d_attn for QKᵀ and as many for PV in each
/// layer, where keys is the number of cached and fed positions it attends under the window policy `opt`
/// resolves (rolling: min(position + 1, W); strided: the cache restarts with W − 1 − S kept tokens, which
/// are fed again). `n_tokens`: coded tokens per stream (stream_token_counts). With 2·n_params per fed
/// token this is the model's whole FLOP count of the run (Kaplan et al. 2020, C_forward).
double codec_attention_flops(const model::ModelConfig& cfg, const std::vector<uint64_t>& n_tokens, const CodecOptions& opt);

/// Bytes of cached keys and values the attention of a codec run reads: for every fed position and layer,
/// keys (as for codec_attention_flops) x 2 (K and V) x n_kv_heads x d_head x 2 bytes (the codec's caches
/// hold fp16). Each row's cache is its own, so across a group's rows this traffic does not share.
double codec_kv_cache_bytes(const model::ModelConfig& cfg, const std::vector<uint64_t>& n_tokens, const CodecOptions& opt);

/// Automatic stream count for an input of n_bytes (segment i of B = [i·n/B, (i+1)·n/B)).
int64_t auto_streams(uint64_t n_bytes);

/// Bytes of one row's K/V cache in a codec run with window W (fp16: layers x (K + V) x n_kv_heads x d_head x W x 2).
int64_t codec_cache_row_bytes(const model::ModelConfig& cfg, int64_t window);

/// Automatic group count for `streams` streams: min(streams, kDefaultGroups), raised until each group's
/// K/V caches fit in kGroupCacheBytes when kMinCacheRows rows do, and until no group holds more than
/// kMaxStreamsPerGroup streams.
int64_t auto_groups(const model::ModelConfig& cfg, int64_t window, int64_t streams);

}  // namespace ccc::compress
