#include "model/core/hooks.h"

#include "model/base/error.h"

namespace ccc::model {

const char* const kBlockSiteNames[kNumBlockSites] = {
    "hook_resid_pre",      "ln1.hook_scale",     "ln1.hook_normalized", "attn.hook_q",
    "attn.hook_k",         "attn.hook_v",        "attn.hook_rot_q",     "attn.hook_rot_k",
    "attn.hook_attn_scores", "attn.hook_pattern", "attn.hook_z",        "attn.hook_result",
    "hook_attn_out",       "hook_resid_mid",     "ln2.hook_scale",      "ln2.hook_normalized",
    "mlp.hook_pre",        "mlp.hook_pre_linear", "mlp.hook_post",      "hook_mlp_out",
    "hook_resid_post"};
const char* const kGlobalSiteNames[kNumGlobalSites] = {"hook_embed", "hook_pos_embed", "ln_final.hook_scale",
                                                       "ln_final.hook_normalized", "unembed.hook_out"};

std::string hook_name(int64_t layer, const std::string& site) { return "blocks." + std::to_string(layer) + "." + site; }

std::string hook_name(int64_t layer, BlockSite site) { return hook_name(layer, std::string(kBlockSiteNames[site])); }

bool glob_match(const std::string& pattern, const std::string& name) {
  // Iterative wildcard match with single backtrack point (linear in practice).
  size_t p = 0, n = 0, star = std::string::npos, mark = 0;
  while (n < name.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = n;
    } else if (p < pattern.size() && pattern[p] == name[n]) {
      ++p;
      ++n;
    } else if (star != std::string::npos) {
      p = star + 1;
      n = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

RunInfo RunInfo::empty(int64_t batch, int64_t pos) {
  RunInfo r;
  r.batch = batch;
  r.pos = pos;
  r.stream.assign(batch, -1);
  r.live.assign(batch, 1);
  r.position.assign(batch * pos, -1);
  r.byte_offset.assign(batch * pos, -1);
  return r;
}

void HookSet::observe(const std::string& pattern, Observer fn) {
  Entry e{pattern, Kind::kObserve};
  e.observer = std::move(fn);
  entries_.push_back(std::move(e));
  bound_ = nullptr;
}

void HookSet::edit(const std::string& pattern, Editor fn, std::vector<int64_t> rows) {
  torch::Tensor idx;
  if (!rows.empty()) idx = torch::tensor(rows, torch::kInt64);
  Entry e{pattern, Kind::kEdit};
  e.editor = std::move(fn);
  e.rows = std::move(rows);
  e.row_index = idx;
  entries_.push_back(std::move(e));
  bound_ = nullptr;
}

void HookSet::patch(const std::string& pattern, torch::Tensor mask, torch::Tensor values) {
  CCC_CHECK(mask.scalar_type() == torch::kBool, "hooks: patch mask for '", pattern, "' must be bool");
  Entry e{pattern, Kind::kPatch};
  e.mask = std::move(mask);
  e.values = std::move(values);
  entries_.push_back(std::move(e));
  bound_ = nullptr;
}

void HookSet::cache(const std::string& pattern) {
  entries_.push_back(Entry{pattern, Kind::kCache});
  bound_ = nullptr;
}

void HookSet::cache_grad(const std::string& pattern) {
  entries_.push_back(Entry{pattern, Kind::kCacheGrad});
  bound_ = nullptr;
}

torch::Tensor HookSet::grad(const std::string& name) const {
  auto it = cache_.find(name);
  CCC_CHECK(it != cache_.end(), "hooks: no cached activation named '", name, "'");
  return it->second.grad();
}

void HookSet::bind(const HookRegistry& reg) {
  if (bound_ == &reg && bound_entries_ == entries_.size()) return;
  active_.assign(reg.size(), 0);
  by_slot_.assign(reg.size(), {});
  for (int e = 0; e < static_cast<int>(entries_.size()); ++e) {
    const auto& pat = entries_[e].pattern;
    const bool wildcard = pat.find('*') != std::string::npos;
    bool any = false;
    for (int s = 0; s < reg.size(); ++s) {
      const auto& name = reg.names[s];
      if (name.empty()) continue;
      const bool hit = wildcard ? (!reg.opt_in[s] && glob_match(pat, name)) : pat == name;
      if (!hit) continue;
      by_slot_[s].push_back(e);
      active_[s] = 1;
      any = true;
    }
    CCC_CHECK(any || wildcard, "hooks: this model has no hook point named '", pat, "' (see `ccc hooks`)");
  }
  bound_ = &reg;
  bound_entries_ = entries_.size();
}

torch::Tensor HookSet::run(int slot, torch::Tensor x, int layer, int64_t pos_offset, const RunInfo* info,
                           const std::vector<int64_t>* key_pos) {
  const std::string& name = bound_->names[slot];
  for (int e : by_slot_[slot]) {
    Entry& entry = entries_[e];
    switch (entry.kind) {
      case Kind::kObserve:
        entry.observer(x, HookContext{name, layer, pos_offset, nullptr, info, key_pos});
        break;
      case Kind::kCache:
        cache_[name] = x;
        break;
      case Kind::kCacheGrad:
        if (x.requires_grad()) {
          x.retain_grad();
        } else {
          x = x.detach().requires_grad_(true);
        }
        cache_[name] = x;
        break;
      case Kind::kPatch: {
        auto y = torch::where(entry.mask, entry.values.to(x.dtype()), x);
        CCC_CHECK(y.sizes() == x.sizes(), "hooks: patch at ", name, " broadcasts to ", y.sizes(), ", expected ",
                  x.sizes());
        x = y;
        break;
      }
      case Kind::kEdit: {
        if (entry.rows.empty()) {
          auto y = entry.editor(x, HookContext{name, layer, pos_offset, nullptr, info, key_pos});
          CCC_CHECK(y.sizes() == x.sizes(), "hooks: editor at ", name, " returned shape ", y.sizes(),
                    ", expected ", x.sizes());
          x = y.to(x.dtype());
        } else {
          for (int64_t r : entry.rows)
            CCC_CHECK(r >= 0 && r < x.size(0), "hooks: editor at ", name, " names batch row ", r,
                      " but the batch has ", x.size(0), " rows");
          auto sub = x.index_select(0, entry.row_index);
          auto y = entry.editor(sub, HookContext{name, layer, pos_offset, &entry.rows, info, key_pos});
          CCC_CHECK(y.sizes() == sub.sizes(), "hooks: editor at ", name, " returned shape ", y.sizes(),
                    ", expected ", sub.sizes());
          x = x.index_copy(0, entry.row_index, y.to(x.dtype()));
        }
        break;
      }
    }
  }
  return x;
}

}  // namespace ccc::model
