#include "experiments/support/common.h"
#include "experiments/commands/train_cmd.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>

#include "model/training/corpus.h"
#include "model/base/error.h"
#include "model/base/fileio.h"
#include "model/formats/loader.h"
#include "model/core/fused_ops.h"
#include "circuits/discovery.h"
#include "circuits/sweep.h"
#include "experiments/lib/finetune_effects.h"
#include "model/training/finetune.h"
#include "model/training/trainer.h"
#include "model/base/util.h"

namespace ccc::experiments {

namespace fs = std::filesystem;
using model::Split;

namespace {

std::string fmt_duration(double s) {
  char buf[32];
  const int64_t t = static_cast<int64_t>(s);
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%lldh%02lldm", (long long)(t / 3600), (long long)(t % 3600 / 60));
  else std::snprintf(buf, sizeof buf, "%lldm%02llds", (long long)(t / 60), (long long)(t % 60));
  return buf;
}

// Renders the CSV log to PNG with gnuplot. Returns false if gnuplot fails.
bool plot_loss(const std::string& csv, const std::string& png) {
  return plot_png(png, "set datafile separator ','\nset key autotitle columnhead\n"
                       "set xlabel 'training tokens'\nset ylabel 'bits per byte'\nset grid\n"
                       "plot " + gp_quote(csv) + " using 2:3 with lines lw 1 title 'train (batch)', '' using 2:4 "
                       "with linespoints pt 7 lw 2 title 'validation'");
}

// Held-out bits per byte of each corpus; `progress` draws a line (held-out bytes done / total, per corpus)
// on a terminal.
nlohmann::json held_out_table(model::Transformer& m, const std::vector<model::Corpus>& corpora, bool progress = false) {
  std::unique_ptr<ProgressLine> line;  // with the total once known: rate and ETA
  const auto h = model::held_out_bits(m, corpora, 0, [&](int64_t done, int64_t total) {
    if (!line) line = std::make_unique<ProgressLine>("held-out bytes", total, progress, ProgressLine::Unit::kBytes);
    line->update(done);
  });
  nlohmann::json out = nlohmann::json::object();
  for (size_t i = 0; i < h.corpora.size(); ++i) out[h.corpora[i]] = h.bits_per_byte[i];
  return out;
}

nlohmann::json data_manifest(const std::vector<model::Corpus>& corpora) {
  nlohmann::json d = nlohmann::json::array();
  for (const auto& c : corpora) {
    auto [a, b] = c.range(Split::kTrain);
    d.push_back({{"name", c.name}, {"sha256", c.sha256}, {"bytes", c.bytes.size()}, {"train_bytes", b - a}});
  }
  return d;
}

}  // namespace

namespace {

// The output directory of a run: refused when it exists (unless --resume / --force), created otherwise.
void prepare_run_dir(const TrainCmdOptions& o, const fs::path& out, const fs::path& resume_dir) {
  std::error_code ec;
  CCC_CHECK(!o.resume || fs::exists(resume_dir / "state.json", ec), "--resume: ", resume_dir.string(),
            " holds no training state");
  CCC_CHECK(o.resume || o.force || !fs::exists(out, ec), o.out,
            " exists (use --resume to continue its run or --force to start over)");
  if (o.force && !o.resume && fs::exists(out, ec)) fs::remove_all(out);
  fs::create_directories(out, ec);
  CCC_CHECK(fs::is_directory(out, ec), "cannot create ", o.out);
}

// A new run that fails removes what it created, unless it has saved a training state to resume from (a
// long run that fails late keeps its last state: "continue with --resume"). A resumed run keeps everything.
class RunDirGuard {
 public:
  RunDirGuard(fs::path out, fs::path resume_dir, bool created) : out_(std::move(out)), resume_(std::move(resume_dir)), created_(created) {}
  ~RunDirGuard() {
    if (kept_ || !created_) return;
    std::error_code ec;
    if (fs::exists(resume_ / "state.json", ec)) {
      std::fprintf(stderr, "the run's last saved state is kept in %s; continue with --resume\n", resume_.c_str());
      return;
    }
    fs::remove_all(out_, ec);
  }
  void keep() { kept_ = true; }

