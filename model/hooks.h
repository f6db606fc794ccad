#pragma once
// Hook points with TransformerLens names. Hooks travel as an argument to forward (never global state).
//
//   HookSet hooks;
//   hooks.observe("blocks.0.attn.hook_pattern", [&](const torch::Tensor& t, const HookContext& c) {...});
//   hooks.edit("blocks.1.attn.hook_z", zero_head_3, /*rows=*/{0, 2});   // only batch rows 0 and 2
//   auto logits = model->forward(tokens, {&hooks});
//
// A site nobody asked for costs one branch on a bool array: no copy, no allocation, no string work.

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace ccc::model {

/// Hook sites inside block l (name "blocks.{l}." + kBlockSiteNames[site]).
enum BlockSite : int {
  kResidPre,
  kLn1Scale,
  kLn1Normalized,
  kQ,
  kK,
  kV,
  kRotQ,
  kRotK,
  kAttnScores,
  kPattern,
  kZ,
  kResult,
  kAttnOut,
  kResidMid,
  kLn2Scale,
  kLn2Normalized,
  kMlpPre,
  kMlpPreLinear,
  kMlpPost,
  kMlpOut,
  kResidPost,
  kNumBlockSites
};
/// Sites outside the blocks.
enum GlobalSite : int { kEmbed, kPosEmbed, kLnFinalScale, kLnFinalNormalized, kUnembedOut, kNumGlobalSites };

extern const char* const kBlockSiteNames[kNumBlockSites];
extern const char* const kGlobalSiteNames[kNumGlobalSites];

/// What a hook function is told about the activation it sees.
struct HookContext {
  const std::string& name;  ///< full TransformerLens name, e.g. "blocks.3.attn.hook_z"
  int layer;                ///< block index, -1 for global sites
  int64_t pos_offset;       ///< absolute position of index 0 along the pos dimension (KV-cache path)
  const std::vector<int64_t>* rows;  ///< batch rows this call sees (nullptr = all rows, in order)
};

/// Read-only callback. Must not modify the tensor in place.
using Observer = std::function<void(const torch::Tensor&, const HookContext&)>;
/// Returns a replacement of the same shape (may return its input unchanged).
using Editor = std::function<torch::Tensor(const torch::Tensor&, const HookContext&)>;

/// The list of hook names a model offers, indexed by slot (layer-major block sites, then global sites).
struct HookRegistry {
  int n_layers = 0;
  std::vector<std::string> names;  ///< "" where the model does not have that site
  std::vector<bool> opt_in;        ///< sites only matched by their exact name (hook_result)
  static int block_slot(int layer, int site) { return layer * kNumBlockSites + site; }
  int global_slot(int site) const { return n_layers * kNumBlockSites + site; }
  int size() const { return static_cast<int>(names.size()); }
};

/// A set of observers and editors, matched by exact name or a glob with '*' ("blocks.*.attn.hook_z").
/// Entries run in registration order at each site. Not thread-safe: one forward at a time per HookSet.
class HookSet {
 public:
  void observe(const std::string& pattern, Observer fn);
  /// `rows` restricts the editor to those batch rows (others pass through untouched); empty = all rows.
  void edit(const std::string& pattern, Editor fn, std::vector<int64_t> rows = {});
  /// Keeps a reference to each matching activation (the tensor itself, no copy: the model never writes
  /// an activation in place after its hook). Each forward replaces the previous value of a name.
  void cache(const std::string& pattern);
  const std::map<std::string, torch::Tensor>& cached() const { return cache_; }
  void clear_cache() { cache_.clear(); }
  bool empty() const { return entries_.empty(); }

  /// Resolves patterns against a model's registry; an exact name that the model lacks is an error.
  void bind(const HookRegistry& reg);
  bool active(int slot) const { return slot < static_cast<int>(active_.size()) && active_[slot]; }
  /// Runs the entries bound to `slot` on x. Call only when active(slot).
  torch::Tensor run(int slot, torch::Tensor x, int layer, int64_t pos_offset);

 private:
  enum class Kind { kObserve, kEdit, kCache };
  struct Entry {
    std::string pattern;
    Kind kind;
    Observer observer;
    Editor editor;
    std::vector<int64_t> rows;
    torch::Tensor row_index;
  };
  std::vector<Entry> entries_;
  const HookRegistry* bound_ = nullptr;
  size_t bound_entries_ = 0;
  std::vector<char> active_;
  std::vector<std::vector<int>> by_slot_;
  std::map<std::string, torch::Tensor> cache_;
};

/// Applies hooks at a site: `x = hook(hooks, slot, x, ...)`. One branch when nobody asked.
inline torch::Tensor hook(HookSet* hooks, int slot, torch::Tensor x, int layer, int64_t pos_offset) {
  if (hooks == nullptr || !hooks->active(slot)) return x;
  return hooks->run(slot, std::move(x), layer, pos_offset);
}

/// True when `name` matches `pattern` ('*' matches any run of characters).
bool glob_match(const std::string& pattern, const std::string& name);

}  // namespace ccc::model
