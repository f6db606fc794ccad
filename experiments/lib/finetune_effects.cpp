#include "experiments/lib/finetune_effects.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <map>
#include <random>
#include <unistd.h>

#include "analysis/activation_store.h"
#include "analysis/capture.h"
#include "analysis/units.h"
#include "circuits/discovery.h"
#include "circuits/sweep.h"
#include "compress/lm_codec.h"
#include "experiments/lib/competition.h"
#include "experiments/lib/copy_recall.h"
#include "model/base/dist.h"
#include "model/base/error.h"
#include "model/formats/loader.h"
#include "model/training/trainer.h"

namespace fs = std::filesystem;

namespace ccc::experiments {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

double pearson(const std::vector<double>& x, const std::vector<double>& y) {
  CCC_CHECK(x.size() == y.size() && !x.empty(), "pearson: samples of ", x.size(), " and ", y.size(), " values");
  const double n = static_cast<double>(x.size());
  double mx = 0, my = 0;
  for (size_t i = 0; i < x.size(); ++i) mx += x[i] / n, my += y[i] / n;
  double sxx = 0, syy = 0, sxy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxx += (x[i] - mx) * (x[i] - mx), syy += (y[i] - my) * (y[i] - my), sxy += (x[i] - mx) * (y[i] - my);
  }
  if (!(sxx > 0) || !(syy > 0)) return std::nan("");
  return sxy / std::sqrt(sxx * syy);
}

std::map<std::string, int64_t> unit_classes(model::LoadedModel& m, const std::string& text, const std::string& h5,
                                            std::map<std::string, int64_t>* null, int64_t* rows) {
  if (m.config.attn_only) return {};
  {
    compress::CodecOptions codec;
    analysis::CaptureOptions c;
    c.out = h5;
    c.hooks = {"blocks.*.mlp.hook_post"};
    c.force = true;
    analysis::ActivationCapture cap(m, text, codec, c);
    cap.attach(codec, codec);
    compress::lm_compress(m, text, codec);
    cap.finish();
  }
  analysis::ActivationStore store(h5);
  analysis::UnitOptions uo;
  uo.hooks = {"blocks.*.mlp.hook_post"};
  const auto rep = analysis::analyze_units(store, analysis::dump_auto_features(store, text), uo);
  if (null != nullptr) *null = analysis::class_totals(rep, true);
  if (rows != nullptr) *rows = rep.rows;
  return analysis::class_totals(rep);
}

CircuitTable circuit_table(model::LoadedModel& m, const std::vector<std::pair<std::string, std::string>>& domains,
                           const std::vector<circuits::Component>& components, circuits::Mode mode, int64_t streams,
                           uint64_t seed, int64_t block) {
  CCC_CHECK(m.config.d_vocab_out == 256, "circuit table: ", m.source, " is not a byte-level model (per-byte figures need one token per byte)");
  CCC_CHECK(block >= 1, "circuit table: block must be >= 1");
  CircuitTable t;
  for (const auto& c : components) t.components.push_back(c.name());
  t.delta_bits_per_byte.assign(components.size(), std::vector<double>(domains.size(), 0.0));
  t.block_delta.assign(components.size(), std::vector<std::vector<double>>(domains.size()));
  circuits::ScoringRun run;
  run.mode = mode;
  run.streams = streams;
  run.seed = seed;
  for (size_t d = 0; d < domains.size(); ++d) {
    const auto& [name, text] = domains[d];
    CCC_CHECK(!text.empty(), "circuit table: domain ", name, " has no text");
    t.domains.push_back(name);
    const auto clean = circuits::ablated_bits(m, text, run, {}, nullptr);
    circuits::Reference ref;
    if (mode != circuits::Mode::kZero) ref = circuits::collect_reference(m, text, components, mode, streams, 0, seed);
    const auto abl = circuits::sweep_bits(m, text, run, components, mode == circuits::Mode::kZero ? nullptr : &ref);
    const size_t T = clean.size(), nb = (T + static_cast<size_t>(block) - 1) / static_cast<size_t>(block);
    double clean_sum = 0;
    for (double b : clean) clean_sum += b;
    t.clean_bits_per_byte.push_back(clean_sum / static_cast<double>(T));
    std::vector<double> bytes(nb, 0.0);
    for (size_t i = 0; i < T; ++i) bytes[i / static_cast<size_t>(block)] += 1;
    t.block_bytes.push_back(bytes);
    for (size_t c = 0; c < components.size(); ++c) {
      CCC_CHECK(abl[c].size() == T, "circuit table: ", t.components[c], " scored ", abl[c].size(), " tokens of ", name, ", clean ", T);
      std::vector<double> blocks(nb, 0.0);
      double sum = 0;
      for (size_t i = 0; i < T; ++i) {
        const double dlt = abl[c][i] - clean[i];
        blocks[i / static_cast<size_t>(block)] += dlt;
        sum += dlt;
      }
      t.delta_bits_per_byte[c][d] = sum / static_cast<double>(T);
      t.block_delta[c][d] = std::move(blocks);
    }
  }
  return t;
}

