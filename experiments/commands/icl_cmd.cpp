#include "experiments/commands/icl_cmd.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <sstream>

#include "circuits/head_detectors.h"
#include "experiments/support/common.h"
#include "model/base/error.h"
#include "model/base/fileio.h"
#include "model/base/util.h"
#include "model/core/bits.h"
#include "model/core/score.h"
#include "model/training/corpus.h"

namespace ccc::experiments {

using circuits::IclReport;
using circuits::RepeatBits;

namespace fs = std::filesystem;

void run_icl(const IclCmdOptions& o) {
  auto m = model::load_model(o.model.empty() ? default_model_path() : o.model, o.tokenizer);
  std::vector<Source> sources;
  if (!o.file.empty()) sources.emplace_back(o.file, read_input(o.file));
  else sources = held_out_sources(o.corpora_dir);
  const auto rep = circuits::measure_icl(m, sources, o.icl);
  if (!o.plot.empty()) {
    std::string csv;
    for (size_t i = 0; i < rep.curve.size(); ++i) csv += std::to_string(i + 1) + "," + std::to_string(rep.curve[i]) + "\n";
    Plot plot;
    const std::string dat = plot.data("curve.csv", csv);
    const bool ok = plot.render(o.plot, "set datafile separator ','\nset grid\nset xlabel 'token position'\n"
                                        "set ylabel 'mean bits per token'\nset title 'bits vs position, " +
                                            std::to_string(rep.windows) + " held-out windows'\n"
                                            "plot " + dat + " using 1:2 with lines lw 2 notitle",
                                900, 500, o.force);
    if (!ok) std::fprintf(stderr, "warning: gnuplot failed; no %s\n", o.plot.c_str());
  }
  if (o.json) {
    auto j = rep.to_json();
    j["model"] = m.source;
    j["fingerprint"] = m.fingerprint;
    stamp(j, "icl");
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::printf("model %s\n", m.source.c_str());
  std::printf("%-28s %8s %12s %12s %10s\n", "repeated spans", "spans", "first bpb", "second bpb", "delta");
  auto row = [](const std::string& name, const RepeatBits& r) {
    std::printf("%-28s %8lld %12.4f %12.4f %+10.4f\n", name.c_str(), (long long)r.spans, r.first_bpb, r.second_bpb,
                r.second_bpb - r.first_bpb);
  };
  for (const auto& [name, r] : rep.text) row("  " + name, r);
  row("text (all)", rep.text_all);
  row("random printable", rep.random);
  std::printf("icl_score %.4f bits, 95%% CI [%.4f, %.4f] (mean bits at positions %lld±%lld: %.4f, at %lld±%lld: "
              "%.4f; %lld windows)\n",
              rep.icl_score, rep.icl_ci_low, rep.icl_ci_high, (long long)rep.late, (long long)o.icl.band, rep.late_bits, (long long)rep.early,
              (long long)o.icl.band, rep.early_bits, (long long)rep.windows);
}

namespace {

void heatmap(const std::string& png, const circuits::HeadScores& s, const std::vector<double>& v, const std::string& title,
             bool overwrite) {
  std::string text;
  for (int64_t l = 0; l < s.n_layers; ++l) {
    for (int64_t h = 0; h < s.n_heads; ++h) text += (h ? " " : "") + std::to_string(s.score(v, l, h));
    text += "\n";
  }
  Plot plot;
  const std::string dat = plot.data("heads.dat", text);
  const bool ok = plot.render(png, "set title '" + title + "'\nset xlabel 'head'\nset ylabel 'layer'\nset cbrange [0:1]\n"
                                "set palette defined (0 'white', 1 'dark-red')\nset yrange [-0.5:" +
                                    std::to_string(s.n_layers - 0.5) + "] reverse\nset xrange [-0.5:" +
                                    std::to_string(s.n_heads - 0.5) + "]\nset xtics 1\nset ytics 1\n"
                                    "plot " + dat + " matrix with image notitle, '' matrix using 1:2:(sprintf('%.2f',$3)) with labels notitle",
                      160 + 60 * static_cast<int>(s.n_heads), 120 + 50 * static_cast<int>(s.n_layers), overwrite);
  if (!ok) std::fprintf(stderr, "warning: gnuplot failed; no %s\n", png.c_str());
}

// step -> (tokens, train_bpb, val_bpb) from a run's train_log.csv
std::map<int64_t, std::vector<double>> read_train_log(const std::string& path) {
  std::map<int64_t, std::vector<double>> out;
  std::error_code ec;
  if (!fs::exists(path, ec)) return out;
  std::istringstream in(read_file(path));
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::vector<double> f;
    std::stringstream ls(line);
    std::string cell;
    while (std::getline(ls, cell, ',')) f.push_back(cell.empty() ? std::nan("") : std::atof(cell.c_str()));
    if (f.size() == 3 && !line.empty() && line.back() == ',') f.push_back(std::nan(""));  // empty last cell
    if (f.size() >= 4) {
      if (f[3] < 0) f[3] = std::nan("");  // logs written before 0.1.0's empty cells marked a missing val_bpb -1
      out[static_cast<int64_t>(f[0])] = {f[1], f[2], f[3]};
    }
  }
  return out;
}

void run_emergence(const HeadsCmdOptions& o) {
  const fs::path run(o.checkpoints), dir = run / "checkpoints";
  std::error_code ec;
  CCC_CHECK(fs::is_directory(dir, ec), o.checkpoints, ": no checkpoints/ directory (train with checkpoint_every > 0)");
  std::vector<std::pair<int64_t, std::string>> steps;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    int64_t step = 0;
    if (n.rfind("step-", 0) == 0 && parse_int64(n.substr(5), &step) && step >= 0) steps.emplace_back(step, e.path().string());
  }
  CCC_CHECK(!steps.empty(), dir.string(), ": no step-N checkpoints");
  std::sort(steps.begin(), steps.end());
  const auto log = read_train_log((run / "train_log.csv").string());
  const auto sources = held_out_sources(o.corpora_dir);
  const std::string csv_path = o.out.empty() ? (run / "emergence.csv").string() : o.out;
  const std::string png = fs::path(csv_path).replace_extension(".png").string();
  for (const auto& path : {csv_path, png})  // refused before the checkpoints are scored, not after
    CCC_CHECK(o.force || !fs::exists(path, ec), path, " exists (use -f to replace it)");
  std::string csv = "step,tokens,train_bpb,val_bpb,max_prev_token,max_induction,max_duplicate_token,"
                    "random_first_bpb,random_second_bpb,icl_score\n";
  circuits::IclOptions io;
  io.windows = 48;
  io.late = 200;  // within the organisms' context
  io.early = 20;
  for (const auto& [step, path] : steps) {
    auto m = model::load_model(path);
    const auto s = circuits::head_scores(m, o.seq_len, o.batch, o.seed);
    const auto rnd = circuits::repeated_span_bits(m, circuits::random_printable(io.random_len, io.random_spans, o.seed));
    circuits::IclOptions w = io;
    w.spans = 1;
    const auto rep = circuits::measure_icl(m, sources, w);
    const auto it = log.find(step);
    // a missing value (no log row, or no validation pass at that step) is an empty cell
    auto cell = [&](int i, const char* f) {
      if (it == log.end() || std::isnan(it->second[i])) return std::string();
      char b[32];
      std::snprintf(b, sizeof b, f, it->second[i]);
      return std::string(b);
    };
    char line[512];
    std::snprintf(line, sizeof line, "%lld,%s,%s,%s,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f\n", (long long)step,
                  cell(0, "%.0f").c_str(), cell(1, "%.5f").c_str(), cell(2, "%.5f").c_str(),
                  circuits::HeadScores::max_of(s.prev_token),
                  circuits::HeadScores::max_of(s.induction), circuits::HeadScores::max_of(s.duplicate_token),
                  rnd.first_bpb, rnd.second_bpb, rep.icl_score);
    csv += line;
    std::printf("%s", line);
    std::fflush(stdout);
  }
  write_file_atomic(csv_path, csv, o.force);
  if (!plot_png(png, "set datafile separator ','\nset key autotitle columnhead\nset grid\nset multiplot layout 2,1\n"
                     "set ylabel 'score'\nset yrange [0:1]\nset key outside right top\nplot " + gp_quote(csv_path) + " using 1:6 with linespoints pt 7 lw 2 title 'max induction', "
                     "'' using 1:5 with linespoints pt 6 title 'max prev-token'\nset yrange [*:*]\nset xlabel 'step'\n"
                     "set ylabel 'bits per byte'\nset key outside right top\nplot " + gp_quote(csv_path) + " using 1:3 with lines title 'train', "
                     "'' using 1:9 with linespoints pt 7 title 'repeated random, 2nd copy', '' using 1:($4 >= 0 ? $4 : 1/0) "
                     "with linespoints pt 5 title 'validation'\nunset multiplot", 900, 700, o.force))
    std::fprintf(stderr, "warning: gnuplot failed; no %s\n", png.c_str());
  std::printf("wrote %s and %s\n", csv_path.c_str(), png.c_str());
}

}  // namespace

