#pragma once
// What the circuit commands (ablate, sweep, attribute, patch, discover) share: the model, input, parsed
// components, ablation reference and position mask of one run, and the Δbits figures over that mask.
// Internal to experiments/commands.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "circuits/ablation.h"
#include "circuits/sweep.h"
#include "experiments/commands/ablate_cmd.h"
#include "model/formats/loader.h"

namespace ccc::experiments {

struct Loaded {
  model::LoadedModel m;
  std::string text;
  circuits::Mode mode;
  std::vector<circuits::Component> comps;  ///< the command's components, parsed once against the model
  std::unique_ptr<circuits::Reference> ref;
  std::optional<circuits::TokenMask> mask;  ///< the positions Δbits counts (none = every coded token)
  std::string corrupt;                      ///< the corrupt text (mode corrupt, paired patching)
};

/// Loads the model and input of `run`, parses the components (`comps_of`), builds the reference of mean /
/// resample / corrupt ablations (corrupt: the texts checked pairable, every position of the corrupt run
/// recorded) and the position mask. Without `reference` no reference is built (the caller records what it
/// needs).
Loaded load(const AblationRun& run,
            const std::function<std::vector<circuits::Component>(const model::ModelConfig&)>& comps_of,
            bool reference = true);

/// The segmentation and window of `run`.
model::StreamOptions stream_options(const AblationRun& run);
/// How the figures were measured: "B streams, rolling W=128" (the stream count resolved for the input).
std::string scoring_text(const Loaded& l, const AblationRun& run);
/// The stream count the run uses on the input (0 = automatic resolved).
int64_t resolved_streams(const Loaded& l, const AblationRun& run);

/// Δbits of per-token bits over the positions of the run's mask (all coded tokens without one).
circuits::DeltaStats masked_delta(const Loaded& l, const std::vector<double>& clean, const std::vector<double>& other,
                                  const AblationRun& run);
/// Σ bits over the mask's positions (all without one).
double masked_total(const Loaded& l, const std::vector<double>& bits);
/// Bytes the figures divide by: those the mask covers, or the whole input.
int64_t counted_bytes(const Loaded& l);

/// Which positions the figures count: {"mask": "all" | a description, "count": tokens, "bytes": bytes covered}.
nlohmann::json positions_json(const Loaded& l, const AblationRun& run, size_t n_tokens);
/// clean / ablated totals, delta_bits, delta_bits_per_byte and the CI.
nlohmann::json stats_json(const circuits::DeltaStats& d);

/// Coded tokens of the input under the run's segmentation.
int64_t token_count(const Loaded& l, const AblationRun& run);

/// Per-token bits of `circuit` ablated (empty = clean) with a "tokens done / total" line on a terminal.
std::vector<double> bits_with_progress(Loaded& l, const AblationRun& run, const char* what, int64_t tokens,
                                       const std::vector<circuits::Component>& circuit, const circuits::Reference* ref);

/// A sweep with the "ablations: done/total" line.
std::vector<std::vector<double>> sweep_with_progress(Loaded& l, const AblationRun& run,
                                                     const std::vector<circuits::Component>& set,
                                                     circuits::SweepPath path, circuits::SweepJournal* journal = nullptr,
                                                     std::vector<double>* clean = nullptr);
/// What a sweep's results depend on (model fingerprint, text, mode, policy, seed, path, reference, set):
/// the key of its --partial file.
std::string sweep_key(const Loaded& l, const AblationRun& run, const std::vector<circuits::Component>& set,
                      circuits::SweepPath path);

/// The three lines clean / ablated / delta of a Δbits figure (per byte over `n_bytes`).
void print_delta(const char* ablated_name, const circuits::DeltaStats& d, size_t n_bytes);

/// "positions: … (N tokens, M bytes); bits below are over them" when the run has a mask.
void print_positions(const Loaded& l, const AblationRun& run);

}  // namespace ccc::experiments
