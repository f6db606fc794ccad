#pragma once
// Paired (clean / corrupt) activation patching priced in bits, the field's standard (Meng et al. 2022;
// Wang et al. 2022; Heimersheim & Nanda 2024). Two texts with the same number of tokens in every stream
// under one segmentation and rolling window: the clean text A and a corrupt text B (e.g. the repeated
// half of an induction probe replaced by fresh random bytes). Every figure prices A's tokens:
//   clean       the model reads A;
//   corrupt     the model reads B: B's token embeddings replace A's at hook_embed, A's tokens stay the
//               targets;
//   noised c    the model reads A and component c takes its value at the same (stream, position) of the
//               corrupt run — what c carries from A that the model needs (Mode::kCorrupt of ablate,
//               sweep and discover is this direction: ACDC's setting);
//   denoised c  the model reads B and component c takes its clean value — whether c alone restores A.
// Positions are aligned one to one (no other rule): the texts must tokenize to equal lengths per stream.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "circuits/ablation.h"
#include "circuits/sweep.h"
#include "model/formats/loader.h"

namespace ccc::circuits {

/// Throws ccc::Error unless `run` scores `m` with the rolling policy (each position computed once) and
/// `corrupt` has as many tokens as `clean` in every stream; the message names `clean_name`,
/// `corrupt_name`, the stream and both counts.
void check_pairable(const model::LoadedModel& m, std::string_view clean, std::string_view corrupt,
                    const ScoringRun& run, const std::string& clean_name, const std::string& corrupt_name);

/// Bytes record_positions holds for `components` (and hook_embed with `embed`) over `text`.
uint64_t record_bytes(const model::LoadedModel& m, std::string_view text, const ScoringRun& run,
                      const std::vector<Component>& components, bool embed);

/// A Mode::kCorrupt reference: the activation of every hook of `components` (and hook_embed with `embed`)
/// over `text` at every stream position, Reference::at[hook] = [streams, positions, feature...] (fp32).
/// Refuses (check_memory, naming the estimate) a record larger than the memory available. `bits`, when
/// given, receives the recorded run's per-token bits (ablated_bits of the clean model: observers change
/// nothing).
Reference record_positions(model::LoadedModel& m, std::string_view text, const ScoringRun& run,
                           const std::vector<Component>& components, bool embed, std::vector<double>* bits = nullptr);

/// Replaces the input's token embeddings (hook_embed) with those of `other` (a record_positions with
/// `embed`) at the same stream and position: the model then reads the other text and prices this one.
/// With `rows_per` > 0 rows r and r + k·rows_per are one stream (sweep copies).
void install_input(model::HookSet& hooks, const Reference& other, int64_t rows_per);

/// Per coded token of the clean text (streams concatenated in order).
struct PairedBits {
  std::vector<double> clean, corrupt;
  std::vector<std::vector<double>> noised, denoised;  ///< per component of the set, in order
};

/// Both directions for every component of `set`, batched as a sweep (rows of at most `max_rows`);
/// `progress` counts scorings of components (2 per component). `run.mode` is not used.
PairedBits paired_patch_bits(model::LoadedModel& m, std::string_view clean, std::string_view corrupt,
                             const ScoringRun& run, const std::vector<Component>& set, int64_t max_rows = 256,
                             const ProgressFn& progress = {});

}  // namespace ccc::circuits

namespace ccc::circuits {

/// The values of a record `act` ([streams, positions, feature...]) at the stream and position of every
/// element of `x` ([batch, pos, feature...], rows described by ctx.run; `rows_per` as install_input),
/// in x's shape and dtype. Throws ccc::Error when the call has no run record or a row's stream or
/// position lies outside the record.
torch::Tensor values_at(const torch::Tensor& act, const torch::Tensor& x, const model::HookContext& ctx,
                        int64_t rows_per);

}  // namespace ccc::circuits
