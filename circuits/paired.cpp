#include "circuits/paired.h"

#include <algorithm>

#include "model/base/error.h"
#include "model/base/util.h"
#include "model/scoring/streams.h"

namespace ccc::circuits {

namespace {

const std::string kEmbedHook = "hook_embed";

// The hooks a record of `components` holds (each once), hook_embed first with `embed`.
std::vector<std::string> record_hooks(const std::vector<Component>& components, bool embed) {
  std::vector<std::string> hooks;
  if (embed) hooks.push_back(kEmbedHook);
  for (const auto& c : components)
    if (std::find(hooks.begin(), hooks.end(), c.hook()) == hooks.end()) hooks.push_back(c.hook());
  return hooks;
}

// Features per position of `hook` (the product of its trailing dimensions).
int64_t features(const std::string& hook, const model::ModelConfig& cfg) {
  if (hook.find("hook_z") != std::string::npos) return cfg.n_heads * cfg.d_head;
  if (hook.find("hook_post") != std::string::npos) return cfg.d_mlp;
  return cfg.d_model;  // hook_embed, hook_attn_out, hook_mlp_out
}

// Streams and the longest stream in positions (BOS included).
std::pair<int64_t, int64_t> record_shape(const model::LoadedModel& m, std::string_view text, const ScoringRun& run) {
  const auto counts = model::stream_token_counts(m, text, run.stream_options());
  uint64_t longest = 0;
  for (uint64_t c : counts) longest = std::max(longest, c);
  return {static_cast<int64_t>(counts.size()), static_cast<int64_t>(longest) + 1};
}

// Rows of `x` flattened to [b·p] indices stream·P + position (rows_per folds sweep copies onto their stream).
std::vector<int64_t> flat_positions(const model::HookContext& ctx, int64_t b, int64_t p, int64_t S, int64_t P,
                                    int64_t rows_per, bool live_only, std::vector<int64_t>* kept) {
  CCC_CHECK(ctx.run != nullptr, "paired patching at ", ctx.name, ": the scorer gave no run record");
  std::vector<int64_t> idx;
  idx.reserve(static_cast<size_t>(b * p));
  for (int64_t r = 0; r < b; ++r) {
    const int64_t stream = rows_per > 0 ? ctx.run->stream[r] % rows_per : ctx.run->stream[r];
    const bool live = ctx.run->live[r] != 0;
    for (int64_t i = 0; i < p; ++i) {
      const int64_t pos = ctx.run->position[r * p + i];
      if (live_only) {
        if (!live || pos < 0) continue;
        kept->push_back(r * p + i);
      }
      if (!live || pos < 0) {  // padding: any valid slot (its output is never read)
        idx.push_back(0);
        continue;
      }
      CCC_CHECK(stream >= 0 && stream < S && pos < P, "paired patching at ", ctx.name, ": stream ", stream,
                " position ", pos, " lies outside the record (", S, " streams of ", P, " positions)");
      idx.push_back(stream * P + pos);
    }
  }
  return idx;
}

}  // namespace

torch::Tensor values_at(const torch::Tensor& act, const torch::Tensor& x, const model::HookContext& ctx,
                        int64_t rows_per) {
  const int64_t b = x.size(0), p = x.size(1), S = act.size(0), P = act.size(1);
  const auto idx = flat_positions(ctx, b, p, S, P, rows_per, false, nullptr);
  auto flat = act.view({S * P, -1});
  auto out = flat.index_select(0, torch::tensor(idx, torch::kInt64)).to(x.dtype());
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  return out.view(shape);
}

void check_pairable(const model::LoadedModel& m, std::string_view clean, std::string_view corrupt,
                    const ScoringRun& run, const std::string& clean_name, const std::string& corrupt_name) {
  const auto opt = run.stream_options();
  CCC_CHECK(model::resolve_window_policy(m.config, opt).second, m.source,
            ": paired patching needs the rolling window policy (each position computed once); this model is "
            "scored in strided windows");
  const int64_t B = model::resolve_streams(clean.size(), run.streams);
  auto fixed = opt;
  fixed.streams = B;  // both texts in the clean text's segmentation
  const auto a = model::stream_token_counts(m, clean, fixed);
  const auto c = model::stream_token_counts(m, corrupt, fixed);
  CCC_CHECK(a.size() == c.size(), corrupt_name, ": ", c.size(), " streams vs ", a.size(), " in ", clean_name);
  for (size_t s = 0; s < a.size(); ++s)
    CCC_CHECK(a[s] == c[s], corrupt_name, ": stream ", s, " of ", a.size(), " has ", c[s], " tokens, ", clean_name,
              " has ", a[s], " (paired patching aligns position to position: the texts must tokenize to the same "
              "length in every stream; byte-level models need the same byte length)");
}

namespace {

// Bytes of a record of `components` (and hook_embed) over S streams of P positions.
uint64_t shape_bytes(const model::ModelConfig& cfg, int64_t S, int64_t P, const std::vector<Component>& components,
                     bool embed) {
  uint64_t total = 0;
  for (const auto& h : record_hooks(components, embed))
    total += static_cast<uint64_t>(S) * static_cast<uint64_t>(P) * static_cast<uint64_t>(features(h, cfg)) * 4;
  return total;
}

}  // namespace

uint64_t record_bytes(const model::LoadedModel& m, std::string_view text, const ScoringRun& run,
                      const std::vector<Component>& components, bool embed) {
  const auto [S, P] = record_shape(m, text, run);
  return shape_bytes(m.config, S, P, components, embed);
}

Reference record_positions(model::LoadedModel& m, std::string_view text, const ScoringRun& run,
                           const std::vector<Component>& components, bool embed, std::vector<double>* bits) {
  const auto [S, P] = record_shape(m, text, run);  // the text tokenized once for the shape and the estimate
  check_memory(shape_bytes(m.config, S, P, components, embed), 0, "the activations of the paired run");
  Reference ref;
  model::HookSet hs;
  for (const auto& h : record_hooks(components, embed)) {
    hs.observe(h, [&ref, h, S = S, P = P](const torch::Tensor& x, const model::HookContext& ctx) {
      auto& act = ref.at[h];
      if (!act.defined()) {
        std::vector<int64_t> shape = {S, P};
        for (int64_t d : x.sizes().slice(2)) shape.push_back(d);
        act = torch::zeros(shape, torch::kFloat32);
      }
      std::vector<int64_t> kept;
      const auto idx = flat_positions(ctx, x.size(0), x.size(1), S, P, 0, true, &kept);
      if (kept.empty()) return;
      auto rows = x.reshape({x.size(0) * x.size(1), -1}).index_select(0, torch::tensor(kept, torch::kInt64));
      act.view({S * P, -1}).index_copy_(0, torch::tensor(idx, torch::kInt64), rows.to(torch::kFloat32));
    });
  }
  auto opt = run.stream_options();
  opt.streams = model::resolve_streams(text.size(), run.streams);
  opt.hooks = [&](int64_t) { return &hs; };
  const auto per_stream = model::segmented_token_bits(m, text, opt);
  if (bits != nullptr) {
    bits->clear();
    for (const auto& s : per_stream) bits->insert(bits->end(), s.begin(), s.end());
  }
  for (const auto& h : record_hooks(components, embed))
    CCC_CHECK(ref.at.count(h), "paired patching: the run never reached ", h);
  ref.positions = S * P;
  return ref;
}

void install_input(model::HookSet& hooks, const Reference& other, int64_t rows_per) {
  auto it = other.at.find(kEmbedHook);
  CCC_CHECK(it != other.at.end(), "paired patching: the corrupt record has no token embeddings (hook_embed)");
  const torch::Tensor act = it->second;
  hooks.edit(kEmbedHook, [act, rows_per](const torch::Tensor& x, const model::HookContext& ctx) {
    return values_at(act, x, ctx, rows_per);
  });
}

PairedBits paired_patch_bits(model::LoadedModel& m, std::string_view clean, std::string_view corrupt,
                             const ScoringRun& run, const std::vector<Component>& set, int64_t max_rows,
                             const ProgressFn& progress) {
  CCC_CHECK(!set.empty(), "paired patching: no components");
  check_pairable(m, clean, corrupt, run, "the clean text", "the corrupt text");
  ScoringRun r = run;
  r.streams = model::resolve_streams(clean.size(), run.streams);
  r.mode = Mode::kCorrupt;
  PairedBits out;
  const Reference of_clean = record_positions(m, clean, r, set, false, &out.clean);  // its run is the clean one
  const Reference of_corrupt = record_positions(m, corrupt, r, set, true);
  out.corrupt = ablated_bits(m, clean, r, {}, nullptr,
                             [&](model::HookSet& hs) { install_input(hs, of_corrupt, 0); });
  const auto n = static_cast<int64_t>(set.size());
  out.noised = sweep_bits(m, clean, r, set, &of_corrupt, SweepPath::kShared, max_rows,
                          [&](int64_t done, int64_t) { if (progress) progress(done, 2 * n); });
  out.denoised = sweep_bits(m, clean, r, set, &of_clean, SweepPath::kStacked, max_rows,
                            [&](int64_t done, int64_t) { if (progress) progress(n + done, 2 * n); },
                            [&](model::HookSet& hs, int64_t rows_per) { install_input(hs, of_corrupt, rows_per); });
  return out;
}

}  // namespace ccc::circuits
