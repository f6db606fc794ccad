#pragma once
// What a codec run costs, computed from the model's shape and the run's window policy alone (machine-
// independent): attention FLOPs and the bytes of cached keys and values the decode step reads. The
// benchmarks set measured throughput beside these; the codec's cache-aware grouping uses the row size.

#include <cstdint>
#include <vector>

#include "model/core/config.h"
#include "model/scoring/streams.h"

namespace ccc::model {

/// Bytes one cached key position holds over all layers: K and V, n_kv_heads x d_head fp16 values each
/// (the codec's caches hold fp16).
int64_t kv_bytes_per_key(const ModelConfig& cfg);

/// Bytes of one row's K/V cache in a codec run with window W (layers x (K + V) x n_kv_heads x d_head x W x 2).
int64_t codec_cache_row_bytes(const ModelConfig& cfg, int64_t window);

/// Attention FLOPs of a codec run: for every fed position, 2·keys·d_attn for QKᵀ and as many for PV in each
/// layer, where keys is the number of cached and fed positions it attends under the window policy `opt`
/// resolves (rolling: min(position + 1, W); strided: the cache restarts with W − 1 − S kept tokens, which
/// are fed again). `n_tokens`: coded tokens per stream (stream_token_counts). With 2·n_params per fed
/// token this is the model's whole FLOP count of the run (Kaplan et al. 2020, C_forward).
double codec_attention_flops(const ModelConfig& cfg, const std::vector<uint64_t>& n_tokens, const StreamOptions& opt);

/// Bytes of cached keys and values the attention of a codec run reads: for every fed position, the keys it
/// attends (as for codec_attention_flops) x kv_bytes_per_key (all layers, K and V, fp16). Each row's cache
/// is its own, so across a group's rows this traffic does not share.
double codec_kv_cache_bytes(const ModelConfig& cfg, const std::vector<uint64_t>& n_tokens, const StreamOptions& opt);

}  // namespace ccc::model