void run_make_probe(const MakeProbeCmdOptions& o) {
  const auto p = circuits::make_probe(o.len, o.strings, o.seed);
  const fs::path out(o.out);
  auto beside = [&](const std::string& given, const char* suffix) {
    return !given.empty() ? given : (out.parent_path() / (out.stem().string() + suffix + out.extension().string())).string();
  };
  const std::string fresh_path = beside(o.fresh_out, "-norep"), corrupt_path = beside(o.corrupt_out, "-corrupt");
  CCC_CHECK(fresh_path != o.out && corrupt_path != o.out && fresh_path != corrupt_path,
            "make-probe: the three outputs must differ");
  OutputFile rep(o.out, o.force), fresh(fresh_path, o.force), corrupt(corrupt_path, o.force);
  rep.write(p.repeated);
  fresh.write(p.fresh);
  corrupt.write(p.corrupt);
  rep.commit();
  fresh.commit();
  corrupt.commit();
  std::printf("wrote %s (%lld lines: a random %lld-byte string twice), %s (the same first halves, a fresh second "
              "half) and %s (a fresh first half, the same second half: paired patching's corrupt input), seed %llu\n",
              o.out.c_str(), (long long)o.strings, (long long)o.len, fresh_path.c_str(), corrupt_path.c_str(),
              (unsigned long long)o.seed);
}

