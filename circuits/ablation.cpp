#include "circuits/ablation.h"

#include <algorithm>
#include <filesystem>
#include <random>

#include <nlohmann/json.hpp>

#include "circuits/paired.h"
#include "model/scoring/streams.h"
#include "model/base/error.h"
#include "model/base/util.h"

namespace ccc::circuits {

namespace {

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.erase(s.begin());
  return s;
}

bool parse_int(const std::string& s, int64_t* out) {
  if (s.empty() || s.size() > 12) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  *out = std::stoll(s);
  return true;
}

Component parse_one(const std::string& item, const model::ModelConfig& cfg) {
  Component c;
  int64_t a = 0, b = 0;
  const size_t dot = item.find('.');
  auto layer_ok = [&](int64_t l) {
    CCC_CHECK(l < cfg.n_layers, "component '", item, "': layer ", l, " out of range (the model has ", cfg.n_layers,
              " layers)");
  };
  auto need_mlp = [&] { CCC_CHECK(!cfg.attn_only, "component '", item, "': the model is attention-only (no MLPs)"); };
  if (item.rfind("attn", 0) == 0 && parse_int(item.substr(4), &a)) {
    layer_ok(a);
    c.kind = Component::Kind::kAttn;
    c.layer = a;
  } else if (item.rfind("mlp", 0) == 0 && parse_int(item.substr(3), &a)) {
    need_mlp();
    layer_ok(a);
    c.kind = Component::Kind::kMlp;
    c.layer = a;
  } else if (item.size() > 1 && item[0] == 'n' && dot != std::string::npos && parse_int(item.substr(1, dot - 1), &a) &&
             parse_int(item.substr(dot + 1), &b)) {
    need_mlp();
    layer_ok(a);
    CCC_CHECK(b < cfg.d_mlp, "component '", item, "': neuron ", b, " out of range (d_mlp = ", cfg.d_mlp, ")");
    c.kind = Component::Kind::kNeuron;
    c.layer = a;
    c.index = b;
  } else if (dot != std::string::npos && parse_int(item.substr(0, dot), &a) && parse_int(item.substr(dot + 1), &b)) {
    layer_ok(a);
    CCC_CHECK(b < cfg.n_heads, "component '", item, "': head ", b, " out of range (n_heads = ", cfg.n_heads, ")");
    c.kind = Component::Kind::kHead;
    c.layer = a;
    c.index = b;
  } else {
    CCC_FAIL("component '", item, "': unknown form (expected L.H for a head, attnL, mlpL or nL.N for a neuron)");
  }
  return c;
}

uint64_t mix(uint64_t x) {  // splitmix64 finaliser
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// Shape of a mask for `hook` with R rows: the component dimensions kept, the position dimension 1.
std::vector<int64_t> mask_shape(const Component& c, const model::ModelConfig& cfg, int64_t R) {
  switch (c.kind) {
    case Component::Kind::kHead: return {R, 1, cfg.n_heads, 1};
    case Component::Kind::kNeuron: return {R, 1, cfg.d_mlp};
    default: return {R, 1, 1};
  }
}

}  // namespace

std::string Component::name() const {
  switch (kind) {
    case Kind::kHead: return std::to_string(layer) + "." + std::to_string(index);
    case Kind::kAttn: return "attn" + std::to_string(layer);
    case Kind::kMlp: return "mlp" + std::to_string(layer);
    case Kind::kNeuron: return "n" + std::to_string(layer) + "." + std::to_string(index);
  }
  return "?";
}

std::string Component::hook() const {
  switch (kind) {
    case Kind::kHead: return model::hook_name(layer, model::kZ);
    case Kind::kAttn: return model::hook_name(layer, model::kAttnOut);
    case Kind::kMlp: return model::hook_name(layer, model::kMlpOut);
    case Kind::kNeuron: return model::hook_name(layer, model::kMlpPost);
  }
  return "?";
}

std::vector<Component> parse_components(const std::string& spec, const model::ModelConfig& cfg) {
  std::vector<std::string> items;
  std::error_code ec;
  if (std::filesystem::is_regular_file(spec, ec)) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(read_file(spec, kJsonCap));
    } catch (const nlohmann::json::exception& e) {
      CCC_FAIL(spec, ": not JSON (", e.what(), ")");
    }
    CCC_CHECK(j.is_object() && j.contains("components") && j["components"].is_array(), spec,
              ": expected {\"components\": [\"1.3\", ...]}");
    for (const auto& x : j["components"]) {
      CCC_CHECK(x.is_string(), spec, ": every component must be a string like \"1.3\"");
      items.push_back(x.get<std::string>());
    }
  } else {
    std::string cur;
    for (char ch : spec + ",") {
      if (ch == ',') {
        items.push_back(trim(cur));
        cur.clear();
      } else {
        cur += ch;
      }
    }
  }
  std::vector<Component> out;
  for (const auto& item : items) {
    CCC_CHECK(!item.empty(), "components '", spec, "': empty item");
    const Component c = parse_one(item, cfg);
    CCC_CHECK(std::find(out.begin(), out.end(), c) == out.end(), "components '", spec, "': ", item, " given twice");
    out.push_back(c);
  }
  CCC_CHECK(!out.empty(), "components: none given");
  return out;
}

