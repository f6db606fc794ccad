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

/// The name of a site in block `layer` (TransformerLens' get_act_name): "blocks.{layer}.{site}", e.g.
/// hook_name(3, kZ) == hook_name(3, "attn.hook_z") == "blocks.3.attn.hook_z". Every hook name of a block is
/// built here.
std::string hook_name(int64_t layer, BlockSite site);
std::string hook_name(int64_t layer, const std::string& site);

/// What the run around one forward call knows about its batch rows (optional; borrowed for the call).
/// Scorers and the compressor fill it; a hook reads it through HookContext::run. Positions are those of
/// the call's tokens, row-major: index r * pos + i for row r, position i.
struct RunInfo {
  int64_t batch = 0, pos = 0;          ///< shape of the call's tokens
  std::vector<int64_t> stream;         ///< [batch] stream / document / window id of each row
  std::vector<uint8_t> live;           ///< [batch] 0 where the row is padding this call (a finished stream)
  std::vector<int64_t> position;       ///< [batch * pos] absolute position of the token in its stream (BOS = 0)
  std::vector<int64_t> byte_offset;    ///< [batch * pos] offset in the input of the token's first byte; −1 for BOS and padding
  int64_t position_at(int64_t row, int64_t i) const { return position[row * pos + i]; }
  int64_t byte_offset_at(int64_t row, int64_t i) const { return byte_offset[row * pos + i]; }
  /// Empty record for a [batch, pos] call (all rows live, every position and offset −1).
  static RunInfo empty(int64_t batch, int64_t pos);
};

/// What a hook function is told about the activation it sees.
struct HookContext {
  const std::string& name;  ///< full TransformerLens name, e.g. "blocks.3.attn.hook_z"
  int layer;                ///< block index, -1 for global sites
  int64_t pos_offset;       ///< model position of index 0 along the pos dimension (cache->len on the KV-cache path)
  const std::vector<int64_t>* rows;  ///< batch rows this call sees (nullptr = all rows, in order)
  const RunInfo* run = nullptr;      ///< the caller's record of the rows (nullptr when it gave none)
  /// hook_attn_scores / hook_pattern only: model position of the key behind each k_pos column (−1 = a slot
  /// not yet filled, masked). Full path: 0..T−1 (or the cached positions); KV-cache decode path: one column
  /// per cache slot, so on a rolling cache column s holds the latest position p ≡ s (mod W).
  const std::vector<int64_t>* key_pos = nullptr;
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
  /// One editor for a whole sweep, O(batch) per site: x = where(mask, values, x) in one pass. `mask` (bool)
  /// and `values` broadcast against the activation, e.g. for hook_z [b, p, H, dh] a mask [b, 1, H, 1] with
  /// mask[r, 0, h_r, 0] = true zeroes head h_r in row r (values = a 0-dim 0). On the decode path the pos
  /// dimension is 1, so masks and values must broadcast over it (size 1 there).
  void patch(const std::string& pattern, torch::Tensor mask, torch::Tensor values);
  /// Keeps a reference to each matching activation (the tensor itself, no copy: the model never writes
  /// an activation in place after its hook). Each forward replaces the previous value of a name.
  void cache(const std::string& pattern);
  /// As cache(), and keeps the activation on the autograd graph with its gradient retained: after a
  /// forward in grad mode and `total_bits(...).backward()`, grad(name) is d total / d activation. An
  /// activation that does not require grad (frozen weights) is made a leaf that does.
  void cache_grad(const std::string& pattern);
  /// The gradient of a cache_grad activation after backward (undefined before).
  torch::Tensor grad(const std::string& name) const;
  const std::map<std::string, torch::Tensor>& cached() const { return cache_; }
  void clear_cache() { cache_.clear(); }
  bool empty() const { return entries_.empty(); }

  /// Resolves patterns against a model's registry; an exact name that the model lacks is an error.
  void bind(const HookRegistry& reg);
  bool active(int slot) const { return slot < static_cast<int>(active_.size()) && active_[slot]; }
  /// Runs the entries bound to `slot` on x. Call only when active(slot).
  torch::Tensor run(int slot, torch::Tensor x, int layer, int64_t pos_offset, const RunInfo* info = nullptr,
                    const std::vector<int64_t>* key_pos = nullptr);

 private:
  enum class Kind { kObserve, kEdit, kPatch, kCache, kCacheGrad };
  struct Entry {
    Entry(std::string p, Kind k) : pattern(std::move(p)), kind(k) {}
    std::string pattern;
    Kind kind;
    Observer observer;
    Editor editor;
    std::vector<int64_t> rows;
    torch::Tensor row_index;
    torch::Tensor mask, values;  // kPatch
  };
  std::vector<Entry> entries_;
  const HookRegistry* bound_ = nullptr;
  size_t bound_entries_ = 0;
  std::vector<char> active_;
  std::vector<std::vector<int>> by_slot_;
  std::map<std::string, torch::Tensor> cache_;
};

/// Applies hooks at a site: `x = hook(hooks, slot, x, ...)`. One branch when nobody asked.
inline torch::Tensor hook(HookSet* hooks, int slot, torch::Tensor x, int layer, int64_t pos_offset,
                          const RunInfo* info = nullptr) {
  if (hooks == nullptr || !hooks->active(slot)) return x;
  return hooks->run(slot, std::move(x), layer, pos_offset, info);
}

/// True when `name` matches `pattern` ('*' matches any run of characters).
bool glob_match(const std::string& pattern, const std::string& name);

}  // namespace ccc::model