 private:
  fs::path out_, resume_;
  bool created_, kept_ = false;
};

// --init: a staged recipe continues from an earlier run's weights (copied unless the run resumes, which has
// its own). Returns the start's fingerprint ("" without --init).
std::string init_from(const TrainCmdOptions& o, const model::TrainConfigFile& cfg, model::Transformer& m) {
  if (o.init.empty()) return "";
  auto init = model::load_model(o.init);
  // Without learned positions the weights do not depend on n_ctx: a stage may lengthen the context.
  auto same_shape = init.config;
  if (same_shape.pos != model::PosKind::kLearned) same_shape.n_ctx = cfg.model.n_ctx;
  CCC_CHECK(same_shape.to_json() == cfg.model.to_json(), "--init ", o.init, ": its model config differs from the one in ",
            o.config, " (a run continues only the same architecture; n_ctx may change when positions are not learned)");
  if (!o.resume) {
    torch::NoGradGuard no_grad;
    auto src = init.model->named_parameters();
    for (auto& p : m->named_parameters()) p.value().copy_(src[p.key()]);
  }
  return init.fingerprint;
}

// train_log.csv (appended to on --resume) and the progress lines on stderr; wall time survives resumes.
class TrainLog {
 public:
  TrainLog(const TrainCmdOptions& o, const model::TrainConfigFile& cfg, const fs::path& out, int64_t start_step,
           int64_t until)
      : cfg_(cfg), csv_((out / "train_log.csv").string()), wall_file_(out / "resume" / "wall.txt"),
        start_step_(start_step), until_(until) {
    std::error_code ec;
    const bool new_csv = !fs::exists(csv_, ec) || !o.resume;
    log_.open(csv_, new_csv ? std::ios::trunc : std::ios::app);
    CCC_CHECK(log_.good(), "cannot write ", csv_);
    if (new_csv) log_ << "step,tokens,train_bpb,val_bpb,lr,grad_norm,elapsed_s\n";
    if (o.resume && fs::exists(wall_file_, ec)) prior_wall_ = std::stod(read_file(wall_file_.string()));
  }
  double wall() const {
    return prior_wall_ + std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  }
  void save_wall() const { write_file_atomic(wall_file_.string(), std::to_string(wall())); }
  const std::string& csv() const { return csv_; }
  void event(const model::TrainEvent& ev) {
    char line[256], val_cell[32] = "";  // val_bpb is empty (missing) at steps without a validation pass
    if (ev.val_bpb >= 0) std::snprintf(val_cell, sizeof val_cell, "%.5f", ev.val_bpb);
    std::snprintf(line, sizeof line, "%lld,%lld,%.5f,%s,%.6g,%.4f,%.2f\n", (long long)ev.step, (long long)ev.tokens,
                  ev.train_bpb, val_cell, ev.lr, ev.grad_norm, wall());
    log_ << line << std::flush;
    CCC_CHECK(log_.good(), "error writing ", csv_, " (file system full or past its size limit?)");
    if (ev.step % std::max<int64_t>(1, cfg_.train.log_every) != 0 && ev.val_bpb < 0 && ev.step != until_) return;
    const double sec_per_step = ev.elapsed_s / static_cast<double>(std::max<int64_t>(1, ev.step - start_step_));
    char val[32] = "";
    if (ev.val_bpb >= 0) std::snprintf(val, sizeof val, "  val %.3f bpb", ev.val_bpb);
    std::fprintf(stderr, "step %6lld/%lld  train %.3f bpb%s  lr %.2e  %.0f tok/s  ETA %s\n", (long long)ev.step,
                 (long long)cfg_.train.steps, ev.train_bpb, val, ev.lr, ev.tokens_per_s,
                 fmt_duration(sec_per_step * static_cast<double>(until_ - ev.step)).c_str());
  }

