#pragma once
// Position masks: which bytes of a text a metric counts (a task metric: bits where the behaviour is, not
// over the whole file). Selected by the automatic features of the unit analysis (`repeated`, `digit`, …),
// PCRE2 regexes and label CSVs; the model still reads the whole context, only the counting changes.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ccc::analysis {

struct PositionSpec {
  std::vector<std::string> features;  ///< automatic features (labels.h)
  std::vector<std::string> regexes;   ///< PCRE2: the bytes inside a match
  std::vector<std::string> labels;    ///< label CSV files (`feature,start,end` byte ranges): every range
  std::vector<std::string> exclude_features, exclude_regexes, exclude_labels;
  bool empty() const;
  /// One line naming the selection, e.g. "feature repeated, excluding regex \s"; "all" when empty.
  std::string describe() const;
};

/// One flag per byte of `text`: on when an include selector covers it (every byte when there is none) and
/// no exclude selector does. Features are computed as `ccc units` computes them, with the text split into
/// `streams` segments (the run's segmentation: `repeated` looks back within a segment) and `window` bytes
/// of look-back for `repeated` (a byte model's window; ≤ 0 = the whole segment). Throws ccc::Error naming
/// an unknown feature or a bad regex / labels file.
std::vector<uint8_t> byte_mask(std::string_view text, const PositionSpec& spec, int64_t streams, int64_t window);

}  // namespace ccc::analysis
