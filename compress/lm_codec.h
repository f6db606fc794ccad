#pragma once
// Lossless compression with a language model: B independent streams (input segments) coded side by side,
// one model call per step per stream group, on the KV-cache path. The segmentation and the window policy
// are the scoring unit's (model/scoring/streams.h), the cost model of a run is model/scoring/cost_model.h.
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
#include "model/formats/loader.h"
#include "model/scoring/streams.h"

namespace ccc::compress {

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

/// The run's segmentation, window policy and hooks (model::StreamOptions: the scoring unit's, so Σ bits of
/// model::segmented_bits with the same options is the payload's size up to the coder's rounding) and the
/// capture callbacks (model::FeedObservers), plus what only the coder has.
struct CodecOptions : model::StreamOptions, model::FeedObservers {
  int64_t groups = 0;   ///< 0 = automatic (auto_groups: kDefaultGroups, cache-aware, kMaxStreamsPerGroup): never the
                        ///< machine's core count, so the bytes do not depend on the machine; recorded
  int64_t threads = 0;  ///< worker threads (0 = hardware threads); never changes the output
  uint8_t total_log2 = 30;
  uint64_t max_tokens = 0;  ///< decompress refuses containers declaring more tokens (0 = no limit)
  /// Model-only coding (FrameMode::kPure), the measurement: the payload is Σ −log2 p of `ccc bits` up to
  /// the coder's rounding, with no floor (an input the model codes badly expands). Otherwise the frame
  /// is the smallest of the model's (mixed for byte-level models, compress/context_mixer.h; pure with raw
  /// groups for BPE-token models), the context models alone, and stored: never more than
  /// stored_frame_size(n) bytes.
  bool pure = false;
  /// Not with pure: also try the context models alone (a frame that needs no model) and keep it when
  /// smaller. Off: the model's frame (or stored, the floor) is kept, e.g. to study raw groups.
  bool context_frames = true;
  /// With pure, under mpirun (model/base/dist.h): the stream groups are split across the ranks (group g on
  /// rank g mod N; observers see only this rank's groups) and their payloads gathered, so every rank
  /// returns the whole container — the bytes one process writes. No effect in one process.
  bool distribute = false;
  /// When set, compress adds each frame's figures (CodecStats).
  struct CodecStats* stats = nullptr;
  std::function<void(uint64_t done_tokens, uint64_t total_tokens)> progress;  ///< called from worker threads
};

/// What compress measured, summed over frames (bits are reporting figures in doubles).
struct CodecStats {
  bool shadow = false;  ///< set by the caller: also run the context models alone inside mixed frames (cm_bits; ~1.3x the mixing work)
  uint64_t frames = 0, stored_frames = 0, mixed_frames = 0, pure_frames = 0, context_frames = 0;
  uint64_t model_frame_bytes = 0;    ///< the model's frames (mixed or pure), whichever was kept
  uint64_t context_frame_bytes = 0;  ///< the context-models-alone frames, whichever was kept (0 with pure)
  uint64_t raw_groups = 0;       ///< pure frames' groups stored raw
  double lm_bits = 0;            ///< Σ −log2 p_model(token): the model alone (pure mode's payload, up to rounding)
  double cm_bits = 0;            ///< mixed frames: the context models alone (the mixer without the model)
  double mix_bits = 0;           ///< mixed frames: the coded mix
  uint64_t mixed_bytes = 0;      ///< input bytes coded by mixed frames (the three figures above cover them)
  uint64_t mixer_memory = 0;     ///< largest context-mixer state of a frame (tables + histories), bytes
};

/// True when `m` can code in mixed mode (a byte-level tokenizer: token b = byte b).
bool mixed_capable(const model::LoadedModel& m);

/// Identity of the arithmetic path of this process (compiler, LibTorch, BLAS library and kernel).
std::string runtime_id();

/// Compresses `input` with `m` as one frame; returns it (CodecOptions::pure says which frame).
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

/// Automatic group count for `streams` streams: min(streams, kDefaultGroups), raised until each group's
/// K/V caches fit in kGroupCacheBytes when kMinCacheRows rows do, and until no group holds more than
/// kMaxStreamsPerGroup streams.
int64_t auto_groups(const model::ModelConfig& cfg, int64_t window, int64_t streams);

}  // namespace ccc::compress
