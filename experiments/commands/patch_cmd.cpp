#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <optional>
#include <sstream>

#include "circuits/paired.h"
#include "circuits/patching.h"
#include "experiments/commands/ablate_cmd.h"
#include "experiments/commands/ablation_run.h"
#include "experiments/support/common.h"
#include "experiments/support/progress_hooks.h"
#include "model/base/error.h"
#include "model/base/util.h"
#include "model/scoring/streams.h"

namespace ccc::experiments {

namespace {

// Path patching: the sender's effect through one receiver.
void run_path_patch(const PatchCmdOptions& o) {
  std::optional<circuits::Component> receiver;
  auto l = load(o.run, [&](const model::ModelConfig& cfg) {
    const auto s = circuits::parse_components(o.sender, cfg);
    CCC_CHECK(s.size() == 1, "--sender ", o.sender, ": expected one component, got ", s.size());
    if (o.receiver != "logits") {
      const auto r = circuits::parse_components(o.receiver, cfg);
      CCC_CHECK(r.size() == 1, "--receiver ", o.receiver, ": expected one component or logits, got ", r.size());
      receiver = r[0];
    }
    circuits::check_path(s[0], receiver, cfg);
    return s;
  });
  const auto opt = stream_options(o.run);
  CCC_CHECK(model::resolve_window_policy(l.m.config, opt).second, l.m.source,
            ": path patching needs the rolling window policy (a rotary model); this model is scored in strided windows");
  RunProgress progress("patch", token_count(l, o.run), o.run.progress);
  const auto bits = circuits::path_patch_bits(l.m, l.text, opt, l.comps[0], receiver, l.mode, l.ref.get(), o.run.seed,
                                              [&](model::HookSet& hs) { progress.attach(hs, "blocks.0.hook_resid_pre"); });
  progress.finish();
  const auto d = masked_delta(l, bits.clean, bits.patched, o.run);
  nlohmann::json j = stats_json(d);
  j["positions"] = positions_json(l, o.run, bits.clean.size());
  j["patched_total_bits"] = j["ablated_total_bits"];
  j.erase("ablated_total_bits");
  j["sender"] = l.comps[0].name();
  j["receiver"] = receiver ? receiver->name() : "logits";
  j["n_bytes"] = l.text.size();
  j["n_tokens"] = bits.clean.size();
  j["mode"] = o.run.mode;
  j["model"] = l.m.source;
  j["fingerprint"] = l.m.fingerprint;
  j["policy"] = model::describe_policy(l.m.config, opt);
  j["streams"] = resolved_streams(l, o.run);
  if (o.per_token) {
    j["clean_bits"] = bits.clean;
    j["patched_bits"] = bits.patched;
  }
  if (o.json || o.per_token) {
    stamp(j, "patch");
    std::cout << j.dump(o.per_token ? -1 : 2) << "\n";
    return;
  }
  std::printf("model %s, path %s -> %s (%s ablation of the sender, everything else frozen) on %s (%zu bytes, %s)\n",
              l.m.source.c_str(), j["sender"].get<std::string>().c_str(), j["receiver"].get<std::string>().c_str(),
              o.run.mode.c_str(), o.run.file.c_str(), l.text.size(), scoring_text(l, o.run).c_str());
  print_positions(l, o.run);
  print_delta("patched_total_bits", d, static_cast<size_t>(counted_bytes(l)));
}

// One direction of one component: Δbits against `base` over the mask, and its share of the corruption's
// effect (`effect` = corrupt − clean bits over the mask).
nlohmann::json direction_json(const Loaded& l, const AblationRun& run, const std::vector<double>& base,
                              const std::vector<double>& patched, double effect) {
  const auto d = masked_delta(l, base, patched, run);
  return {{"delta_bits", d.delta_bits},
          {"delta_bits_per_byte", d.delta_bits_per_byte},
          {"ci_low", d.ci_low},
          {"ci_high", d.ci_high},
          {"share_of_effect", effect != 0 ? std::abs(d.delta_bits) / std::abs(effect) : 0.0}};
}

void print_paired(const Loaded& l, const PatchCmdOptions& o, const nlohmann::json& j, const circuits::DeltaStats& effect) {
  const double nb = static_cast<double>(counted_bytes(l));
  std::printf("model %s, paired activation patching: clean %s, corrupt %s (%zu bytes, %s), %.1f s\n",
              l.m.source.c_str(), o.run.file.c_str(), o.run.corrupt.c_str(), l.text.size(),
              scoring_text(l, o.run).c_str(), j["seconds"].get<double>());
  print_positions(l, o.run);
  std::printf("clean input %.4f bits/byte; corrupt input %.4f bits/byte on the clean tokens: the corruption costs "
              "%+.3f bits (%+.4f bits/byte, 95%% CI [%+.4f, %+.4f])\n",
              effect.clean_total_bits / nb, effect.ablated_total_bits / nb, effect.delta_bits, effect.delta_bits_per_byte,
              effect.ci_low, effect.ci_high);
  std::printf("noising: clean input, the component from the corrupt run; denoising: corrupt input, the component "
              "from the clean run\n");
  std::printf("%-10s %12s %22s %7s %12s %22s %9s\n", "component", "noise_dbpb", "95% CI", "share", "denoise_dbpb",
              "95% CI", "recovered");
  for (const auto& c : j["components"]) {
    const auto& n = c["noising"];
    const auto& d = c["denoising"];
    std::printf("%-10s %+12.5f [%+.5f, %+.5f] %7.3f %+12.5f [%+.5f, %+.5f] %9.3f\n",
                c["component"].get<std::string>().c_str(), n["delta_bits_per_byte"].get<double>(),
                n["ci_low"].get<double>(), n["ci_high"].get<double>(), n["share_of_effect"].get<double>(),
                d["delta_bits_per_byte"].get<double>(), d["ci_low"].get<double>(), d["ci_high"].get<double>(),
                d["recovered"].get<double>());
  }
}

// Paired clean / corrupt activation patching of every component, both directions.
void run_paired_patch(const PatchCmdOptions& o) {
  CCC_CHECK(o.components.empty() || o.over.empty(), "patch: give -c COMPONENTS or --over SET, not both");
  CCC_CHECK(o.run.reference.empty(), "patch --corrupt: --reference is for mean / resample ablations");
  auto l = load(
      o.run,
      [&](const model::ModelConfig& cfg) {
        return o.components.empty() ? circuits::sweep_set(o.over.empty() ? "heads" : o.over, cfg)
                                    : circuits::parse_components(o.components, cfg);
      },
      /*reference=*/false);
  const auto& set = l.comps;
  ProgressLine line("patch: scorings", 2 * static_cast<int64_t>(set.size()), o.run.progress);
  const auto t0 = std::chrono::steady_clock::now();
  const auto bits = circuits::paired_patch_bits(l.m, l.text, l.corrupt, o.run.scoring(), set, 256,
                                                [&](int64_t done, int64_t) { line.update(done); });
  const double secs = seconds_since(t0);
  const auto effect = masked_delta(l, bits.clean, bits.corrupt, o.run);
  nlohmann::json j = {{"clean", o.run.file},
                      {"corrupt", o.run.corrupt},
                      {"clean_total_bits", effect.clean_total_bits},
                      {"corrupt_total_bits", effect.ablated_total_bits},
                      {"effect_bits", effect.delta_bits},
                      {"effect_bits_per_byte", effect.delta_bits_per_byte},
                      {"effect_ci_low", effect.ci_low},
                      {"effect_ci_high", effect.ci_high},
                      {"n_bytes", l.text.size()},
                      {"n_tokens", bits.clean.size()},
                      {"positions", positions_json(l, o.run, bits.clean.size())},
                      {"seconds", secs},
                      {"model", l.m.source},
                      {"fingerprint", l.m.fingerprint},
                      {"policy", model::describe_policy(l.m.config, stream_options(o.run))},
                      {"streams", resolved_streams(l, o.run)}};
  std::ostringstream csv;
  csv << "component,layer,index,noising_delta_bits,noising_delta_bits_per_byte,noising_ci_low,noising_ci_high,"
         "noising_share,denoising_delta_bits,denoising_delta_bits_per_byte,denoising_ci_low,denoising_ci_high,"
         "recovered\n";
  j["components"] = nlohmann::json::array();
  for (size_t i = 0; i < set.size(); ++i) {
    auto noise = direction_json(l, o.run, bits.clean, bits.noised[i], effect.delta_bits);
    auto denoise = direction_json(l, o.run, bits.corrupt, bits.denoised[i], effect.delta_bits);
    const double recovered = effect.delta_bits != 0 ? -denoise["delta_bits"].get<double>() / effect.delta_bits : 0.0;
    denoise["recovered"] = recovered;
    nlohmann::json c = {{"component", set[i].name()}, {"layer", set[i].layer}, {"index", set[i].index},
                        {"noising", noise},           {"denoising", denoise}};
    if (o.per_token) {
      c["noised_bits"] = bits.noised[i];
      c["denoised_bits"] = bits.denoised[i];
    }
    j["components"].push_back(c);
    char row[512];
    std::snprintf(row, sizeof row, "%s,%lld,%lld,%.6f,%.8f,%.8f,%.8f,%.6f,%.6f,%.8f,%.8f,%.8f,%.6f\n",
                  set[i].name().c_str(), (long long)set[i].layer, (long long)set[i].index,
                  noise["delta_bits"].get<double>(), noise["delta_bits_per_byte"].get<double>(),
                  noise["ci_low"].get<double>(), noise["ci_high"].get<double>(), noise["share_of_effect"].get<double>(),
                  denoise["delta_bits"].get<double>(), denoise["delta_bits_per_byte"].get<double>(),
                  denoise["ci_low"].get<double>(), denoise["ci_high"].get<double>(), recovered);
    csv << row;
  }
  if (o.per_token) {
    j["clean_bits"] = bits.clean;
    j["corrupt_bits"] = bits.corrupt;
  }
  if (!o.csv.empty()) write_file_atomic(o.csv, csv.str(), o.force);
  stamp(j, "patch");
  if (o.json || o.per_token) {
    std::cout << j.dump(o.per_token ? -1 : 2) << "\n";
    return;
  }
  print_paired(l, o, j, effect);
}

}  // namespace

void run_patch(const PatchCmdOptions& o) {
  if (!o.sender.empty()) {
    CCC_CHECK(o.components.empty() && o.over.empty() && o.csv.empty(),
              "patch --sender (path patching) takes no -c / --over / --csv; those are for paired patching");
    return run_path_patch(o);
  }
  CCC_CHECK(!o.run.corrupt.empty(),
            "patch: give --sender S [--receiver R] (path patching) or --corrupt FILE (paired activation patching)");
  CCC_CHECK(o.run.mode == "zero" || o.run.mode == "corrupt",
            "patch --corrupt: paired patching takes its replacement values from the two runs (no --mode ", o.run.mode, ")");
  run_paired_patch(o);
}

}  // namespace ccc::experiments
