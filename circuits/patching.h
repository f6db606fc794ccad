#pragma once
// Path patching (Wang et al. 2022; Goldowsky-Dill et al. 2023) priced in bits: the effect of a sender
// component on the output through one receiver only. Three runs go through the text in lockstep, chunk by
// chunk, each with its own rolling cache:
//   clean    the model as is; records every head's hook_z and every MLP's hook_mlp_out;
//   frozen   the sender ablated (zero / mean / resample, as ccc ablate) and every other head and MLP frozen
//            to its clean value, so the only change that reaches the receiver is the sender's direct path
//            through the residual stream; the receiver's activation is recorded;
//   patched  the clean model with the receiver's activation replaced by the frozen run's.
// delta_bits = patched − clean. With no receiver ("logits") the frozen run's own output is the patched
// one: the sender's direct effect on the logits.

#include <functional>
#include <optional>
#include <string_view>
#include <vector>

#include "circuits/ablation.h"
#include "model/scoring/streams.h"

namespace ccc::circuits {

struct PathBits {
  std::vector<double> clean, patched;  ///< per coded token, streams concatenated in order
};

/// Checks that `receiver` (nullopt = logits) lies downstream of `sender`: a later layer, or in the same
/// layer an MLP (or neuron) reading a head's or the attention's output (not with parallel attention).
/// Receivers: heads, attnL, mlpL. Throws ccc::Error naming both.
void check_path(const Component& sender, const std::optional<Component>& receiver, const model::ModelConfig& cfg);

/// Per-token bits of the clean and the path-patched model under the compressor's segmentation (`opt`:
/// streams, window; rolling policy only). `ref` for mean / resample (see install_ablation). `observe`, when
/// set, may add read-only hooks to the clean run (e.g. progress; its rows start at blocks.0.hook_resid_pre).
PathBits path_patch_bits(model::LoadedModel& m, std::string_view text, const model::StreamOptions& opt,
                         const Component& sender, const std::optional<Component>& receiver, Mode mode,
                         const Reference* ref, uint64_t seed,
                         const std::function<void(model::HookSet&)>& observe = {});

}  // namespace ccc::circuits