std::vector<Component> sweep_set(const std::string& over, const model::ModelConfig& cfg) {
  std::vector<Component> out;
  if (over == "heads") {
    for (int64_t l = 0; l < cfg.n_layers; ++l)
      for (int64_t h = 0; h < cfg.n_heads; ++h) out.push_back({Component::Kind::kHead, l, h});
  } else if (over == "attn") {
    for (int64_t l = 0; l < cfg.n_layers; ++l) out.push_back({Component::Kind::kAttn, l, -1});
  } else if (over == "mlps") {
    CCC_CHECK(!cfg.attn_only, "--over mlps: the model is attention-only");
    for (int64_t l = 0; l < cfg.n_layers; ++l) out.push_back({Component::Kind::kMlp, l, -1});
  } else if (over.rfind("neurons:", 0) == 0) {
    int64_t l = 0;
    CCC_CHECK(parse_int(over.substr(8), &l), "--over ", over, ": expected neurons:L");
    CCC_CHECK(!cfg.attn_only, "--over ", over, ": the model is attention-only");
    CCC_CHECK(l < cfg.n_layers, "--over ", over, ": layer out of range (", cfg.n_layers, " layers)");
    for (int64_t n = 0; n < cfg.d_mlp; ++n) out.push_back({Component::Kind::kNeuron, l, n});
  } else {
    CCC_FAIL("--over ", over, ": expected heads, attn, mlps or neurons:L");
  }
  return out;
}

Mode parse_mode(const std::string& s) {
  if (s == "zero") return Mode::kZero;
  if (s == "mean") return Mode::kMean;
  if (s == "resample") return Mode::kResample;
  if (s == "corrupt") return Mode::kCorrupt;
  CCC_FAIL("--mode ", s, ": expected zero, mean, resample or corrupt");
}

std::string to_string(Mode m) {
  switch (m) {
    case Mode::kZero: return "zero";
    case Mode::kMean: return "mean";
    case Mode::kResample: return "resample";
    case Mode::kCorrupt: return "corrupt";
  }
  return "?";
}

Reference collect_reference(model::LoadedModel& m, std::string_view text, const std::vector<Component>& components,
                            Mode mode, int64_t streams, int64_t window, uint64_t seed, int64_t pool_size) {
  Reference ref;
  if (mode == Mode::kZero) return ref;
  if (mode == Mode::kCorrupt) {
    ScoringRun run;
    run.streams = streams;
    run.window = window;
    return record_positions(m, text, run, components, false);
  }
  std::vector<std::string> hooks;
  for (const auto& c : components)
    if (std::find(hooks.begin(), hooks.end(), c.hook()) == hooks.end()) hooks.push_back(c.hook());
  std::map<std::string, torch::Tensor> sum;
  std::map<std::string, int64_t> seen;
  std::mt19937_64 rng(seed ^ 0x5EEDULL);
  model::HookSet hs;
  for (const auto& h : hooks) {
    hs.observe(h, [&, h](const torch::Tensor& x, const model::HookContext& ctx) {
      CCC_CHECK(ctx.run != nullptr, "reference: the scorer gave no run record");
      const auto feat = x.sizes().slice(2);
      auto flat = x.reshape({x.size(0) * x.size(1), -1}).to(torch::kFloat64);
      std::vector<int64_t> keep;
      for (int64_t i = 0; i < flat.size(0); ++i)
        if (ctx.run->byte_offset[i] >= 0 && ctx.run->live[i / x.size(1)]) keep.push_back(i);
      if (keep.empty()) return;
      auto rows = flat.index_select(0, torch::tensor(keep, torch::kInt64));
      auto s = rows.sum(0);
      if (!sum.count(h)) sum[h] = torch::zeros_like(s);
      sum[h] += s;
      if (mode == Mode::kResample) {
        auto& pool = ref.pool[h];
        std::vector<int64_t> pshape = {pool_size};
        for (int64_t d : feat) pshape.push_back(d);
        if (!pool.defined()) pool = torch::zeros(pshape, torch::kFloat32);
        auto pflat = pool.view({pool_size, -1});
        for (size_t k = 0; k < keep.size(); ++k) {
          const int64_t n = seen[h] + static_cast<int64_t>(k);  // reservoir sampling
          int64_t slot = n < pool_size ? n : static_cast<int64_t>(rng() % static_cast<uint64_t>(n + 1));
          if (slot < pool_size) pflat[slot].copy_(rows[static_cast<int64_t>(k)].to(torch::kFloat32));
        }
      }
      seen[h] += static_cast<int64_t>(keep.size());
      if (!ref.mean.count(h)) {
        std::vector<int64_t> fs(feat.begin(), feat.end());
        ref.mean[h] = torch::zeros(fs, torch::kFloat64);
      }
    });
  }
  model::StreamOptions opt;
  opt.streams = streams;
  opt.window = window;
  opt.hooks = [&](int64_t) { return &hs; };
  model::segmented_token_bits(m, text, opt);
  for (const auto& h : hooks) {
    CCC_CHECK(seen[h] > 0, "reference text: no positions seen at ", h);
    ref.mean[h] = (sum[h] / static_cast<double>(seen[h])).view(ref.mean[h].sizes()).to(torch::kFloat32);
    if (mode == Mode::kResample && seen[h] < pool_size)
      ref.pool[h] = ref.pool[h].narrow(0, 0, seen[h]).clone();
    ref.positions = std::max(ref.positions, seen[h]);
  }
  return ref;
}

