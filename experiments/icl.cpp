#include "experiments/icl.h"

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
#include "experiments/common.h"
#include "model/base/error.h"
#include "model/base/util.h"
#include "model/core/bits.h"
#include "model/core/score.h"
#include "model/training/corpus.h"

namespace ccc::experiments {

namespace fs = std::filesystem;

RepeatBits repeated_span_bits(model::LoadedModel& m, const std::vector<std::string>& spans) {
  RepeatBits r;
  double first = 0, second = 0;
  for (const auto& s : spans) {
    const auto ids = m.tokenizer->encode(s);
    if (ids.empty()) continue;
    std::vector<int64_t> seq{m.config.bos_id};
    seq.insert(seq.end(), ids.begin(), ids.end());
    seq.insert(seq.end(), ids.begin(), ids.end());
    const auto bits = model::score_bits(m.model, seq);  // bits[i] predicts seq[i + 1]
    const size_t n = ids.size();
    for (size_t i = 0; i < n; ++i) {
      first += bits[i];
      second += bits[n + i];
    }
    r.spans += 1;
    r.bytes += static_cast<int64_t>(s.size());
  }
  if (r.bytes > 0) {
    r.first_bpb = first / static_cast<double>(r.bytes);
    r.second_bpb = second / static_cast<double>(r.bytes);
  }
  return r;
}

std::vector<std::string> even_spans(const std::string& text, int64_t len, int64_t count) {
  std::vector<std::string> out;
  const int64_t n = static_cast<int64_t>(text.size());
  if (len <= 0 || count <= 0 || n < len) return out;
  for (int64_t k = 0; k < count; ++k) {
    const int64_t o = count == 1 ? 0 : (n - len) * k / (count - 1);
    out.push_back(text.substr(static_cast<size_t>(o), static_cast<size_t>(len)));
  }
  return out;
}

std::vector<std::string> random_printable(int64_t len, int64_t count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> byte(32, 126);
  std::vector<std::string> out(static_cast<size_t>(count));
  for (auto& s : out)
    for (int64_t i = 0; i < len; ++i) s.push_back(static_cast<char>(byte(rng)));
  return out;
}

namespace {
nlohmann::json repeat_json(const RepeatBits& r) {
  return {{"spans", r.spans}, {"bytes_per_copy", r.bytes}, {"first_bits_per_byte", r.first_bpb},
          {"second_bits_per_byte", r.second_bpb}, {"delta_bits_per_byte", r.second_bpb - r.first_bpb}};
}
}  // namespace

nlohmann::json IclReport::to_json() const {
  nlohmann::json per = nlohmann::json::object();
  for (const auto& [name, r] : text) per[name] = repeat_json(r);
  return {{"repeated_text", repeat_json(text_all)},
          {"repeated_text_per_source", per},
          {"repeated_random", repeat_json(random)},
          {"icl_score_bits", icl_score},
          {"early_position", early},
          {"late_position", late},
          {"early_bits", early_bits},
          {"late_bits", late_bits},
          {"icl_windows", windows},
          {"bits_by_position", curve}};
}

IclReport measure_icl(model::LoadedModel& m, const std::vector<Source>& sources, const IclOptions& o) {
  torch::InferenceMode guard;
  m.model->eval();
  CCC_CHECK(!sources.empty(), "icl: no text to measure on");
  CCC_CHECK(o.band >= 1 && o.early > o.band && o.late > o.early, "icl: need --early > band and --late > --early");
  IclReport rep;
  std::vector<std::string> all;
  for (const auto& [name, text] : sources) {
    auto spans = even_spans(text, o.span_len, o.spans);
    if (spans.empty()) continue;
    rep.text.emplace_back(name, repeated_span_bits(m, spans));
    all.insert(all.end(), spans.begin(), spans.end());
  }
  CCC_CHECK(!all.empty(), "icl: every text is shorter than --span-len ", o.span_len, " bytes");
  rep.text_all = repeated_span_bits(m, all);
  rep.random = repeated_span_bits(m, random_printable(o.random_len, o.random_spans, o.seed));

  // ICL score: windows [BOS, t_1 .. t_{len-1}] with len = late + band positions
  const int64_t n_ctx = m.config.n_ctx;
  rep.late = std::min(o.late, n_ctx - o.band);
  rep.early = o.early;
  CCC_CHECK(rep.late - o.band >= rep.early + o.band, "icl: the model's context (", n_ctx,
            ") is too short for early position ", rep.early, " and a late one");
  const int64_t len = rep.late + o.band;
  std::vector<std::vector<int64_t>> windows;
  const int64_t per_source = (o.windows + static_cast<int64_t>(sources.size()) - 1) / static_cast<int64_t>(sources.size());
  for (const auto& [name, text] : sources) {
    const auto ids = m.tokenizer->encode(text);
    const int64_t n = static_cast<int64_t>(ids.size());
    if (n < len - 1) continue;
    for (int64_t k = 0; k < per_source; ++k) {
      const int64_t off = per_source == 1 ? 0 : (n - (len - 1)) * k / (per_source - 1);
      std::vector<int64_t> w{m.config.bos_id};
      w.insert(w.end(), ids.begin() + off, ids.begin() + off + (len - 1));
      windows.push_back(std::move(w));
    }
  }
  CCC_CHECK(!windows.empty(), "icl: no text holds a window of ", len - 1, " tokens");
  rep.windows = static_cast<int64_t>(windows.size());
  std::vector<double> sum(static_cast<size_t>(len - 1), 0.0);
  const int64_t B = 8;
  for (size_t w0 = 0; w0 < windows.size(); w0 += B) {
    const int64_t b = std::min<int64_t>(B, static_cast<int64_t>(windows.size() - w0));
    auto t = torch::empty({b, len}, torch::kInt64);
    for (int64_t r = 0; r < b; ++r)
      std::copy(windows[w0 + r].begin(), windows[w0 + r].end(), t[r].data_ptr<int64_t>());
    auto logits = m.model->forward(t.narrow(1, 0, len - 1));
    auto bits = model::token_bits(logits.to(torch::kFloat64), t.narrow(1, 1, len - 1)).sum(0);  // [len - 1]
    auto acc = bits.accessor<double, 1>();
    for (int64_t i = 0; i < len - 1; ++i) sum[i] += acc[i];
  }
  rep.curve.resize(sum.size());
  for (size_t i = 0; i < sum.size(); ++i) rep.curve[i] = sum[i] / static_cast<double>(rep.windows);
  auto band_mean = [&](int64_t p) {  // positions p − band .. p + band − 1 (curve index = position − 1)
    double s = 0;
    for (int64_t q = p - o.band; q < p + o.band; ++q) s += rep.curve[q - 1];
    return s / static_cast<double>(2 * o.band);
  };
  rep.early_bits = band_mean(rep.early);
  rep.late_bits = band_mean(rep.late);
  rep.icl_score = rep.late_bits - rep.early_bits;
  return rep;
}

std::vector<Source> held_out_sources(const std::string& corpora_dir) {
  const std::string dir = corpora_dir_or_default(corpora_dir);
  std::vector<Source> out;
  for (const auto& name : model::present_corpora(dir))
    out.emplace_back(name, model::load_corpus(dir, name).split(model::Split::kHeldOut));
  CCC_CHECK(!out.empty(), "no corpus found in ", dir, " (run ./setup.sh to fetch the corpora, or pass --corpora DIR)");
  return out;
}

void run_icl(const IclCmdOptions& o) {
  auto m = model::load_model(o.model.empty() ? default_model_path() : o.model, o.tokenizer);
  std::vector<Source> sources;
  if (!o.file.empty()) sources.emplace_back(o.file, read_input(o.file));
  else sources = held_out_sources(o.corpora_dir);
  const auto rep = measure_icl(m, sources, o.icl);
  if (!o.plot.empty()) {
    const std::string dat = o.plot + ".csv.tmp";
    std::string csv;
    for (size_t i = 0; i < rep.curve.size(); ++i) csv += std::to_string(i + 1) + "," + std::to_string(rep.curve[i]) + "\n";
    write_file_atomic(dat, csv);
    const bool ok = plot_png(o.plot, "set datafile separator ','\nset grid\nset xlabel 'token position'\n"
                                     "set ylabel 'mean bits per token'\nset title 'bits vs position, " +
                                         std::to_string(rep.windows) + " held-out windows'\n"
                                         "plot " + gp_quote(dat) + " using 1:2 with lines lw 2 notitle");
    std::error_code ec;
    fs::remove(dat, ec);
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
  std::printf("icl_score %.4f bits (mean bits at positions %lld±%lld: %.4f, at %lld±%lld: %.4f; %lld windows)\n",
              rep.icl_score, (long long)rep.late, (long long)o.icl.band, rep.late_bits, (long long)rep.early,
              (long long)o.icl.band, rep.early_bits, (long long)rep.windows);
}

namespace {

void heatmap(const std::string& png, const circuits::HeadScores& s, const std::vector<double>& v, const std::string& title) {
  const std::string dat = png + ".dat.tmp";
  std::string text;
  for (int64_t l = 0; l < s.n_layers; ++l) {
    for (int64_t h = 0; h < s.n_heads; ++h) text += (h ? " " : "") + std::to_string(s.score(v, l, h));
    text += "\n";
  }
  write_file_atomic(dat, text);
  const bool ok = plot_png(png, "set title '" + title + "'\nset xlabel 'head'\nset ylabel 'layer'\nset cbrange [0:1]\n"
                                "set palette defined (0 'white', 1 'dark-red')\nset yrange [-0.5:" +
                                    std::to_string(s.n_layers - 0.5) + "] reverse\nset xrange [-0.5:" +
                                    std::to_string(s.n_heads - 0.5) + "]\nset xtics 1\nset ytics 1\n"
                                    "plot " + gp_quote(dat) + " matrix with image notitle, '' matrix using 1:2:(sprintf('%.2f',$3)) with labels notitle",
                      160 + 60 * static_cast<int>(s.n_heads), 120 + 50 * static_cast<int>(s.n_layers));
  std::error_code ec;
  fs::remove(dat, ec);
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
    if (n.rfind("step-", 0) == 0 && n.size() > 5 && n.find_first_not_of("0123456789", 5) == std::string::npos)
      steps.emplace_back(std::stoll(n.substr(5)), e.path().string());
  }
  CCC_CHECK(!steps.empty(), dir.string(), ": no step-N checkpoints");
  std::sort(steps.begin(), steps.end());
  const auto log = read_train_log((run / "train_log.csv").string());
  const auto sources = held_out_sources(o.corpora_dir);
  const std::string csv_path = o.out.empty() ? (run / "emergence.csv").string() : o.out;
  std::string csv = "step,tokens,train_bpb,val_bpb,max_prev_token,max_induction,max_duplicate_token,"
                    "random_first_bpb,random_second_bpb,icl_score\n";
  IclOptions io;
  io.windows = 48;
  io.late = 200;  // within the organisms' context
  io.early = 20;
  for (const auto& [step, path] : steps) {
    auto m = model::load_model(path);
    const auto s = circuits::head_scores(m, o.seq_len, o.batch, o.seed);
    const auto rnd = repeated_span_bits(m, random_printable(io.random_len, io.random_spans, o.seed));
    IclOptions w = io;
    w.spans = 1;
    const auto rep = measure_icl(m, sources, w);
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
  write_file_atomic(csv_path, csv);
  const std::string png = fs::path(csv_path).replace_extension(".png").string();
  if (!plot_png(png, "set datafile separator ','\nset key autotitle columnhead\nset grid\nset multiplot layout 2,1\n"
                     "set ylabel 'score'\nset yrange [0:1]\nset key center right\nplot " + gp_quote(csv_path) + " using 1:6 with linespoints pt 7 lw 2 title 'max induction', "
                     "'' using 1:5 with linespoints pt 6 title 'max prev-token'\nset yrange [*:*]\nset xlabel 'step'\n"
                     "set ylabel 'bits per byte'\nplot " + gp_quote(csv_path) + " using 1:3 with lines title 'train', "
                     "'' using 1:9 with linespoints pt 7 title 'repeated random, 2nd copy', '' using 1:($4 >= 0 ? $4 : 1/0) "
                     "with linespoints pt 5 title 'validation'\nunset multiplot", 900, 700))
    std::fprintf(stderr, "warning: gnuplot failed; no %s\n", png.c_str());
  std::printf("wrote %s and %s\n", csv_path.c_str(), png.c_str());
}

}  // namespace

void run_heads(const HeadsCmdOptions& o) {
  if (!o.checkpoints.empty()) return run_emergence(o);
  auto m = model::load_model(o.model.empty() ? default_model_path() : o.model, o.tokenizer);
  const auto s = circuits::head_scores(m, o.seq_len, o.batch, o.seed);
  if (!o.plot_dir.empty()) {
    std::error_code ec;
    fs::create_directories(o.plot_dir, ec);
    CCC_CHECK(fs::is_directory(o.plot_dir, ec), "cannot create ", o.plot_dir);
    heatmap((fs::path(o.plot_dir) / "heads_prev_token.png").string(), s, s.prev_token, "previous-token score");
    heatmap((fs::path(o.plot_dir) / "heads_induction.png").string(), s, s.induction, "induction score");
    heatmap((fs::path(o.plot_dir) / "heads_duplicate_token.png").string(), s, s.duplicate_token, "duplicate-token score");
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