void run_heads(const HeadsCmdOptions& o) {
  if (!o.checkpoints.empty()) return run_emergence(o);
  auto m = model::load_model(o.model.empty() ? default_model_path() : o.model, o.tokenizer);
  const auto s = circuits::head_scores(m, o.seq_len, o.batch, o.seed);
  if (!o.plot_dir.empty()) {
    std::error_code ec;
    fs::create_directories(o.plot_dir, ec);
    CCC_CHECK(fs::is_directory(o.plot_dir, ec), "cannot create ", o.plot_dir);
    heatmap((fs::path(o.plot_dir) / "heads_prev_token.png").string(), s, s.prev_token, "previous-token score", o.force);
    heatmap((fs::path(o.plot_dir) / "heads_induction.png").string(), s, s.induction, "induction score", o.force);
    heatmap((fs::path(o.plot_dir) / "heads_duplicate_token.png").string(), s, s.duplicate_token, "duplicate-token score", o.force);
  }
  if (o.json) {
    auto j = s.to_json();
    j["model"] = m.source;
    j["fingerprint"] = m.fingerprint;
    j["seed"] = o.seed;
    stamp(j, "heads");
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::printf("model %s; [BOS, r, r], |r| = %lld random tokens, %lld sequences, seed %llu\n", m.source.c_str(),
              (long long)o.seq_len, (long long)o.batch, (unsigned long long)o.seed);
  std::printf("%5s %5s %11s %11s %16s\n", "layer", "head", "prev_token", "induction", "duplicate_token");
  for (int64_t l = 0; l < s.n_layers; ++l)
    for (int64_t h = 0; h < s.n_heads; ++h)
      std::printf("%5lld %5lld %11.4f %11.4f %16.4f\n", (long long)l, (long long)h, s.score(s.prev_token, l, h),
                  s.score(s.induction, l, h), s.score(s.duplicate_token, l, h));
  std::printf("bits per token: first copy %.4f, second copy %.4f\n", s.first_half_bits, s.second_half_bits);
}

}  // namespace ccc::experiments