void install_ablation(model::HookSet& hooks, const model::ModelConfig& cfg,
                      const std::vector<std::vector<Component>>& per_row, int64_t rows_per, Mode mode,
                      const Reference* ref, uint64_t seed) {
  CCC_CHECK(!per_row.empty(), "ablation: no circuit");
  CCC_CHECK(rows_per > 0 || per_row.size() == 1, "ablation: several circuits need rows_per > 0");
  CCC_CHECK(mode == Mode::kZero || ref != nullptr, "ablation: mode ", to_string(mode), " needs a reference");
  const int64_t R = rows_per > 0 ? static_cast<int64_t>(per_row.size()) * rows_per : 1;
  // one mask per hook
  std::map<std::string, torch::Tensor> masks;
  std::map<std::string, Component> sample;
  for (size_t i = 0; i < per_row.size(); ++i)
    for (const auto& c : per_row[i]) {
      const std::string h = c.hook();
      if (!masks.count(h)) {
        masks[h] = torch::zeros(mask_shape(c, cfg, R), torch::kBool);
        sample.emplace(h, c);
      }
      auto rows = rows_per > 0 ? masks[h].narrow(0, static_cast<int64_t>(i) * rows_per, rows_per) : masks[h];
      if (c.index >= 0) rows.select(2, c.index).fill_(true);
      else rows.fill_(true);
    }
  for (auto& [h, mask] : masks) {
    if (mode == Mode::kZero) {
      hooks.patch(h, mask, torch::zeros({}));
    } else if (mode == Mode::kMean) {
      CCC_CHECK(ref->mean.count(h), "ablation: the reference has no mean of ", h);
      hooks.patch(h, mask, ref->mean.at(h));
    } else if (mode == Mode::kCorrupt) {
      CCC_CHECK(ref->at.count(h), "ablation: the corrupt run did not record ", h);
      const torch::Tensor act = ref->at.at(h), m = mask;
      const int64_t per = rows_per;
      hooks.edit(h, [act, m, per](const torch::Tensor& x, const model::HookContext& ctx) {
        return torch::where(m, values_at(act, x, ctx, per), x);
      });
    } else {
      CCC_CHECK(ref->pool.count(h), "ablation: the reference has no resample pool of ", h);
      const torch::Tensor pool = ref->pool.at(h);
      const uint64_t hook_salt = std::hash<std::string>{}(h);
      const torch::Tensor m = mask;
      const int64_t per = rows_per;
      hooks.edit(h, [pool, hook_salt, m, per, seed](const torch::Tensor& x, const model::HookContext& ctx) {
        CCC_CHECK(ctx.run != nullptr, "resample ablation at ", ctx.name, ": the scorer gave no run record");
        const int64_t b = x.size(0), p = x.size(1), P = pool.size(0);
        std::vector<int64_t> idx(b * p);
        for (int64_t r = 0; r < b; ++r) {
          // copies of one stream in a sweep draw the same positions: their Δbits are paired
          const int64_t stream = per > 0 ? ctx.run->stream[r] % per : ctx.run->stream[r];
          for (int64_t i = 0; i < p; ++i) {
            const int64_t pos = ctx.run->position[r * p + i];
            idx[r * p + i] = static_cast<int64_t>(
                mix(seed ^ mix(hook_salt ^ mix(static_cast<uint64_t>(stream) * 0x100000001B3ULL ^
                                                static_cast<uint64_t>(pos + 1)))) % static_cast<uint64_t>(P));
          }
        }
        auto drawn = pool.index_select(0, torch::tensor(idx, torch::kInt64)).to(x.dtype());
        std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
        drawn = drawn.view(shape);
        return torch::where(m, drawn, x);
      });
    }
  }
}

}  // namespace ccc::circuits
