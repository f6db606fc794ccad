// `ccc experiment icl`: runs experiments::run_icl_circuit and renders its Result and detail.

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>

#include "circuits/ablation.h"
#include "experiments/commands/experiment_parts.h"
#include "experiments/lib/icl_circuit.h"
#include "experiments/support/common.h"
#include "model/base/error.h"
#include "model/base/fileio.h"
#include "model/base/util.h"

namespace fs = std::filesystem;

namespace ccc::experiments {

namespace {

std::string section(const Result& r, const IclCircuitDetail& d, const std::string& input) {
  std::ostringstream md;
  md << "## icl: which circuit wins as the context grows\n\n" << r.hypothesis << "\n\nModel `" << r.model << "`, input "
     << input << ", seed " << r.seed << "; " << d.window_labels.size() << " windows of " << d.window_len
     << " bytes. Induction heads (independent [BOS, r, r] detector): ";
  for (size_t i = 0; i < d.induction_heads.size(); ++i)
    md << (i ? ", " : "") << d.induction_heads[i] << " (" << num(d.induction_scores[i], 2) << ")";
  md << "; top MLPs: " << (d.mlps.empty() ? std::string("none (attention-only model)") : nlohmann::json(d.mlps).dump()) << ".\n\n"
     << measurement_table(r) << "\n**Verdict: " << to_string(r.verdict) << "** — " << r.verdict_rule << "\n\n"
     << "![bits vs position](bits_vs_position.png)\n\n"
     << "| repeated span | clean | induction heads ablated | top MLPs ablated | random heads (null mean) |\n|---|---:|---:|---:|---:|\n"
     << "| first copy, bits/byte | " << num(d.first_copy[0], 3) << " | " << num(d.first_copy[1], 3) << " | "
     << (d.mlps.empty() ? "-" : num(d.first_copy[2], 3)) << " | " << num(d.first_copy[3], 3) << " |\n"
     << "| second copy, bits/byte | " << num(d.second_copy[0], 3) << " | " << num(d.second_copy[1], 3) << " | "
     << (d.mlps.empty() ? "-" : num(d.second_copy[2], 3)) << " | " << num(d.second_copy[3], 3) << " |\n";
  return md.str();
}

}  // namespace

void run_icl_circuit_cmd(const ExperimentCmdOptions& o, model::LoadedModel& m) {
  const auto in = experiment_input(o, o.quick ? 1200 : 8000);
  IclCircuitOptions c;
  c.mode = circuits::parse_mode(o.mode);
  c.seed = o.seed;
  c.byte_labels = in.labels;
  if (o.quick) c.windows = 16, c.window_len = 256, c.late = 200, c.span = 100, c.null_draws = 5, c.resamples = 500;
  if (o.positions > 0) c.windows = o.positions;
  if (o.null_draws > 0) c.null_draws = o.null_draws;
  c.progress = phase_progress("icl", o.progress);
  if (o.progress)
    std::fprintf(stderr, "icl: %lld windows of %s, clean / induction heads / top MLPs / %lld random head sets\n",
                 static_cast<long long>(c.windows), in.name.c_str(), static_cast<long long>(c.null_draws));
  const auto t0 = std::chrono::steady_clock::now();
  IclCircuitDetail d;
  Result r = run_icl_circuit(m, in.text, c, &d);
  nlohmann::json j = result_json(r, m, in, o);
  j["windows"] = d.window_labels.size();
  j["window_len"] = d.window_len;
  j["induction_heads"] = d.induction_heads;
  j["induction_scores"] = d.induction_scores;
  j["top_mlps"] = d.mlps;
  j["bits_by_position"] = {{"bin_start", d.bin_start}, {"clean", d.bits_clean}, {"induction_ablated", d.bits_induction},
                           {"mlps_ablated", d.bits_mlps}, {"random_heads", d.bits_null}};
  const double secs = seconds_since(t0);
  std::ostringstream csv;
  csv << "bin_start clean induction_ablated mlps_ablated random_heads\n";
  for (size_t i = 0; i < d.bin_start.size(); ++i)
    csv << d.bin_start[i] << " " << num(d.bits_clean[i], 6) << " " << num(d.bits_induction[i], 6) << " "
        << (d.bits_mlps.empty() ? std::string("NaN") : num(d.bits_mlps[i], 6)) << " " << num(d.bits_null[i], 6) << "\n";
  OutputDir out(o.out, o.force);
  write_file_atomic(out.file("result.json"), j.dump(2) + "\n");
  write_file_atomic(out.file("bits_by_position.csv"), csv.str());
  write_file_atomic(out.file("section.md"), section(r, d, in.name));
  std::ostringstream rep;
  rep << "position clean induction_ablated mlps_ablated\n";
  for (size_t i = 0; i < d.repeated_clean.size(); ++i)
    rep << i + 1 << " " << num(d.repeated_clean[i], 6) << " " << num(d.repeated_induction[i], 6) << " "
        << (d.repeated_mlps.empty() ? std::string("NaN") : num(d.repeated_mlps[i], 6)) << "\n";
  write_file_atomic(out.file("repeated_by_position.csv"), rep.str());
  Plot plot;
  const std::string dat = plot.data("bits.dat", csv.str()), rdat = plot.data("rep.dat", rep.str());
  if (!plot.render(out.file("bits_vs_position.png"),
                   "set multiplot layout 1,2 title " + gp_quote("icl: " + fs::path(r.model).filename().string() + " on " + in.name) +
                       " noenhanced\nset key top right\nset grid\nset ylabel 'mean bits per token'\n"
                       "set title 'held-out windows'\nset logscale x 2\nset xlabel 'token position (log-spaced bins)'\nplot " + dat +
                       " using 1:2 with linespoints lw 2 title 'clean', '' using 1:3 with linespoints title 'induction heads ablated', "
                       "'' using 1:4 with linespoints title 'top MLPs ablated', '' using 1:5 with linespoints dt 2 title 'random heads (null mean)'\n"
                       "unset logscale x\nset title 'repeated spans [BOS, s, s]'\nset xlabel 'token position'\nset arrow from " +
                       std::to_string(d.span) + ".5, graph 0 to " + std::to_string(d.span) + ".5, graph 1 nohead dt 3\nplot " + rdat +
                       " using 1:2 with lines lw 2 title 'clean', '' using 1:3 with lines title 'induction heads ablated', '' using 1:4 "
                       "with lines title 'top MLPs ablated'\nunset multiplot",
                   1300, 500))
    std::fprintf(stderr, "warning: gnuplot failed; no bits_vs_position.png\n");
  out.commit();
  if (o.print) {
    std::printf("%s", section(r, d, in.name).c_str());
    std::printf("\nwrote %s (result.json, section.md, bits_by_position.csv, repeated_by_position.csv, bits_vs_position.png), %.1f s\n", o.out.c_str(), secs);
  }
}

}  // namespace ccc::experiments
