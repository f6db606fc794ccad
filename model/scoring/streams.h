#pragma once
// Scoring a text the way the compressor codes it: the input split into B streams (segments), each scored
// from BOS under a window policy (rolling KV window for relative positions, strided windows for learned
// positions), one batched full-sequence run. What `ccc bits --streams`, the circuits (ablation, sweeps,
// patching) and the activation dumps price, and exactly the segmentation and policy lm_compress uses, so
// Σ bits here is the payload's size up to the coder's rounding. Below the codec: nothing here codes.

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "model/core/score.h"
#include "model/formats/loader.h"

namespace ccc::model {

/// Automatic stream count: one stream per kBytesPerStream bytes of input, at most kMaxAutoStreams.
constexpr int64_t kBytesPerStream = 1024;
constexpr int64_t kMaxAutoStreams = 256;

/// Segmentation and window policy of a run over a text (the codec's CodecOptions extends it).
struct StreamOptions {
  int64_t streams = 0;  ///< 0 = automatic (auto_streams)
  int64_t window = 0;   ///< 0 = automatic: rolling over n_ctx / 2 (rotary models), strided over n_ctx (learned positions)
  bool strided = false; ///< force the strided window policy (re-encoding) even where rolling is possible
  bool rolling = false; ///< require the rolling policy (error for learned positions)
  /// Hooks for stream group g (the codec calls it once per group, from the worker thread that codes it;
  /// the set must not be shared between groups). Every model call of the group runs them with a RunInfo:
  /// row r is stream s0 + r, positions within the stream (BOS = 0), byte offsets in the input, rows whose
  /// stream has ended are not live. Observers never change the output; editors change the model (a
  /// decoder needs the same editors). The scoring functions below call hooks(0) once for their single
  /// batched run.
  std::function<HookSet*(int64_t group)> hooks;
};

/// Callbacks of a run that feeds the streams token by token (the codec; activation capture attaches
/// here). Called from group g's worker thread; they never change the output.
struct FeedObservers {
  /// With either callback set, each stream's last token is fed to the model too (one model call that
  /// predicts nothing), so every token of the input has a fed position. on_fed runs after each model call
  /// (after its hooks): `pos` is the stream position of the fed tokens (BOS = 0), and per row r (stream
  /// s0 + r) the fed token, its byte offset in the input (−1 for BOS and padding) and whether it is live.
  std::function<void(int64_t g, int64_t s0, int64_t pos, const std::vector<int64_t>& tokens,
                     const std::vector<uint8_t>& live, const std::vector<int64_t>& offsets)>
      on_fed;
  /// After token `token` at position `pos` of stream `stream` is coded: its cost −log2 p in bits under the
  /// model's fp32 distribution (the one the codec's CDF quantizes), i.e. what segmented_bits sums.
  std::function<void(int64_t g, int64_t stream, int64_t pos, int64_t token, double bits)> on_coded;
};

/// The window policy of a run: rolling over W = n_ctx / 2 for models with relative positions, strided
/// windows (W = n_ctx, S = W / 2) for learned absolute positions; options override.
struct StreamPolicy {
  bool rolling = true;
  int64_t window = 0;  ///< W (tokens)
  int64_t stride = 0;  ///< strided: S (a new window re-encodes its first W − 1 − S tokens); rolling: 0
};
/// Throws ccc::Error on --rolling with learned positions or a window outside [2, n_ctx].
StreamPolicy stream_policy(const ModelConfig& cfg, const StreamOptions& opt);

/// The window (W) and whether the run rolls.
std::pair<int64_t, bool> resolve_window_policy(const ModelConfig& cfg, const StreamOptions& opt);

/// "rolling W=128" or "strided W=1024 S=512".
std::string describe_policy(const ModelConfig& cfg, const StreamOptions& opt);

/// Automatic stream count for an input of n_bytes (segment i of B = [i·n/B, (i+1)·n/B)).
int64_t auto_streams(uint64_t n_bytes);

/// The stream count a run uses: `streams` (0 = auto_streams), at most one per byte, at least one.
int64_t resolve_streams(uint64_t n_bytes, int64_t streams);

/// BOS + encode(segment i) for each of the B segments [i·n/B, (i+1)·n/B); with `offsets`, each token's
/// byte offset in the input (−1 for BOS).
std::vector<std::vector<int64_t>> segment_tokens(const LoadedModel& m, std::string_view input, int64_t B,
                                                 std::vector<std::vector<int64_t>>* offsets = nullptr);

/// BOS + the tokens of each stream (the segmentation of `input` under `opt`).
std::vector<std::vector<int64_t>> stream_tokens(const LoadedModel& m, std::string_view input, const StreamOptions& opt);

/// The number of coded tokens (BOS excluded) of each stream.
std::vector<uint64_t> stream_token_counts(const LoadedModel& m, std::string_view input, const StreamOptions& opt);

/// Σ −log2 p over all coded tokens under the segmentation and window policy of `opt`, on the batched
/// full-sequence path (score_bits / score_bits_rolling): what `ccc bits --streams` reports.
double segmented_bits(LoadedModel& m, std::string_view input, const StreamOptions& opt);

/// The same bits per coded token, one vector per stream (stream order). With `copies` > 1 (rolling policy
/// only) the streams are scored `copies` times side by side in one batch — rows c·B + s, where hooks can
/// give each copy its own edit (batched ablation sweeps) — and the result holds copies·B vectors.
std::vector<std::vector<double>> segmented_token_bits(LoadedModel& m, std::string_view input, const StreamOptions& opt,
                                                      int64_t copies = 1);

/// The same per-token bits of the clean model (when `clean`) and of every branch (Branch: copies of the
/// streams continuing from the clean residual stream entering a block, blocks before it computed once;
/// rows c·B + s as above), in one rolling pass (rolling policy only). opt.hooks is not used: each branch
/// carries its own hooks. See score_bits_rolling_branched.
BranchedBits segmented_branched_bits(LoadedModel& m, std::string_view input, const StreamOptions& opt,
                                     const std::vector<Branch>& branches, bool clean = true);

}  // namespace ccc::model
