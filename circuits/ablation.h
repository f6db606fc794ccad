#pragma once
// Ablations priced in bits. A component is one piece of the model's computation, addressed by a hook:
//   L.H    head H of layer L          blocks.L.attn.hook_z[..., H, :]   (its share of the output bias stays)
//   attnL  attention output of L      blocks.L.hook_attn_out
//   mlpL   MLP output of layer L      blocks.L.hook_mlp_out
//   nL.N   neuron N of layer L        blocks.L.mlp.hook_post[..., N]
// A circuit is a set of components. Modes: zero (value 0); mean (the component's mean over the non-BOS
// positions of a reference text, scored under the same policy); resample (the component's value at a
// random reference position, drawn per (seed, stream, position) — causal-scrubbing style, reproducible);
// corrupt (the component's value at the same stream and position of a run over a corrupt text of the
// same token length: paired patching, noising direction — circuits/paired.h records it).
//
// Edits are installed as HookSet entries: zero / mean as one `patch` per hook (one where() per site, on
// every path); resample as one editor per hook. A sweep gives every batch row its own component: row r of
// a call scoring `copies` × B streams (model::segmented_token_bits) ablates component rows[r / B].

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <torch/torch.h>

#include "model/core/hooks.h"
#include "model/formats/loader.h"

namespace ccc::circuits {

struct Component {
  enum class Kind { kHead, kAttn, kMlp, kNeuron };
  Kind kind = Kind::kHead;
  int64_t layer = 0;
  int64_t index = -1;        ///< head or neuron (−1 for whole outputs)
  std::string name() const;  ///< the spec form: "1.3", "attn0", "mlp2", "n1.17"
  std::string hook() const;  ///< the hook it edits
  bool operator==(const Component& o) const { return kind == o.kind && layer == o.layer && index == o.index; }
};

/// Parses a comma-separated spec ("1.3,attn0,mlp2,n1.17") or, when `spec` names an existing file, JSON
/// {"components": ["1.3", ...]}. Throws ccc::Error naming the bad item (unknown type, layer or index out of
/// range for `cfg`, a model without that hook, duplicates).
std::vector<Component> parse_components(const std::string& spec, const model::ModelConfig& cfg);

/// Every component of a sweep set: "heads", "attn", "mlps", or "neurons:L".
std::vector<Component> sweep_set(const std::string& over, const model::ModelConfig& cfg);

enum class Mode { kZero, kMean, kResample, kCorrupt };
Mode parse_mode(const std::string& s);  ///< "zero" | "mean" | "resample" | "corrupt"
std::string to_string(Mode m);

/// Replacement values for mean / resample ablations, per hook: the mean of the hook's activation over the
/// reference's non-BOS positions (feature shape, e.g. [H, dh]), and for resample a pool of up to
/// `pool_size` activations at reference positions drawn with `seed` ([P, feature shape]).
struct Reference {
  std::map<std::string, torch::Tensor> mean;
  std::map<std::string, torch::Tensor> pool;
  /// corrupt: the hook's activation at every stream position of the corrupt run, [streams, positions,
  /// feature shape] (circuits::record_positions)
  std::map<std::string, torch::Tensor> at;
  int64_t positions = 0;  ///< non-BOS reference positions seen (corrupt: streams x positions recorded)
};

/// Runs `m` over `text` under the compressor's segmentation (`streams`, `window` as in CodecOptions; 0 =
/// automatic) with observers on the hooks of `components`. Mode corrupt: circuits::record_positions.
Reference collect_reference(model::LoadedModel& m, std::string_view text, const std::vector<Component>& components,
                            Mode mode, int64_t streams, int64_t window, uint64_t seed, int64_t pool_size = 4096);

/// Installs on `hooks` the ablation of circuit `per_row[i]` in batch rows [i·rows_per, (i+1)·rows_per) of
/// every call (one circuit for all rows: per_row = {circuit}, rows_per = 0). Calls must then have exactly
/// per_row.size()·rows_per rows when rows_per > 0. `ref` is needed for mean / resample.
void install_ablation(model::HookSet& hooks, const model::ModelConfig& cfg,
                      const std::vector<std::vector<Component>>& per_row, int64_t rows_per, Mode mode,
                      const Reference* ref, uint64_t seed);

}  // namespace ccc::circuits