CircuitShift circuit_shift(const CircuitTable& before, const CircuitTable& after, int64_t resamples, uint64_t seed) {
  CCC_CHECK(before.components == after.components && before.domains == after.domains && before.block_bytes == after.block_bytes,
            "circuit shift: the two tables cover different components, domains or texts");
  const size_t C = before.components.size(), D = before.domains.size();
  CircuitShift s;
  s.shift.assign(C, std::vector<double>(D, 0.0));
  s.ci_low = s.ci_high = s.shift;
  for (size_t d = 0; d < D; ++d) {
    const auto& bytes = before.block_bytes[d];
    const size_t nb = bytes.size();
    std::mt19937_64 rng(seed ^ (0x5A1F7ULL + d));
    std::vector<std::vector<size_t>> draws(static_cast<size_t>(resamples), std::vector<size_t>(nb));
    for (auto& dr : draws)
      for (auto& k : dr) k = static_cast<size_t>(rng() % nb);
    for (size_t c = 0; c < C; ++c) {
      s.shift[c][d] = after.delta_bits_per_byte[c][d] - before.delta_bits_per_byte[c][d];
      std::vector<double> stat;
      for (const auto& dr : draws) {
        double num = 0, den = 0;
        for (size_t k : dr) num += after.block_delta[c][d][k] - before.block_delta[c][d][k], den += bytes[k];
        stat.push_back(num / den);
      }
      std::sort(stat.begin(), stat.end());
      s.ci_low[c][d] = stat.empty() ? s.shift[c][d] : quantile_sorted(stat, 0.025);
      s.ci_high[c][d] = stat.empty() ? s.shift[c][d] : quantile_sorted(stat, 0.975);
    }
  }
  return s;
}

