#include "model/hooks.h"

#include "model/error.h"

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

void HookSet::observe(const std::string& pattern, Observer fn) {
  entries_.push_back({pattern, Kind::kObserve, std::move(fn), nullptr, {}, {}});
  bound_ = nullptr;
}

void HookSet::edit(const std::string& pattern, Editor fn, std::vector<int64_t> rows) {
  torch::Tensor idx;
  if (!rows.empty()) idx = torch::tensor(rows, torch::kInt64);
  entries_.push_back({pattern, Kind::kEdit, nullptr, std::move(fn), std::move(rows), idx});
  bound_ = nullptr;
}

void HookSet::cache(const std::string& pattern) {
  entries_.push_back({pattern, Kind::kCache, nullptr, nullptr, {}, {}});
  bound_ = nullptr;
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

torch::Tensor HookSet::run(int slot, torch::Tensor x, int layer, int64_t pos_offset) {
  const std::string& name = bound_->names[slot];
  for (int e : by_slot_[slot]) {
    Entry& entry = entries_[e];
    switch (entry.kind) {
      case Kind::kObserve:
        entry.observer(x, HookContext{name, layer, pos_offset, nullptr});
        break;
      case Kind::kCache:
        cache_[name] = x;
        break;
      case Kind::kEdit: {
        if (entry.rows.empty()) {
          auto y = entry.editor(x, HookContext{name, layer, pos_offset, nullptr});
          CCC_CHECK(y.sizes() == x.sizes(), "hooks: editor at ", name, " returned shape ", y.sizes(),
                    ", expected ", x.sizes());
          x = y.to(x.dtype());
        } else {
          for (int64_t r : entry.rows)
            CCC_CHECK(r >= 0 && r < x.size(0), "hooks: editor at ", name, " names batch row ", r,
                      " but the batch has ", x.size(0), " rows");
          auto sub = x.index_select(0, entry.row_index);
          auto y = entry.editor(sub, HookContext{name, layer, pos_offset, &entry.rows});
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
