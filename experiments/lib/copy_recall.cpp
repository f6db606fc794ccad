#include "experiments/lib/copy_recall.h"

#include <algorithm>
#include <cstring>
#include <cmath>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <set>

#include <torch/torch.h>

#include "circuits/discovery.h"
#include "experiments/lib/batched.h"
#include "model/base/error.h"
#include "model/core/hooks.h"

namespace ccc::experiments {

namespace {

using circuits::Component;

const char* const kNullWhat = "random component sets of the same size";

// Bits of the fact and the counterfactual at the query, one entry per prompt.
struct Scores {
  std::vector<double> fact, cf;
  double win_rate() const {
    double w = 0;
    for (size_t i = 0; i < fact.size(); ++i) w += cf[i] < fact[i];
    return fact.empty() ? 0 : w / static_cast<double>(fact.size());
  }
  std::vector<double> wins() const {
    std::vector<double> w(fact.size());
    for (size_t i = 0; i < fact.size(); ++i) w[i] = cf[i] < fact[i] ? 1.0 : 0.0;
    return w;
  }
};

// The prompts of one k as a [N, T] tensor; fact / cf byte ids per prompt.
struct Batch {
  torch::Tensor tokens;
  std::vector<int64_t> fact, cf;
};

// Bits of the fact and the counterfactual at the last position of `blocks` copies of the batch, each with
// its own edits.
std::vector<Scores> score_blocks(model::LoadedModel& m, const Batch& b, int64_t blocks, const BlockEdits& install,
                                 int64_t max_rows, const std::function<void(int64_t)>& done) {
  const int64_t N = b.tokens.size(0), T = b.tokens.size(1);
  std::vector<Scores> out(static_cast<size_t>(blocks));
  auto fact = torch::tensor(b.fact, torch::kInt64), cf = torch::tensor(b.cf, torch::kInt64);
  // sharded across MPI ranks: each forward's fact and counterfactual bits travel, [count][2][N] doubles
  run_blocks_sharded(m, b.tokens, blocks, install, max_rows, [&](int64_t, int64_t count, const torch::Tensor& log2p) {
    std::string bytes;
    for (int64_t j = 0; j < count; ++j) {
      auto rows = -log2p[j].select(1, T - 1).to(torch::kFloat64);  // [N, V]
      auto f = rows.gather(1, fact.unsqueeze(1)).squeeze(1).contiguous(), c = rows.gather(1, cf.unsqueeze(1)).squeeze(1).contiguous();
      bytes.append(static_cast<const char*>(f.data_ptr()), static_cast<size_t>(N) * sizeof(double));
      bytes.append(static_cast<const char*>(c.data_ptr()), static_cast<size_t>(N) * sizeof(double));
    }
    return bytes;
  }, [&](int64_t first, int64_t count, std::string_view bytes) {
    const size_t per = static_cast<size_t>(N) * sizeof(double);
    CCC_CHECK(bytes.size() == 2 * per * static_cast<size_t>(count), "copy-vs-recall: a unit's results have the wrong size");
    for (int64_t j = 0; j < count; ++j) {
      auto& s = out[static_cast<size_t>(first + j)];
      s.fact.resize(static_cast<size_t>(N));
      s.cf.resize(static_cast<size_t>(N));
      std::memcpy(s.fact.data(), bytes.data() + 2 * per * static_cast<size_t>(j), per);
      std::memcpy(s.cf.data(), bytes.data() + 2 * per * static_cast<size_t>(j) + per, per);
    }
  }, done);
  return out;
}

// Outputs of a component set scaled by α (block j: alphas[j]): a head through its hook_z slice (its output
// is linear in z; the output bias stays), an MLP through hook_mlp_out.
BlockEdits scaling_installer(const model::ModelConfig& cfg, const std::vector<Component>& set,
                            const std::vector<double>& alphas) {
  return [&cfg, &set, &alphas](model::HookSet& hs, int64_t first, int64_t count, int64_t rows_per) {
    std::map<std::string, torch::Tensor> scale;
    for (const auto& c : set) {
      const std::string h = c.hook();
      if (!scale.count(h))
        scale[h] = c.kind == Component::Kind::kHead ? torch::ones({count * rows_per, 1, cfg.n_heads, 1})
                                                    : torch::ones({count * rows_per, 1, 1});
      for (int64_t j = 0; j < count; ++j) {
        auto rows = scale[h].narrow(0, j * rows_per, rows_per);
        const double a = alphas[static_cast<size_t>(first + j)];
        if (c.kind == Component::Kind::kHead) rows.select(2, c.index).fill_(a);
        else rows.fill_(a);
      }
    }
    for (auto& [h, s] : scale) {
      const torch::Tensor sc = s;
      hs.edit(h, [sc](const torch::Tensor& x, const model::HookContext&) { return x * sc.to(x.dtype()); });
    }
  };
}


// A counterfactual byte of the same class as b (lower, upper, digit, punctuation / space), ≠ b.
uint8_t counterfactual(uint8_t b, std::mt19937_64& rng) {
  static const std::string lower = "abcdefghijklmnopqrstuvwxyz", upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
                           digit = "0123456789", punct = " .,;:!?'-()";
  const std::string& pool = std::islower(b) ? lower : std::isupper(b) ? upper : std::isdigit(b) ? digit : punct;
  uint8_t c = b;
  while (c == b) c = static_cast<uint8_t>(pool[rng() % pool.size()]);
  return c;
}

bool eligible_byte(uint8_t b) { return std::isalnum(b) || b == ' ' || std::string(".,;:!?'-()").find(static_cast<char>(b)) != std::string::npos; }

// Switch point: the smallest k whose win rate is ≥ 0.5 (−1 when none is).
double switch_point(const std::vector<int64_t>& repeats, const std::vector<double>& win) {
  for (size_t j = 0; j < repeats.size(); ++j)
    if (win[j] >= 0.5) return static_cast<double>(repeats[j]);
  return -1;
}

}  // namespace

DirectLogits direct_logit_attribution(model::LoadedModel& m, const std::vector<std::vector<int64_t>>& tokens,
                                      const std::vector<Component>& components, const std::vector<int64_t>& target,
                                      const std::vector<int64_t>& other) {
  torch::InferenceMode guard;
  const auto& cfg = m.config;
  CCC_CHECK(!tokens.empty() && tokens.size() == target.size() && tokens.size() == other.size(),
            "direct logit attribution: ", tokens.size(), " prompts, ", target.size(), " targets, ", other.size(), " others");
  const int64_t N = static_cast<int64_t>(tokens.size()), T = static_cast<int64_t>(tokens[0].size());
  auto tok = torch::empty({N, T}, torch::kInt64);
  for (int64_t r = 0; r < N; ++r) {
    CCC_CHECK(static_cast<int64_t>(tokens[static_cast<size_t>(r)].size()) == T, "direct logit attribution: prompts differ in length");
    std::copy(tokens[static_cast<size_t>(r)].begin(), tokens[static_cast<size_t>(r)].end(), tok[r].data_ptr<int64_t>());
  }
  // the residual stream's pieces at the last position
  model::HookSet hs;
  std::map<std::string, torch::Tensor> last;
  auto keep = [&last, T](const torch::Tensor& x, const model::HookContext& c) { last[c.name] = x.select(1, T - 1).clone(); };
  const auto& names = m.model->hook_registry().names;
  auto has = [&](const std::string& n) { return std::find(names.begin(), names.end(), n) != names.end(); };
  for (int64_t l = 0; l < cfg.n_layers; ++l) {
    hs.observe(model::hook_name(l, model::kResult), keep);
    if (!cfg.attn_only) hs.observe(model::hook_name(l, model::kMlpOut), keep);
  }
  hs.observe("hook_embed", keep);
  if (has("hook_pos_embed")) hs.observe("hook_pos_embed", keep);
  hs.observe("ln_final.hook_scale", keep);
  model::RunOptions run;
  run.hooks = &hs;
  auto logits = m.model->forward(tok, run).select(1, T - 1).to(torch::kFloat64);  // [N, V]
  const auto sd = m.model->state_dict();
  auto U = (sd.count("unembed.W_U") ? sd.at("unembed.W_U") : sd.at("embed.W_E").narrow(0, 0, cfg.d_vocab_out)).to(torch::kFloat64);
  auto tgt = torch::tensor(target, torch::kInt64), oth = torch::tensor(other, torch::kInt64);
  auto du = U.index_select(0, tgt) - U.index_select(0, oth);  // [N, d]
  auto g = du * sd.at("ln_final.w").to(torch::kFloat64);   // [N, d]
  auto scale = last.at("ln_final.hook_scale").to(torch::kFloat64);  // [N, 1]
  const bool layer_norm = cfg.norm == model::NormKind::kLayerNorm;
  // contribution of residual pieces o [N, ..., d] to the difference: the norm's centring and frozen scale
  auto contrib = [&](torch::Tensor o) {
    o = o.to(torch::kFloat64);
    if (layer_norm) o = o - o.mean(-1, true);
    const int64_t extra = o.dim() - 2;  // heads dimension
    auto s = scale, gg = g;
    for (int64_t e = 0; e < extra; ++e) s = s.unsqueeze(1), gg = gg.unsqueeze(1);
    return (o / s * gg).sum(-1);
  };
  DirectLogits out;
  auto diff = logits.gather(1, tgt.unsqueeze(1)).squeeze(1) - logits.gather(1, oth.unsqueeze(1)).squeeze(1);
  auto embed = contrib(last.at("hook_embed") + (has("hook_pos_embed") ? last.at("hook_pos_embed") : torch::zeros({1})));
  auto bias = torch::zeros({N}, torch::kFloat64);
  for (int64_t l = 0; l < cfg.n_layers; ++l) {
    const std::string key = "blocks." + std::to_string(l) + ".attn.b_O";
    if (sd.count(key)) bias = bias + contrib(sd.at(key).to(torch::kFloat64).unsqueeze(0).expand({N, cfg.d_model}));
  }
  auto norm_bias = sd.count("ln_final.b") ? (du * sd.at("ln_final.b").to(torch::kFloat64)).sum(-1) : torch::zeros({N}, torch::kFloat64);
  std::vector<torch::Tensor> cols;
  for (const auto& c : components) {
    if (c.kind == Component::Kind::kHead) cols.push_back(contrib(last.at(model::hook_name(c.layer, model::kResult))).select(1, c.index));
    else if (c.kind == Component::Kind::kMlp) cols.push_back(contrib(last.at(model::hook_name(c.layer, model::kMlpOut))));
    else CCC_FAIL("direct logit attribution: component ", c.name(), " is not a head or an MLP");
  }
  out.per_component.assign(static_cast<size_t>(N), std::vector<double>(components.size()));
  out.rest.assign(static_cast<size_t>(N), std::vector<double>(3));
  out.logit_diff.resize(static_cast<size_t>(N));
  for (int64_t r = 0; r < N; ++r) {
    for (size_t c = 0; c < cols.size(); ++c) out.per_component[static_cast<size_t>(r)][c] = cols[c][r].item<double>();
    out.rest[static_cast<size_t>(r)] = {embed[r].item<double>(), bias[r].item<double>(), norm_bias[r].item<double>()};
    out.logit_diff[static_cast<size_t>(r)] = diff[r].item<double>();
  }
  return out;
}

Result run_copy_vs_recall(model::LoadedModel& m, std::string_view text, const CopyRecallOptions& o,
                          CopyRecallDetail* detail) {
  const auto& cfg = m.config;
  CCC_CHECK(o.mode == circuits::Mode::kZero || o.mode == circuits::Mode::kMean || o.mode == circuits::Mode::kResample,
            "copy-vs-recall: --mode zero, mean or resample");
  require_byte_model(m, "copy-vs-recall");
  CCC_CHECK(o.positions >= 2 && o.span >= 2 && o.filler >= 0 && o.novelty >= 1 && o.novelty <= o.span && o.top >= 1 &&
                o.null_draws >= 1 && !o.repeats.empty(),
            "copy-vs-recall: positions >= 2, span >= 2, 1 <= novelty <= span, top >= 1, null draws >= 1 and some repeats are needed");
  auto repeats = o.repeats;
  std::sort(repeats.begin(), repeats.end());
  repeats.erase(std::unique(repeats.begin(), repeats.end()), repeats.end());
  CCC_CHECK(repeats.front() >= 0, "copy-vs-recall: --repeats must be >= 0");
  CCC_CHECK(std::find(repeats.begin(), repeats.end(), o.side_k) != repeats.end() && o.side_k >= 1,
            "copy-vs-recall: the sides are measured at k = ", o.side_k, ", which must be >= 1 and one of --repeats");
  const int64_t S = o.span, F = o.filler, K = repeats.back();
  const int64_t longest = 1 + K * (S + 1 + F) + S;
  CCC_CHECK(longest <= cfg.n_ctx, "copy-vs-recall: the k = ", K, " prompt has ", longest, " tokens, more than ", m.source,
            "'s context n_ctx = ", cfg.n_ctx, " (lower --repeats, --span or --filler)");
  CCC_CHECK(static_cast<int64_t>(text.size()) > 4 * (S + F), "copy-vs-recall: the input has ", text.size(), " bytes, too few");
  const int64_t N = o.positions;
  auto progress = [&o](const std::string& phase, int64_t done, int64_t total) {
    if (o.progress) o.progress(phase, done, total);
  };

  Result r;
  r.experiment = "copy-vs-recall";
  r.hypothesis = "When a copy in the context and the model's weights want different bytes, the components that push "
                 "the copy decide it: removing them flips the winner to the recalled byte, and removing the recall "
                 "side strengthens copying, beyond random component sets of the same size.";
  r.claim = "In-context learning is a circuit that competes with in-weights knowledge and wins with enough "
            "evidence; removing the winning circuit hands the output to its competitor.";
  r.seed = o.seed;
  std::mt19937_64 rng(o.seed ^ 0xC0B1ULL);

  // candidate positions, shuffled, interleaved over the labels
  auto label_of = [&](size_t i) -> std::string {
    for (const auto& [name, on] : o.byte_labels)
      if (i < on.size() && on[i]) return name;
    return "";
  };
  std::map<std::string, std::vector<int64_t>> by_label;
  for (size_t i = static_cast<size_t>(S); i < text.size(); ++i) {
    if (!eligible_byte(static_cast<uint8_t>(text[i]))) continue;
    const std::string lab = label_of(i);
    if (label_of(i - static_cast<size_t>(S)) != lab) continue;  // the span stays inside one label
    const size_t lo = i > 1024 ? i - 1024 : 0;
    const auto gram = text.substr(i - static_cast<size_t>(o.novelty), static_cast<size_t>(o.novelty));
    if (text.substr(lo, i - 1 - lo).find(gram) != std::string_view::npos) continue;  // seen earlier: could be a copy
    by_label[lab].push_back(static_cast<int64_t>(i));
  }
  std::vector<std::pair<std::string, std::vector<int64_t>>> lists(by_label.begin(), by_label.end());
  for (auto& [lab, v] : lists) std::shuffle(v.begin(), v.end(), rng);
  std::vector<int64_t> order;
  for (size_t j = 0;; ++j) {
    bool any = false;
    for (auto& [lab, v] : lists)
      if (j < v.size()) order.push_back(v[j]), any = true;
    if (!any) break;
  }
  // keep those whose k = 0 prompt predicts the fact with p >= min_p, at most ceil(N / labels) per label,
  // at least S bytes apart
  const int64_t cap = (N + static_cast<int64_t>(lists.size()) - 1) / std::max<int64_t>(1, static_cast<int64_t>(lists.size()));
  std::vector<int64_t> chosen;
  std::map<std::string, int64_t> per_label;
  std::set<int64_t> taken;
  const double max_bits = -std::log2(o.min_p);
  int64_t scanned = 0;
  for (size_t at = 0; at < order.size() && static_cast<int64_t>(chosen.size()) < N;) {
    const size_t n = std::min<size_t>(256, order.size() - at);
    Batch b;
    b.tokens = torch::empty({static_cast<int64_t>(n), S + 1}, torch::kInt64);
    for (size_t j = 0; j < n; ++j) {
      const int64_t i = order[at + j];
      auto row = b.tokens[static_cast<int64_t>(j)];
      row[0] = cfg.bos_id;
      for (int64_t s = 0; s < S; ++s) row[s + 1] = static_cast<int64_t>(static_cast<uint8_t>(text[static_cast<size_t>(i - S + s)]));
      b.fact.push_back(static_cast<uint8_t>(text[static_cast<size_t>(i)]));
      b.cf.push_back(b.fact.back());
    }
    const auto sc = score_blocks(m, b, 1, {}, o.max_rows, {})[0];
    for (size_t j = 0; j < n && static_cast<int64_t>(chosen.size()) < N; ++j) {
      const int64_t i = order[at + j];
      if (sc.fact[j] > max_bits) continue;
      const std::string lab = label_of(static_cast<size_t>(i));
      if (per_label[lab] >= cap) continue;
      auto near = taken.lower_bound(i - S);
      if (near != taken.end() && *near <= i + S) continue;
      chosen.push_back(i), taken.insert(i), per_label[lab]++;
    }
    scanned += static_cast<int64_t>(n);
    at += n;
    progress("select", static_cast<int64_t>(chosen.size()), N);
  }
  CCC_CHECK(static_cast<int64_t>(chosen.size()) == N, "copy-vs-recall: only ", chosen.size(), " of ", N,
            " positions qualify (the model gives the true byte p >= ", o.min_p, " after ", S, " bytes, novel last ",
            o.novelty, " bytes; ", scanned, " scanned, at most ", cap, " per label): give a longer input, --positions or --min-p");

  // prompts per k: [BOS] (P b' F_1) ... (P b' F_k) P
  std::vector<uint8_t> fact(static_cast<size_t>(N)), cfb(static_cast<size_t>(N));
  std::vector<std::vector<std::string>> fillers(static_cast<size_t>(N));
  for (int64_t p = 0; p < N; ++p) {
    fact[static_cast<size_t>(p)] = static_cast<uint8_t>(text[static_cast<size_t>(chosen[static_cast<size_t>(p)])]);
    cfb[static_cast<size_t>(p)] = counterfactual(fact[static_cast<size_t>(p)], rng);
    for (int64_t j = 0; j < K; ++j) {
      const size_t off = static_cast<size_t>(rng() % (text.size() - static_cast<size_t>(F)));
      fillers[static_cast<size_t>(p)].emplace_back(text.substr(off, static_cast<size_t>(F)));
    }
  }
  auto prompt = [&](int64_t p, int64_t k) {
    const int64_t i = chosen[static_cast<size_t>(p)];
    const auto span = text.substr(static_cast<size_t>(i - S), static_cast<size_t>(S));
    std::vector<int64_t> t{cfg.bos_id};
    auto put = [&t](std::string_view s) {
      for (char c : s) t.push_back(static_cast<uint8_t>(c));
    };
    for (int64_t j = 0; j < k; ++j) {
      put(span);
      t.push_back(cfb[static_cast<size_t>(p)]);
      put(fillers[static_cast<size_t>(p)][static_cast<size_t>(j)]);
    }
    put(span);
    return t;
  };
  std::vector<Batch> batches;
  for (int64_t k : repeats) {
    Batch b;
    const int64_t T = 1 + k * (S + 1 + F) + S;
    b.tokens = torch::empty({N, T}, torch::kInt64);
    for (int64_t p = 0; p < N; ++p) {
      const auto t = prompt(p, k);
      std::copy(t.begin(), t.end(), b.tokens[p].data_ptr<int64_t>());
      b.fact.push_back(fact[static_cast<size_t>(p)]);
      b.cf.push_back(cfb[static_cast<size_t>(p)]);
    }
    batches.push_back(std::move(b));
  }
  const size_t nk = repeats.size();
  const size_t side_j = static_cast<size_t>(std::find(repeats.begin(), repeats.end(), o.side_k) - repeats.begin());

  // the candidates and the ablation reference (the input itself)
  const auto cands = circuits::discovery_components(cfg);
  const int64_t C = static_cast<int64_t>(cands.size());
  std::unique_ptr<circuits::Reference> ref;
  if (o.mode != circuits::Mode::kZero)
    ref = std::make_unique<circuits::Reference>(circuits::collect_reference(m, text, cands, o.mode, 0, 0, o.seed));

  // clean bits per k
  std::vector<Scores> clean;
  for (size_t j = 0; j < nk; ++j) {
    clean.push_back(score_blocks(m, batches[j], 1, {}, o.max_rows, {})[0]);
    progress("clean", static_cast<int64_t>(j + 1), static_cast<int64_t>(nk));
  }

  // the sides: direct logit attribution at side_k
  std::vector<std::vector<int64_t>> side_prompts;
  for (int64_t p = 0; p < N; ++p) side_prompts.push_back(prompt(p, o.side_k));
  const auto dla = direct_logit_attribution(m, side_prompts, cands, batches[side_j].cf, batches[side_j].fact);
  std::vector<double> mean_dla(static_cast<size_t>(C), 0);
  double rest[3] = {0, 0, 0}, mean_diff = 0;
  for (int64_t p = 0; p < N; ++p) {
    for (int64_t c = 0; c < C; ++c) mean_dla[static_cast<size_t>(c)] += dla.per_component[static_cast<size_t>(p)][static_cast<size_t>(c)] / static_cast<double>(N);
    for (int e = 0; e < 3; ++e) rest[e] += dla.rest[static_cast<size_t>(p)][static_cast<size_t>(e)] / static_cast<double>(N);
    mean_diff += dla.logit_diff[static_cast<size_t>(p)] / static_cast<double>(N);
  }
  std::vector<size_t> by_dla(static_cast<size_t>(C));
  std::iota(by_dla.begin(), by_dla.end(), 0);
  std::stable_sort(by_dla.begin(), by_dla.end(), [&](size_t a, size_t b) { return mean_dla[a] > mean_dla[b]; });
  // the sets draw from every component but the first MLP when it counts as part of the embedding
  const Component first_mlp{Component::Kind::kMlp, 0, -1};
  auto in_sets = [&](size_t c) { return !(o.first_mlp_as_embedding && cands[c] == first_mlp); };
  std::vector<Component> copy_set, recall_set;
  for (size_t j = 0; j < by_dla.size() && static_cast<int64_t>(copy_set.size()) < o.top; ++j)
    if (mean_dla[by_dla[j]] > 0 && in_sets(by_dla[j])) copy_set.push_back(cands[by_dla[j]]);
  for (size_t j = by_dla.size(); j-- > 0 && static_cast<int64_t>(recall_set.size()) < o.top;)
    if (mean_dla[by_dla[j]] < 0 && in_sets(by_dla[j])) recall_set.push_back(cands[by_dla[j]]);
  CCC_CHECK(!copy_set.empty() && !recall_set.empty(), "copy-vs-recall: no component pushes the ",
            copy_set.empty() ? "counterfactual" : "fact", " at k = ", o.side_k, " (direct logit attribution)");

  // each component ablated alone at side_k
  std::vector<std::vector<Component>> singles;
  for (const auto& c : cands) singles.push_back({c});
  const auto single = score_blocks(m, batches[side_j], C, ablation_edits(cfg, singles, o.mode, ref.get(), o.seed),
                                   o.max_rows, [&](int64_t d) { progress("components", d, C); });

  // the interventions and their null at every k
  std::vector<std::vector<Component>> sides = {copy_set, recall_set};
  std::vector<Scores> copy_ablated, recall_ablated;
  for (size_t j = 0; j < nk; ++j) {
    const auto s = score_blocks(m, batches[j], 2, ablation_edits(cfg, sides, o.mode, ref.get(), o.seed), o.max_rows, {});
    copy_ablated.push_back(s[0]);
    recall_ablated.push_back(s[1]);
    progress("interventions", static_cast<int64_t>(j + 1), static_cast<int64_t>(nk));
  }
  // random sets: one of each side's size per draw (one set when the sizes agree)
  const bool same_size = copy_set.size() == recall_set.size();
  std::vector<std::vector<Component>> draws;
  std::mt19937_64 null_rng(o.seed ^ 0x5EEDULL);
  std::vector<size_t> pool;
  for (size_t c = 0; c < static_cast<size_t>(C); ++c)
    if (in_sets(c)) pool.push_back(c);
  for (int64_t d = 0; d < o.null_draws; ++d)
    for (size_t size : same_size ? std::vector<size_t>{copy_set.size()} : std::vector<size_t>{copy_set.size(), recall_set.size()}) {
      std::vector<size_t> idx = pool;
      std::shuffle(idx.begin(), idx.end(), null_rng);
      std::vector<Component> set;
      for (size_t j = 0; j < std::min<size_t>(size, idx.size()); ++j) set.push_back(cands[idx[j]]);
      draws.push_back(set);
    }
  const int64_t D = static_cast<int64_t>(draws.size());
  std::vector<std::vector<double>> null_copy(nk), null_recall(nk), null_win(static_cast<size_t>(o.null_draws));
  for (size_t j = 0; j < nk; ++j) {
    const auto s = score_blocks(m, batches[j], D, ablation_edits(cfg, draws, o.mode, ref.get(), o.seed), o.max_rows,
                                [&](int64_t d) { progress("null", static_cast<int64_t>(j) * D + d, static_cast<int64_t>(nk) * D); });
    for (int64_t d = 0; d < o.null_draws; ++d) {
      const size_t a = static_cast<size_t>(same_size ? d : 2 * d), b = same_size ? a : a + 1;
      null_copy[j].push_back(s[a].win_rate());
      null_recall[j].push_back(s[b].win_rate());
      null_win[static_cast<size_t>(d)].push_back(s[a].win_rate());
    }
  }

  // dose–response: each side's outputs scaled by α (α = 1 is the clean run, not scored again)
  std::vector<std::vector<double>> dose_copy(o.alphas.size(), std::vector<double>(nk)), dose_recall = dose_copy;
  std::vector<double> scaled;
  std::vector<size_t> where;
  for (size_t a = 0; a < o.alphas.size(); ++a)
    if (o.alphas[a] != 1.0) scaled.push_back(o.alphas[a]), where.push_back(a);
  const int64_t A = static_cast<int64_t>(scaled.size());
  for (size_t j = 0; j < nk; ++j) {
    for (size_t a = 0; a < o.alphas.size(); ++a)
      if (o.alphas[a] == 1.0) dose_copy[a][j] = dose_recall[a][j] = clean[j].win_rate();
    if (A > 0) {
      const auto sc = score_blocks(m, batches[j], A, scaling_installer(cfg, copy_set, scaled), o.max_rows, {});
      const auto sr = score_blocks(m, batches[j], A, scaling_installer(cfg, recall_set, scaled), o.max_rows, {});
      for (size_t a = 0; a < where.size(); ++a) {
        dose_copy[where[a]][j] = sc[a].win_rate();
        dose_recall[where[a]][j] = sr[a].win_rate();
      }
    }
    progress("dose", static_cast<int64_t>(j + 1), static_cast<int64_t>(nk));
  }

  // measurements
  std::vector<double> win_clean(nk), win_copy(nk), win_recall(nk);
  for (size_t j = 0; j < nk; ++j) {
    const std::string k = "k" + std::to_string(repeats[j]);
    const uint64_t s = o.seed + 16 * j;
    r.measurements.push_back(bootstrap_mean("win_rate_" + k, clean[j].wins(), "share", o.resamples, s));
    r.measurements.push_back(bootstrap_mean("bits_fact_" + k, clean[j].fact, "bits", o.resamples, s + 1));
    r.measurements.push_back(bootstrap_mean("bits_counterfactual_" + k, clean[j].cf, "bits", o.resamples, s + 2));
    r.measurements.push_back(bootstrap_mean("win_rate_" + k + "_copy_ablated", copy_ablated[j].wins(), "share", o.resamples, s + 3));
    r.measurements.push_back(bootstrap_mean("win_rate_" + k + "_recall_ablated", recall_ablated[j].wins(), "share", o.resamples, s + 4));
    r.null.push_back(over_draws("win_rate_" + k + "_copy_ablated", null_copy[j], "share", kNullWhat));
    r.null.push_back(over_draws("win_rate_" + k + "_recall_ablated", null_recall[j], "share", kNullWhat));
    win_clean[j] = clean[j].win_rate(), win_copy[j] = copy_ablated[j].win_rate(), win_recall[j] = recall_ablated[j].win_rate();
  }
  {  // switch point with its bootstrap CI over positions (−1 = never reached; sorted after every k)
    Measurement sw;
    sw.name = "switch_point";
    sw.unit = "repeats (-1 = win rate never reaches 0.5)";
    sw.value = switch_point(repeats, win_clean);
    std::mt19937_64 boot(o.seed ^ 0xB007ULL);
    std::vector<double> stat;
    const int64_t R = std::max<int64_t>(1, o.resamples);
    for (int64_t b = 0; b < R; ++b) {
      std::vector<double> w(nk, 0);
      for (int64_t p = 0; p < N; ++p) {
        const size_t q = static_cast<size_t>(boot() % static_cast<uint64_t>(N));
        for (size_t j = 0; j < nk; ++j) w[j] += (clean[j].cf[q] < clean[j].fact[q]) / static_cast<double>(N);
      }
      const double s = switch_point(repeats, w);
      stat.push_back(s < 0 ? 1e18 : s);
    }
    set_percentile_ci(sw, stat);
    for (double* b : {&sw.ci_low, &sw.ci_high})
      if (*b >= 1e18) *b = -1;  // never
    sw.ci_method = "percentile bootstrap over " + std::to_string(N) + " positions, " + std::to_string(R) +
                   " resamples (a resample that never reaches 0.5 counts as beyond every k; -1 when a bound is)";
    r.measurements.push_back(sw);
  }

  // the verdict
  auto find = [](const std::vector<Measurement>& v, const std::string& name) -> const Measurement& {
    for (const auto& x : v)
      if (x.name == name) return x;
    CCC_FAIL("copy-vs-recall: no statistic ", name);
  };
  int hi = -1, mid = -1;  // the largest k where copying wins; the most contested k >= 1
  for (size_t j = 0; j < nk; ++j) {
    if (win_clean[j] >= 0.5) hi = static_cast<int>(j);
    if (repeats[j] >= 1 && (mid < 0 || std::abs(win_clean[j] - 0.5) < std::abs(win_clean[static_cast<size_t>(mid)] - 0.5)))
      mid = static_cast<int>(j);
  }
  const std::string rule =
      "at k_hi, the largest k where the counterfactual wins (win rate >= 0.5): the copy side's removal must flip the "
      "winner (win_rate_k<k_hi>_copy_ablated below 0.5 with its 95% CI) and lie below its random-set null (" +
      rule_text(-1, 0.1, "win_rate_k<k_hi>_copy_ablated", "the null's 2.5-97.5 percentile range") +
      "); at k_mid, the k >= 1 whose win rate is closest to 0.5: the recall side's removal must raise the win rate "
      "above its null (" + rule_text(+1, 0.05, "win_rate_k<k_mid>_recall_ablated", "the null's range") +
      "). supported when both hold; not_supported when the copy-ablated CI lies entirely at or above 0.5 or either "
      "rule says not_supported; inconclusive otherwise (also when copying never wins)";
  r.headline = "win_rate_k" + std::to_string(repeats[static_cast<size_t>(hi < 0 ? static_cast<int>(nk) - 1 : hi)]) +
               (hi < 0 ? "" : "_copy_ablated");
  if (hi < 0 || mid < 0) {
    r.verdict = Verdict::kInconclusive;
    r.verdict_rule = rule + ". Here the counterfactual never wins at the k measured.";
  } else {
    const std::string khi = "win_rate_k" + std::to_string(repeats[static_cast<size_t>(hi)]) + "_copy_ablated";
    const std::string kmid = "win_rate_k" + std::to_string(repeats[static_cast<size_t>(mid)]) + "_recall_ablated";
    const Measurement& flip = find(r.measurements, khi);
    const Verdict v_flip = decide(flip, find(r.null, khi), -1, 0.1);
    const Verdict v_str = decide(find(r.measurements, kmid), find(r.null, kmid), +1, 0.05);
    if (v_flip == Verdict::kSupported && flip.ci_high < 0.5 && v_str == Verdict::kSupported) r.verdict = Verdict::kSupported;
    else if (flip.ci_low >= 0.5 || v_flip == Verdict::kNotSupported || v_str == Verdict::kNotSupported) r.verdict = Verdict::kNotSupported;
    else r.verdict = Verdict::kInconclusive;
    r.verdict_rule = rule + ". Here k_hi = " + std::to_string(repeats[static_cast<size_t>(hi)]) + " (" + khi + ": " +
                     to_string(v_flip) + " against the null), k_mid = " + std::to_string(repeats[static_cast<size_t>(mid)]) +
                     " (" + kmid + ": " + to_string(v_str) + ")";
  }

  if (detail != nullptr) {
    *detail = CopyRecallDetail{};
    detail->repeats = repeats;
    detail->candidates_scanned = scanned;
    for (int64_t p = 0; p < N; ++p) {
      CopyRecallDetail::Position pos;
      pos.offset = chosen[static_cast<size_t>(p)];
      pos.fact = fact[static_cast<size_t>(p)];
      pos.counterfactual = cfb[static_cast<size_t>(p)];
      pos.label = label_of(static_cast<size_t>(pos.offset));
      for (size_t j = 0; j < nk; ++j)
        pos.bits_fact.push_back(clean[j].fact[static_cast<size_t>(p)]), pos.bits_cf.push_back(clean[j].cf[static_cast<size_t>(p)]);
      detail->positions.push_back(pos);
    }
    for (size_t j : by_dla) {
      CopyRecallDetail::ComponentRow row;
      row.component = cands[j].name();
      row.side = mean_dla[j] > 0 ? "copy" : "recall";
      row.logit_diff = mean_dla[j];
      row.win_rate_ablated = single[j].win_rate();
      detail->components.push_back(row);
    }
    for (const auto& c : copy_set) detail->copy_components.push_back(c.name());
    for (const auto& c : recall_set) detail->recall_components.push_back(c.name());
    detail->dla_embedding = rest[0], detail->dla_attn_bias = rest[1], detail->dla_norm_bias = rest[2];
    detail->logit_diff = mean_diff;
    detail->win_clean = win_clean, detail->win_copy_ablated = win_copy, detail->win_recall_ablated = win_recall;
    detail->null_win = null_win;
    detail->alphas = o.alphas;
    detail->dose_copy = dose_copy, detail->dose_recall = dose_recall;
    std::map<std::string, std::vector<double>> wins, counts;
    for (const auto& pos : detail->positions) {
      auto& w = wins[pos.label];
      auto& n = counts[pos.label];
      w.resize(nk, 0), n.resize(nk, 0);
      for (size_t j = 0; j < nk; ++j) w[j] += pos.bits_cf[j] < pos.bits_fact[j], n[j] += 1;
    }
    for (auto& [lab, w] : wins) {
      for (size_t j = 0; j < nk; ++j) w[j] /= counts[lab][j];
      detail->win_by_label.emplace_back(lab, w);
    }
  }
  return r;
}

}  // namespace ccc::experiments
