#include "circuits/patching.h"

#include <string>

#include "model/base/error.h"

namespace ccc::circuits {

namespace {

using Kind = Component::Kind;

std::string z_hook(int64_t l) { return model::hook_name(l, model::kZ); }
std::string mlp_hook(int64_t l) { return model::hook_name(l, model::kMlpOut); }

bool is_head_or_attn(const Component& c) { return c.kind == Kind::kHead || c.kind == Kind::kAttn; }

// Heads of layer l whose hook_z stays live in the frozen run (all of them: -1; none: empty).
std::vector<int64_t> live_heads(int64_t l, const Component& s, const std::optional<Component>& r) {
  std::vector<int64_t> live;
  for (const Component* c : {&s, r ? &*r : nullptr}) {
    if (c == nullptr || c->layer != l) continue;
    if (c->kind == Kind::kAttn) return {-1};
    if (c->kind == Kind::kHead) live.push_back(c->index);
  }
  return live;
}

bool mlp_live(int64_t l, const Component& s, const std::optional<Component>& r) {
  for (const Component* c : {&s, r ? &*r : nullptr})
    if (c != nullptr && c->layer == l && (c->kind == Kind::kMlp || c->kind == Kind::kNeuron)) return true;
  return false;
}

// x with the heads `keep` of hook_z (dim 2) taken from x and every other head from `from`.
torch::Tensor heads_from(const torch::Tensor& from, const torch::Tensor& x, const std::vector<int64_t>& keep) {
  if (keep.empty()) return from;
  auto mask = torch::zeros({1, 1, x.size(2), 1}, torch::kBool);
  for (int64_t h : keep) mask[0][0][h][0] = true;
  return torch::where(mask, x, from);
}

}  // namespace

void check_path(const Component& sender, const std::optional<Component>& receiver, const model::ModelConfig& cfg) {
  if (!receiver) return;
  const auto& r = *receiver;
  CCC_CHECK(r.kind != Kind::kNeuron, "receiver '", r.name(), "': a receiver is a head (L.H), attnL, mlpL or logits");
  CCC_CHECK(!(r == sender), "receiver '", r.name(), "' is the sender itself");
  const bool downstream = r.layer > sender.layer ||
                          (r.layer == sender.layer && r.kind == Kind::kMlp && is_head_or_attn(sender) && !cfg.parallel_attn);
  CCC_CHECK(downstream, "receiver '", r.name(), "' is not downstream of sender '", sender.name(),
            "' (a later layer, or the MLP of the sender's layer reading a head)");
}

PathBits path_patch_bits(model::LoadedModel& m, std::string_view text, const model::StreamOptions& opt,
                         const Component& sender, const std::optional<Component>& receiver, Mode mode,
                         const Reference* ref, uint64_t seed, const std::function<void(model::HookSet&)>& observe) {
  const auto& cfg = m.config;
  check_path(sender, receiver, cfg);
  // clean: every head's z and every MLP's output, by reference, replaced each chunk
  model::HookSet clean;
  clean.cache("blocks.*.attn.hook_z");
  if (!cfg.attn_only) clean.cache("blocks.*.hook_mlp_out");
  if (observe) observe(clean);
  const auto& rec = clean.cached();
  auto clean_of = [&rec](const std::string& name) -> const torch::Tensor& {
    auto it = rec.find(name);
    CCC_CHECK(it != rec.end(), "path patching: the clean run did not record ", name);
    return it->second;
  };
  // frozen: everything but the sender and the receiver at its clean value, then the sender ablated
  model::HookSet frozen;
  for (int64_t l = 0; l < cfg.n_layers; ++l) {
    const auto keep = live_heads(l, sender, receiver);
    if (keep != std::vector<int64_t>{-1}) {
      const std::string h = z_hook(l);
      frozen.edit(h, [h, keep, clean_of](const torch::Tensor& x, const model::HookContext&) {
        return heads_from(clean_of(h), x, keep);
      });
    }
    if (!cfg.attn_only && !mlp_live(l, sender, receiver)) {
      const std::string h = mlp_hook(l);
      frozen.edit(h, [h, clean_of](const torch::Tensor&, const model::HookContext&) { return clean_of(h); });
    }
  }
  install_ablation(frozen, cfg, {{sender}}, 0, mode, ref, seed);
  model::HookSet patched;
  if (receiver) {
    const std::string h = receiver->hook();
    frozen.cache(h);
    if (receiver->kind == Kind::kHead) {
      const std::vector<int64_t> keep = {receiver->index};
      patched.edit(h, [h, keep, &frozen](const torch::Tensor& x, const model::HookContext&) {
        return heads_from(x, frozen.cached().at(h), keep);
      });
    } else {
      patched.edit(h, [h, &frozen](const torch::Tensor&, const model::HookContext&) { return frozen.cached().at(h); });
    }
  }
  std::vector<model::Branch> branches = {{0, 1, &clean}, {0, 1, &frozen}};
  if (receiver) branches.push_back({0, 1, &patched});
  const auto bits = model::segmented_branched_bits(m, text, opt, branches, /*clean=*/false);
  PathBits out;
  for (const auto& s : bits.branches.front()) out.clean.insert(out.clean.end(), s.begin(), s.end());
  for (const auto& s : bits.branches.back()) out.patched.insert(out.patched.end(), s.begin(), s.end());
  return out;
}

}  // namespace ccc::circuits