Result run_finetune_effects(const std::string& base_dir, const std::vector<model::Corpus>& corpora, const FinetuneEffectsOptions& o,
                            FinetuneEffectsDetail* detail) {
  // its snapshots are trained in this process; a sharded table over ranks that trained their own copies
  // would rest on every rank's training being bit-identical, which nothing checks: one process only
  CCC_CHECK(dist::size() == 1, "finetune experiment: it trains its snapshots, which is not split across MPI ranks; "
            "run it as one process (without mpirun)");
  const auto tgt = std::find_if(corpora.begin(), corpora.end(), [&](const model::Corpus& c) { return c.name == o.target; });
  CCC_CHECK(tgt != corpora.end(), "finetune experiment: the target corpus ", o.target, " is not among the corpora loaded");
  CCC_CHECK(corpora.size() >= 2, "finetune experiment: needs the target and at least one other corpus");
  CCC_CHECK(!o.steps.empty() && !o.subsets.empty(), "finetune experiment: needs step counts and parameter subsets");
  for (size_t i = 0; i < o.steps.size(); ++i)
    CCC_CHECK(o.steps[i] >= 1 && (i == 0 || o.steps[i] > o.steps[i - 1]), "finetune experiment: step counts must increase (",
              o.steps[i], ")");
  CCC_CHECK(o.eval_bytes >= 64, "finetune experiment: --eval-bytes must be at least 64");
  auto base = model::load_model(base_dir);
  CCC_CHECK(base.tokenizer->kind() == "byte", base_dir, ": the finetune experiment trains ccc byte-level models");
  // the domains: the head of every held-out split, the target first
  std::vector<std::pair<std::string, std::string>> domains;
  std::vector<const model::Corpus*> order = {&*tgt};
  for (const auto& c : corpora)
    if (c.name != o.target) order.push_back(&c);
  for (const auto* c : order) {
    std::string held = c->split(model::Split::kHeldOut);
    if (static_cast<int64_t>(held.size()) > o.eval_bytes) held.resize(static_cast<size_t>(o.eval_bytes));
    CCC_CHECK(!held.empty(), "finetune experiment: ", c->name, " has an empty held-out split");
    domains.emplace_back(c->name, std::move(held));
  }
  const auto comps = circuits::discovery_components(base.config);  // every head, then every MLP
  const int64_t total = 1 + static_cast<int64_t>(o.subsets.size() * o.steps.size());
  int64_t done = 0;
  FinetuneEffectsDetail d;
  for (const auto& [n, t] : domains) d.domains.push_back(n);
  for (const auto& c : comps) d.components.push_back(c.name());
  auto t0 = std::chrono::steady_clock::now();
  d.base = circuit_table(base, domains, comps, o.mode, o.streams, o.seed);
  d.base_eval_seconds = seconds_since(t0);
  if (o.progress) o.progress("models scored", ++done, total);
  const fs::path keep = o.snapshot_dir.empty() ? fs::temp_directory_path() / ("ccc_finetune_" + std::to_string(::getpid()))
                                               : fs::path(o.snapshot_dir);
  std::error_code ec;
  fs::create_directories(keep, ec);
  CCC_CHECK(!ec, keep.string(), ": cannot create the snapshot directory (", ec.message(), ")");
  std::map<std::string, torch::Tensor> base_params;
  for (const auto& item : base.model->named_parameters()) base_params[item.key()] = item.value().detach().clone();
  for (const auto& spec : o.subsets) {
    auto m = model::load_model(base_dir);
    const auto trainable = model::select_parameters(m.model, spec);
    model::TrainOptions t;
    t.batch_size = o.batch_size;
    t.seq_len = std::min(o.seq_len, m.config.n_ctx);
    t.steps = o.steps.back();
    t.warmup_steps = std::min<int64_t>(t.steps, std::max<int64_t>(1, t.steps / 10));
    t.lr = o.lr;
    t.min_lr = o.lr / 10;
    t.seed = o.seed;
    t.eval_every = 0;
    t.save_dtype = "f32";
    t.corpora = {o.target};
    model::Trainer trainer(m.model, t, {*tgt}, trainable);
    double train_s = 0;
    for (int64_t steps : o.steps) {
      t0 = std::chrono::steady_clock::now();
      trainer.run(steps);
      train_s += seconds_since(t0);
      FinetuneRun r;
      r.params = spec;
      r.steps = steps;
      r.train_seconds = train_s;
      r.trainable_tensors = static_cast<int64_t>(trainable.size());
      for (const auto& item : m.model->named_parameters()) {
        const bool trained = std::find(trainable.begin(), trainable.end(), item.key()) != trainable.end();
        if (trained) {
          r.trainable_params += item.value().numel();
        } else {
          const double diff = (item.value().detach() - base_params.at(item.key())).abs().max().item<double>();
          r.frozen_max_abs_diff = std::max(r.frozen_max_abs_diff, diff);
        }
      }
      std::string name = spec;
      std::replace(name.begin(), name.end(), ':', '-');
      std::replace(name.begin(), name.end(), ',', '_');
      const fs::path dir = keep / (name + "-" + std::to_string(steps));
      model::save_model(dir.string(), m.config, m.model, model::SaveDtype::kF32);
      auto snap = model::load_model(dir.string());
      r.fingerprint = snap.fingerprint;
      r.model_dir = o.snapshot_dir.empty() ? std::string() : dir.string();
      t0 = std::chrono::steady_clock::now();
      r.table = circuit_table(snap, domains, comps, o.mode, o.streams, o.seed);
      r.eval_seconds = seconds_since(t0);
      r.shift = circuit_shift(d.base, r.table, o.resamples, o.seed);
      for (size_t k = 0; k < domains.size(); ++k) r.delta_bits_per_byte.push_back(r.table.clean_bits_per_byte[k] - d.base.clean_bits_per_byte[k]);
      for (size_t k = 1; k < domains.size(); ++k) r.other_delta_mean += r.delta_bits_per_byte[k] / static_cast<double>(domains.size() - 1);
      r.exchange_rate = r.delta_bits_per_byte[0] < 0 ? r.other_delta_mean / -r.delta_bits_per_byte[0] : std::nan("");
      d.runs.push_back(std::move(r));
      if (o.progress) o.progress("models scored", ++done, total);
    }
  }
  // base vs the longest snapshot of the first subset: unit classes and the crosscoder
  const auto& cmp = d.runs[o.steps.size() - 1];
  d.compared = cmp.params + "/" + std::to_string(cmp.steps);
  {
    std::string name = cmp.params;
    std::replace(name.begin(), name.end(), ':', '-');
    std::replace(name.begin(), name.end(), ',', '_');
    auto tuned = model::load_model((keep / (name + "-" + std::to_string(cmp.steps))).string());
    std::string held, train;
    for (const auto* c : order) {
      if (o.units_bytes > 0) held += c->split(model::Split::kHeldOut).substr(0, static_cast<size_t>(o.units_bytes));
      if (o.crosscoder_train_bytes > 0) train += c->split(model::Split::kTrain).substr(0, static_cast<size_t>(o.crosscoder_train_bytes));
    }
    if (o.units_bytes > 0 && !base.config.attn_only) {
      t0 = std::chrono::steady_clock::now();
      const std::string h5 = (keep / "units.h5").string();
      d.units_before = unit_classes(base, held, h5, &d.units_null_before, &d.units_rows);
      d.units_after = unit_classes(tuned, held, h5, &d.units_null_after);
      fs::remove(h5, ec);
      d.units_seconds = seconds_since(t0);
      if (o.progress) o.progress("unit classes", 1, 1);
    }
    if (o.mechanism_bytes > 0 || o.copy_recall_positions > 0) {
      t0 = std::chrono::steady_clock::now();
      for (auto* mm : {&base, &tuned}) {
        if (o.mechanism_bytes > 0) {
          CompetitionOptions co;
          co.mode = o.mode;
          co.streams = o.streams;
          co.seed = o.seed;
          co.null_draws = 5;
          co.pair_top = 2;
          co.resamples = 200;
          co.naive_sample = 0;
          CompetitionDetail cd;
          try {
            run_competition(*mm, std::string_view(domains[0].second).substr(0, static_cast<size_t>(o.mechanism_bytes)), co, &cd);
            auto& w = mm == &base ? d.winners_before : d.winners_after;
            for (const auto& x : cd.winners) w.emplace_back(x.component, x.share_of_tokens);
          } catch (const Error& e) {  // a secondary measure: said in the result, not fatal
            d.mechanism_notes.push_back(std::string("competition not measured: ") + e.what());
          }
        }
        if (o.copy_recall_positions > 0) {
          CopyRecallOptions cr;
          cr.positions = o.copy_recall_positions;
          cr.repeats = {0, 1, 2, 4};
          cr.null_draws = 5;
          cr.resamples = 500;
          cr.seed = o.seed;
          std::string mix;
          for (const auto& [n, text] : domains) mix += text;
          try {
            const Result rr = run_copy_vs_recall(*mm, mix, cr);
            for (const auto& m : rr.measurements)
              if (m.name == "switch_point") d.switch_point.push_back(m);
          } catch (const Error& e) {
            d.mechanism_notes.push_back(std::string("copy-vs-recall not measured: ") + e.what());
          }
        }
      }
      d.mechanism_seconds = seconds_since(t0);
      if (o.progress) o.progress("competition and copy-vs-recall", 1, 1);
    }
    if (o.crosscoder_train_bytes > 0) {
      t0 = std::chrono::steady_clock::now();
      std::string eval;
      for (const auto& [n, text] : domains) eval += text;
      auto cc = o.crosscoder;
      cc.seed = o.seed;
      cc.window = std::min(cc.window, base.config.n_ctx - 1);
      d.crosscoder = analysis::diff_models(base, tuned, train, eval, cc);
      d.has_crosscoder = true;
      d.crosscoder_seconds = seconds_since(t0);
      if (o.progress) o.progress("crosscoder", 1, 1);
    }
  }
  if (o.snapshot_dir.empty()) fs::remove_all(keep, ec);
  // does circuit shift explain the trade-off? points (run, component, domain): x = shift, y = the domain's change
  const size_t R = d.runs.size(), C = comps.size(), D = domains.size();
  auto correlation = [&](const std::vector<size_t>& cs, const std::vector<std::vector<size_t>>* perm) {
    std::vector<double> x, y;
    for (size_t r = 0; r < R; ++r)
      for (size_t c : cs)
        for (size_t k = 0; k < D; ++k) {
          x.push_back(d.runs[r].shift.shift[c][k]);
          y.push_back(d.runs[r].delta_bits_per_byte[perm ? (*perm)[r][k] : k]);
        }
    return pearson(x, y);
  };
  std::vector<size_t> all_c(C);
  std::iota(all_c.begin(), all_c.end(), 0);
  const double rho = correlation(all_c, nullptr);
  std::mt19937_64 rng(o.seed ^ 0xF17E7ULL);
  std::vector<double> boot;
  std::vector<size_t> cs(C);
  for (int64_t b = 0; b < o.resamples; ++b) {
    for (auto& c : cs) c = static_cast<size_t>(rng() % C);
    const double v = correlation(cs, nullptr);
    if (std::isfinite(v)) boot.push_back(v);
  }
  std::vector<std::vector<size_t>> perm(R, std::vector<size_t>(D));
  for (int64_t k = 0; k < o.null_draws; ++k) {
    for (auto& p : perm) {
      std::iota(p.begin(), p.end(), 0);
      std::shuffle(p.begin(), p.end(), rng);
    }
    const double v = correlation(all_c, &perm);
    if (std::isfinite(v)) d.null_correlations.push_back(v);
  }
  Result res;
  res.experiment = "finetune";
  res.hypothesis = "Fine-tuning trades bits through circuits: across components and domains, a component's change in Δbits "
                   "(after − before) is negatively correlated with the domain's change in bits per byte — the target, which "
                   "gains bits, relies more on its components; the domains that lose bits lost theirs — beyond a null with the "
                   "domains' changes permuted.";
  res.claim = "Fine-tuning's trade-offs are circuits re-weighted: the target's circuits win more, the other domains' lose.";
  res.headline = "circuit_shift_correlation";
  res.seed = o.seed;
  Measurement m;
  m.name = "circuit_shift_correlation";
  m.value = rho;
  m.unit = "pearson r";
  CCC_CHECK(!boot.empty() && !d.null_correlations.empty(), "finetune experiment: no circuit shift varies (every correlation undefined)");
  set_percentile_ci(m, boot);
  m.ci_method = "percentile bootstrap over the " + std::to_string(C) + " components (all runs and domains kept), " +
                std::to_string(boot.size()) + " resamples";
  res.measurements.push_back(m);
  res.null.push_back(over_draws("circuit_shift_correlation", d.null_correlations, "pearson r",
                                "draws with each run's domain changes permuted across domains"));
  // the trade-off of the longest schedule of each subset, and its exchange rate (bits lost elsewhere per bit gained)
  for (const auto& r : d.runs) {
    if (r.steps != o.steps.back()) continue;
    const double other = r.other_delta_mean;
    Measurement g{"target_delta_bits_per_byte_" + r.params, r.delta_bits_per_byte[0], r.delta_bits_per_byte[0], r.delta_bits_per_byte[0],
                  "bits_per_byte", "the held-out head of the target (" + std::to_string(o.eval_bytes) + " bytes); no CI"};
    Measurement l{"other_delta_bits_per_byte_" + r.params, other, other, other, "bits_per_byte", "mean over the other domains; no CI"};
    res.measurements.push_back(g);
    res.measurements.push_back(l);
  }
  const double gap = 0.1;
  res.verdict = decide(res.measurements[0], res.null[0], -1, gap);
  res.verdict_rule = rule_text(-1, gap, "circuit_shift_correlation", "its permuted-domains null");
  if (detail != nullptr) *detail = std::move(d);
  return res;
}

}  // namespace ccc::experiments