 private:
  const model::TrainConfigFile& cfg_;
  std::string csv_;
  fs::path wall_file_;
  int64_t start_step_, until_;
  std::ofstream log_;
  double prior_wall_ = 0;
  std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
};

// The finished run: the model in its saved dtype, evaluated as users will load it, its card and loss plot.
nlohmann::json finish_run(const TrainCmdOptions& o, const model::TrainConfigFile& cfg, model::Trainer& trainer,
                          const std::vector<model::Corpus>& corpora, const TrainLog& log, const std::string& init_fp) {
  const fs::path out(o.out);
  const auto dtype = cfg.train.save_dtype == "f16" ? model::SaveDtype::kF16 : model::SaveDtype::kF32;
  model::save_model(o.out, cfg.model, trainer.model(), dtype);
  auto saved = model::load_model(o.out);
  std::fprintf(stderr, "evaluating held-out bits per byte...\n");
  auto held = held_out_table(saved.model, corpora);
  nlohmann::json card = {{"name", out.filename().string()},
                         {"fingerprint", saved.fingerprint},
                         {"n_params", cfg.model.n_params()},
                         {"config", cfg.model.to_json()},
                         {"train", cfg.train.to_json()},
                         {"data", data_manifest(corpora)},
                         {"split", "per corpus: train [0, 90%), validation [90%, 95%), held-out [95%, 100%) by bytes"},
                         {"tokens_seen", trainer.tokens_seen()},
                         {"steps", trainer.step()},
                         {"wall_time_s", log.wall()},
                         {"final_validation_bpb", trainer.validation_bpb()},
                         {"held_out_bpb", held},
                         {"command", o.command}};
  if (!init_fp.empty()) card["init_from"] = {{"model", o.init}, {"fingerprint", init_fp}};
  write_file_atomic((out / "model_card.json").string(), card.dump(2) + "\n");
  if (!plot_loss(log.csv(), (out / "loss.png").string())) std::fprintf(stderr, "warning: gnuplot failed; no loss.png\n");
  return held;
}

}  // namespace

void run_train(const TrainCmdOptions& o) {
  const auto cfg = model::TrainConfigFile::load(o.config);
  check_memory(model::training_memory_bytes(cfg.model, cfg.train), o.max_memory, "train " + o.config);
  const std::string dir = corpora_dir_or_default(o.corpora_dir);
  auto corpora = model::load_corpora(dir, cfg.train.corpora);
  const fs::path out(o.out);
  const fs::path resume_dir = out / "resume";
  model::Transformer m(cfg.model);
  m->init_weights(cfg.train.seed);
  const std::string init_fp = init_from(o, cfg, m);  // a bad --init fails before the run directory exists
  prepare_run_dir(o, out, resume_dir);
  RunDirGuard guard(out, resume_dir, !o.resume);
  model::Trainer trainer(m, cfg.train, corpora);
  if (o.resume) {
    trainer.load_state(resume_dir.string());
    std::fprintf(stderr, "resumed %s at step %lld\n", o.out.c_str(), (long long)trainer.step());
  }
  const int64_t until = o.max_steps > 0 ? std::min(o.max_steps, cfg.train.steps) : cfg.train.steps;
  std::fprintf(stderr, "training %s: %.2fM params, %lld steps x %lld tokens, corpora %s, estimated peak memory %.0f MiB\n",
               o.out.c_str(), cfg.model.n_params() / 1e6, (long long)cfg.train.steps,
               (long long)(cfg.train.batch_size * cfg.train.seq_len * cfg.train.grad_accum), dir.c_str(),
               static_cast<double>(model::training_memory_bytes(cfg.model, cfg.train)) / (1 << 20));
  TrainLog log(o, cfg, out, trainer.step(), until);
  trainer.run(until, [&](const model::TrainEvent& ev) {
    log.event(ev);
    if (ev.val_bpb >= 0) {
      trainer.save_state(resume_dir.string());
      log.save_wall();
    }
    if (cfg.train.checkpoint_every > 0 && ev.step % cfg.train.checkpoint_every == 0)
      model::save_model((out / "checkpoints" / ("step-" + std::to_string(ev.step))).string(), cfg.model, trainer.model(),
                        model::SaveDtype::kF16);
  });
  trainer.save_state(resume_dir.string());
  log.save_wall();
  if (trainer.step() < cfg.train.steps) {
    guard.keep();
    std::fprintf(stderr, "stopped at step %lld of %lld; continue with --resume\n", (long long)trainer.step(),
                 (long long)cfg.train.steps);
    return;
  }
  const auto held = finish_run(o, cfg, trainer, corpora, log, init_fp);
  guard.keep();
  std::error_code ec;
  fs::remove_all(resume_dir, ec);
  std::printf("wrote %s (%.2fM params, %lld tokens, %s)\n", o.out.c_str(), cfg.model.n_params() / 1e6,
              (long long)trainer.tokens_seen(), fmt_duration(log.wall()).c_str());
  for (auto it = held.begin(); it != held.end(); ++it)
    std::printf("  held-out %-16s %.4f bits/byte\n", it.key().c_str(), it.value().get<double>());
}

namespace {

// The trade-off table and the validation curve on standard output; a warning when the target got worse.
nlohmann::json print_tradeoff(const FinetuneCmdOptions& o, const model::FinetuneResult& r, size_t tensors, int64_t steps) {
  std::printf("\nfine-tune trade-off: %s on %s, params '%s' (%zu tensors), %lld steps, lr %g; held-out bits per byte "
              "on the first %lld bytes of each held-out split\n\n",
              o.model.c_str(), o.corpus.c_str(), o.params.c_str(), tensors, (long long)steps, o.lr,
              (long long)o.eval_bytes);
  std::printf("| corpus | role | bytes | bpb before | bpb after | delta_bits_per_byte |\n|---|---|---:|---|---|---|\n");
  nlohmann::json rows = nlohmann::json::array();
  for (size_t i = 0; i < r.before.corpora.size(); ++i) {
    const auto& name = r.before.corpora[i];
    const double b = r.before.bits_per_byte[i], a = r.after.bits_per_byte[i];
    const char* role = i == 0 ? "target" : "reference";
    std::printf("| %s | %s | %lld | %.4f | %.4f | %+.4f |\n", name.c_str(), role, (long long)r.before.bytes[i], b, a, a - b);
    rows.push_back({{"corpus", name}, {"role", role}, {"bpb_before", b}, {"bpb_after", a}, {"delta_bits_per_byte", a - b},
                    {"held_out_bytes", r.before.bytes[i]}});
  }
  std::printf("\ntarget validation bits per byte during training:");
  for (const auto& [step, bpb] : r.curve) std::printf("  step %lld %.4f", (long long)step, bpb);
  std::printf("\n");
  if (r.target_delta() >= 0)
    std::fprintf(stderr,
                 "warning: the target's held-out bits per byte did not improve (%+.4f); try a lower --lr (now %g) or "
                 "more --steps\n",
                 r.target_delta(), o.lr);
  return rows;
}

}  // namespace

void run_finetune(const FinetuneCmdOptions& o) {
  auto base = model::load_model(o.model);
  CCC_CHECK(base.tokenizer->kind() == "byte", o.model, ": finetune trains ccc byte-level models");
  const std::string dir = corpora_dir_or_default(o.corpora_dir);
  std::vector<std::string> refs = o.references;
  if (refs.empty()) refs = model::present_corpora(dir);
  if (std::find(refs.begin(), refs.end(), o.corpus) == refs.end()) refs.insert(refs.begin(), o.corpus);
  auto corpora = model::load_corpora(dir, refs);
  std::error_code ec;
  CCC_CHECK(o.force || !fs::exists(o.out, ec), o.out, " exists (use --force to replace it)");
  CCC_CHECK(fs::weakly_canonical(o.out, ec) != fs::weakly_canonical(o.model, ec), "finetune: --out must differ from --model");

  model::FinetuneOptions f;
  auto& t = f.train;
  t.batch_size = o.batch_size;
  t.seq_len = o.seq_len > 0 ? o.seq_len : base.config.n_ctx;
  t.steps = o.steps;
  t.warmup_steps = std::min<int64_t>(o.steps, std::max<int64_t>(1, o.steps / 10));
  t.lr = o.lr;
  t.min_lr = o.lr / 10;
  t.seed = o.seed;
  t.save_dtype = "f32";  // the trade-off is measured on the trained weights; f32 saves them bit-exactly
  f.eval_bytes = o.eval_bytes;
  f.curve_points = o.curve_points;
  const auto trainable = model::select_parameters(base.model, o.params);
  {
    int64_t n_trainable = 0;
    for (const auto& item : base.model->named_parameters())
      if (std::find(trainable.begin(), trainable.end(), item.key()) != trainable.end()) n_trainable += item.value().numel();
    check_memory(model::training_memory_bytes(base.config, t, n_trainable), o.max_memory, "finetune " + o.model);
  }
  std::unique_ptr<ProgressLine> line;
  model::FinetuneCallbacks cb;
  cb.on_eval = [&](const std::string& phase, int64_t done, int64_t total) {
    if (!line) line = std::make_unique<ProgressLine>("held-out bytes " + phase, total, !o.quiet, ProgressLine::Unit::kBytes);
    line->update(done);
    if (done == total) line.reset();
  };
  cb.on_step = [&](const model::TrainEvent& ev) {
    if (o.quiet) return;
    if (ev.val_bpb >= 0)
      std::fprintf(stderr, "finetune step %lld/%lld  train %.3f bpb  validation %.4f bpb  %.0f tok/s\n",
                   (long long)ev.step, (long long)t.steps, ev.train_bpb, ev.val_bpb, ev.tokens_per_s);
  };
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path out(o.out);
  OutputDir out_dir(o.out, o.force);  // the model, its card, checkpoints and tables appear together or not at all
  if (o.save_every > 0)
    cb.on_step = [&, log = cb.on_step](const model::TrainEvent& ev) {
      if (log) log(ev);
      if (ev.step % o.save_every == 0)
        model::save_model((fs::path(out_dir.temp_dir()) / "checkpoints" / ("step-" + std::to_string(ev.step))).string(), base.config,
                          base.model, model::SaveDtype::kF32);
    };
  // the per-circuit table: each corpus's held-out head (at most 4096 bytes), scored before training
  std::vector<std::pair<std::string, std::string>> domains;
  std::vector<circuits::Component> comps;
  CircuitTable before;
  if (o.circuits) {
    for (const auto& c : corpora) {
      std::string held = c.split(Split::kHeldOut);
      const size_t cap = o.eval_bytes > 0 ? std::min<size_t>(4096, static_cast<size_t>(o.eval_bytes)) : 4096;
      if (held.size() > cap) held.resize(cap);
      domains.emplace_back(c.name, held);
    }
    comps = circuits::discovery_components(base.config);  // every head, then every MLP
    if (!o.quiet) std::fprintf(stderr, "finetune: circuit table before (%zu components x %zu corpora)\n", comps.size(), domains.size());
    before = circuit_table(base, domains, comps, circuits::Mode::kMean, 0, o.seed);
  }
  const auto r = model::finetune(base.model, corpora, o.corpus, trainable, f, cb);
  const double wall = seconds_since(t0);
  model::save_model(out_dir.temp_dir(), base.config, base.model, model::SaveDtype::kF32);
  auto after_model = model::load_model(out_dir.temp_dir());
  const auto fingerprint = after_model.fingerprint;
  const auto rows = print_tradeoff(o, r, trainable.size(), t.steps);
  if (o.circuits) {
    if (!o.quiet) std::fprintf(stderr, "finetune: circuit table after\n");
    const auto after = circuit_table(after_model, domains, comps, circuits::Mode::kMean, 0, o.seed);
    const auto sh = circuit_shift(before, after, 1000, o.seed);
    std::ostringstream csv;
    csv << "component,corpus,delta_bits_before,delta_bits_after,shift,ci_low,ci_high\n";
    struct Top {
      double shift;
      size_t c, k;
    };
    std::vector<Top> top;
    for (size_t c = 0; c < comps.size(); ++c)
      for (size_t k = 0; k < domains.size(); ++k) {
        char line[256];
        std::snprintf(line, sizeof line, "%s,%s,%.6f,%.6f,%.6f,%.6f,%.6f\n", before.components[c].c_str(), domains[k].first.c_str(),
                      before.delta_bits_per_byte[c][k], after.delta_bits_per_byte[c][k], sh.shift[c][k], sh.ci_low[c][k], sh.ci_high[c][k]);
        csv << line;
        top.push_back({sh.shift[c][k], c, k});
      }
    write_file_atomic(out_dir.file("circuits.csv"), csv.str());
    std::sort(top.begin(), top.end(), [](const Top& a, const Top& b) { return std::fabs(a.shift) > std::fabs(b.shift); });
    std::printf("\nper-circuit shift: delta bits per byte of mean-ablating each component, after - before (95%% block-bootstrap CI); "
                "the 10 largest of %zu (all in circuits.csv)\n\n| component | corpus | before | after | shift [95%% CI] |\n|---|---|---:|---:|---:|\n",
                top.size());
    for (size_t i = 0; i < std::min<size_t>(10, top.size()); ++i) {
      const auto& w = top[i];
      std::printf("| %s | %s | %.4f | %.4f | %+.4f [%+.4f, %+.4f] |\n", before.components[w.c].c_str(), domains[w.k].first.c_str(),
                  before.delta_bits_per_byte[w.c][w.k], after.delta_bits_per_byte[w.c][w.k], w.shift, sh.ci_low[w.c][w.k], sh.ci_high[w.c][w.k]);
    }
  }
  nlohmann::json curve = nlohmann::json::array(), held_after = nlohmann::json::object();
  for (const auto& [step, bpb] : r.curve) curve.push_back({{"step", step}, {"validation_bpb", bpb}});
  for (size_t i = 0; i < r.after.corpora.size(); ++i) held_after[r.after.corpora[i]] = r.after.bits_per_byte[i];
  nlohmann::json report = {{"base_model", o.model},       {"base_fingerprint", base.fingerprint},
                           {"fingerprint", fingerprint},   {"target", o.corpus},
                           {"params", o.params},           {"trainable_tensors", trainable},
                           {"train", t.to_json()},         {"eval_bytes", o.eval_bytes},
                           {"data", data_manifest(corpora)}, {"wall_time_s", wall},
                           {"tradeoff", rows},             {"target_validation_curve", curve},
                           {"target_improved", r.target_delta() < 0}, {"command", o.command}};
  write_file_atomic(out_dir.file("tradeoff.json"), report.dump(2) + "\n");
  nlohmann::json card = {{"name", out.filename().string()},
                         {"fingerprint", fingerprint},
                         {"n_params", base.config.n_params()},
                         {"config", base.config.to_json()},
                         {"dtype", t.save_dtype},
                         {"finetuned_from", {{"model", o.model}, {"fingerprint", base.fingerprint}}},
                         {"finetune", {{"target", o.corpus}, {"params", o.params}, {"trainable_tensors", trainable.size()},
                                       {"train", t.to_json()}, {"tokens_seen", r.tokens_seen}}},
                         {"data", data_manifest(corpora)},
                         {"split", "per corpus: train [0, 90%), validation [90%, 95%), held-out [95%, 100%) by bytes"},
                         {"held_out_bpb", held_after},
                         {"held_out_bytes", o.eval_bytes},
                         {"tradeoff", "tradeoff.json"},
                         {"wall_time_s", wall},
                         {"command", o.command}};
  write_file_atomic(out_dir.file("model_card.json"), card.dump(2) + "\n");
  out_dir.commit();
  std::printf("\nwrote %s (tradeoff.json), %.1f s\n", o.out.c_str(), wall);
}

void run_eval(const std::string& model_path, const std::string& corpora_dir, std::vector<std::string> names, bool json,
              const std::string& tokenizer, bool quiet) {
  auto m = model::load_model(model_path, tokenizer);
  CCC_CHECK(m.tokenizer->kind() == "byte", model_path, ": eval scores byte-level models on the corpus splits; for a ",
            m.tokenizer->kind(), " model score a file with ccc bits -m ", model_path, " FILE");
  const std::string dir = corpora_dir_or_default(corpora_dir);
  std::error_code ec;
  CCC_CHECK(std::filesystem::is_directory(dir, ec), "--corpora ", dir,
            ": not a directory (--corpora names the directory of <name>.txt corpora; corpus names are positional, "
            "e.g. ccc eval sotu-all)");
  if (names.empty()) names = model::present_corpora(dir);
  CCC_CHECK(!names.empty(), dir, ": no corpora there (<name>.txt files; ./data/fetch_corpora.sh DIR makes them)");
  auto corpora = model::load_corpora(dir, names);
  auto held = held_out_table(m.model, corpora, !quiet);
  if (json) {
    nlohmann::json j{{"model", model_path}, {"fingerprint", m.fingerprint}, {"held_out_bpb", held}};
    stamp(j, "eval");
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::printf("| corpus | held-out bytes | bits_per_byte |\n|---|---|---|\n");
  for (const auto& c : corpora) {
    auto [a, b] = c.range(Split::kHeldOut);
    std::printf("| %s | %zu | %.4f |\n", c.name.c_str(), b - a, held[c.name].get<double>());
  }
}

}  // namespace ccc::experiments
