#include "experiments/commands/ablation_run.h"

#include <cstdio>

#include "circuits/paired.h"
#include "experiments/support/common.h"
#include "experiments/support/progress_hooks.h"
#include "model/base/util.h"
#include "model/base/error.h"
#include "model/scoring/streams.h"

namespace ccc::experiments {

using circuits::DeltaStats;
using circuits::delta_stats;

circuits::ScoringRun AblationRun::scoring() const {
  circuits::ScoringRun r;
  r.mode = circuits::parse_mode(mode);
  r.streams = streams;
  r.window = window;
  r.seed = seed;
  return r;
}

model::StreamOptions stream_options(const AblationRun& run) { return run.scoring().stream_options(); }

nlohmann::json stats_json(const DeltaStats& d) {
  return {{"clean_total_bits", d.clean_total_bits}, {"ablated_total_bits", d.ablated_total_bits},
          {"delta_bits", d.delta_bits},             {"delta_bits_per_byte", d.delta_bits_per_byte},
          {"ci_low", d.ci_low},                     {"ci_high", d.ci_high}};
}


namespace {

// The token mask of --positions… under the run's segmentation and window (`repeated` looks back within a
// stream and its window; for BPE models the window counts tokens and is applied to bytes).
circuits::TokenMask position_mask(const Loaded& l, const AblationRun& run) {
  const auto opt = stream_options(run);
  const int64_t B = model::resolve_streams(l.text.size(), opt.streams);
  const int64_t window = model::resolve_window_policy(l.m.config, opt).first;
  auto mask = circuits::token_mask(l.m, l.text, run.scoring(), analysis::byte_mask(l.text, run.positions, B, window));
  CCC_CHECK(mask.positions > 0, run.file, ": the positions selected (", run.positions.describe(), ") hold no coded token");
  return mask;
}

}  // namespace

DeltaStats masked_delta(const Loaded& l, const std::vector<double>& clean, const std::vector<double>& other,
                        const AblationRun& run) {
  if (!l.mask) return delta_stats(clean, other, static_cast<int64_t>(l.text.size()), run.bootstrap, run.seed);
  return delta_stats(circuits::masked(clean, *l.mask), circuits::masked(other, *l.mask), l.mask->bytes, run.bootstrap,
                     run.seed);
}

nlohmann::json positions_json(const Loaded& l, const AblationRun& run, size_t n_tokens) {
  if (!l.mask) return {{"mask", "all"}, {"count", n_tokens}, {"bytes", l.text.size()}};
  return {{"mask", run.positions.describe()}, {"count", l.mask->positions}, {"bytes", l.mask->bytes}};
}

Loaded load(const AblationRun& run, const std::function<std::vector<circuits::Component>(const model::ModelConfig&)>& comps_of,
            bool reference) {
  Loaded l{model::load_model(run.model.empty() ? default_model_path() : run.model, run.tokenizer), read_input(run.file),
           circuits::parse_mode(run.mode), {}, nullptr, std::nullopt, {}};
  CCC_CHECK(!l.text.empty(), run.file, ": empty input");
  l.comps = comps_of(l.m.config);
  CCC_CHECK(l.mode != circuits::Mode::kCorrupt || !run.corrupt.empty(),
            "--mode corrupt needs --corrupt FILE (the text whose activations replace the input's)");
  if (!run.corrupt.empty()) {
    l.corrupt = read_input(run.corrupt);
    circuits::check_pairable(l.m, l.text, l.corrupt, run.scoring(), run.file, run.corrupt);
  }
  if (!reference) {
    // the caller builds what it needs
  } else if (l.mode == circuits::Mode::kCorrupt) {
    auto scoring = run.scoring();
    scoring.streams = model::resolve_streams(l.text.size(), run.streams);  // the clean text's segmentation
    l.ref = std::make_unique<circuits::Reference>(circuits::record_positions(l.m, l.corrupt, scoring, l.comps, false));
  } else if (l.mode != circuits::Mode::kZero) {
    const std::string ref_text = run.reference.empty() ? l.text : read_input(run.reference);
    l.ref = std::make_unique<circuits::Reference>(
        circuits::collect_reference(l.m, ref_text, l.comps, l.mode, run.streams, run.window, run.seed));
  }
  if (!run.positions.empty()) l.mask = position_mask(l, run);
  return l;
}

int64_t token_count(const Loaded& l, const AblationRun& run) {
  int64_t tokens = 0;
  for (uint64_t c : model::stream_token_counts(l.m, l.text, stream_options(run))) tokens += static_cast<int64_t>(c);
  return tokens;
}

std::vector<double> bits_with_progress(Loaded& l, const AblationRun& run, const char* what, int64_t tokens,
                                       const std::vector<circuits::Component>& circuit, const circuits::Reference* ref) {
  RunProgress progress(what, tokens, run.progress);
  auto bits = circuits::ablated_bits(l.m, l.text, run.scoring(), circuit, ref,
                                     [&](model::HookSet& hs) { progress.attach(hs); });
  progress.finish();
  return bits;
}

std::vector<std::vector<double>> sweep_with_progress(Loaded& l, const AblationRun& run,
                                                     const std::vector<circuits::Component>& set,
                                                     circuits::SweepPath path, circuits::SweepJournal* journal,
                                                     std::vector<double>* clean) {
  ProgressLine line("ablations", static_cast<int64_t>(set.size()), run.progress);
  return circuits::sweep_bits(l.m, l.text, run.scoring(), set, l.ref.get(), path, 256,
                              [&](int64_t done, int64_t) { line.update(done); }, {}, journal, clean);
}

std::string sweep_key(const Loaded& l, const AblationRun& run, const std::vector<circuits::Component>& set,
                      circuits::SweepPath path) {
  std::string key = l.m.fingerprint + "\n" + sha256_hex(l.text) + "\n" + run.mode + "\n" + std::to_string(run.streams) +
                    " " + std::to_string(run.window) + " " + std::to_string(run.seed) + " " +
                    std::to_string(static_cast<int>(path)) + "\n" + run.reference + "\n" +
                    (run.reference.empty() ? std::string() : sha256_hex(read_file(run.reference))) + "\n";
  for (const auto& c : set) key += c.name() + " ";
  return key;
}

void print_delta(const char* ablated_name, const DeltaStats& d, size_t n_bytes) {
  std::printf("clean_total_bits    %14.3f  (%.4f bits/byte)\n", d.clean_total_bits, d.clean_total_bits / n_bytes);
  std::printf("%-19s %14.3f  (%.4f bits/byte)\n", ablated_name, d.ablated_total_bits, d.ablated_total_bits / n_bytes);
  std::printf("delta_bits          %+14.3f  delta_bits_per_byte %+.4f  95%% CI [%+.4f, %+.4f]\n", d.delta_bits,
              d.delta_bits_per_byte, d.ci_low, d.ci_high);
}

int64_t resolved_streams(const Loaded& l, const AblationRun& run) {
  return model::resolve_streams(l.text.size(), run.streams);
}

std::string scoring_text(const Loaded& l, const AblationRun& run) {
  const int64_t B = resolved_streams(l, run);
  return std::to_string(B) + (B == 1 ? " stream, " : " streams, ") + model::describe_policy(l.m.config, stream_options(run));
}

double masked_total(const Loaded& l, const std::vector<double>& bits) {
  return circuits::total_bits(l.mask ? circuits::masked(bits, *l.mask) : bits);
}

int64_t counted_bytes(const Loaded& l) { return l.mask ? l.mask->bytes : static_cast<int64_t>(l.text.size()); }

void print_positions(const Loaded& l, const AblationRun& run) {
  if (l.mask)
    std::printf("positions: %s (%lld tokens, %lld bytes); bits below are over them\n", run.positions.describe().c_str(),
                (long long)l.mask->positions, (long long)l.mask->bytes);
}

}  // namespace ccc::experiments
