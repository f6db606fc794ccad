#include "analysis/positions.h"

#include <algorithm>
#include <numeric>

#include "analysis/labels.h"
#include "model/base/error.h"
#include "model/base/segments.h"

namespace ccc::analysis {

bool PositionSpec::empty() const {
  return features.empty() && regexes.empty() && labels.empty() && exclude_features.empty() &&
         exclude_regexes.empty() && exclude_labels.empty();
}

std::string PositionSpec::describe() const {
  if (empty()) return "all";
  std::string out;
  auto add = [&](const char* what, const std::vector<std::string>& v) {
    for (const auto& x : v) out += (out.empty() ? "" : ", ") + std::string(what) + " " + x;
  };
  add("feature", features);
  add("regex", regexes);
  add("labels", labels);
  if (features.empty() && regexes.empty() && labels.empty()) out = "all";
  add("excluding feature", exclude_features);
  add("excluding regex", exclude_regexes);
  add("excluding labels", exclude_labels);
  return out;
}

namespace {

// The bytes the selectors of one side (include or exclude) cover.
std::vector<uint8_t> covered(std::string_view text, const std::vector<std::string>& features,
                             const std::vector<std::string>& regexes, const std::vector<std::string>& labels,
                             const std::vector<int64_t>& offsets, const std::vector<Feature>& autos) {
  std::vector<uint8_t> on(text.size(), 0);
  auto merge = [&](const std::vector<uint8_t>& f) {
    for (size_t i = 0; i < on.size(); ++i) on[i] |= f[i];
  };
  for (const auto& name : features) {
    bool found = false;
    for (const auto& f : autos)
      if (f.name == name) {
        merge(f.on);
        found = true;
      }
    if (found) continue;
    std::string known;
    for (const auto& f : autos) known += (known.empty() ? "" : ", ") + f.name;
    CCC_FAIL("--positions ", name, ": not an automatic feature (", known, ")");
  }
  for (const auto& re : regexes) merge(regex_feature("regex", re, text, offsets).on);
  for (const auto& csv : labels)
    for (const auto& f : read_labels_csv(csv, offsets)) merge(f.on);
  return on;
}

}  // namespace

std::vector<uint8_t> byte_mask(std::string_view text, const PositionSpec& spec, int64_t streams, int64_t window) {
  const auto n = static_cast<int64_t>(text.size());
  if (spec.empty()) return std::vector<uint8_t>(text.size(), 1);
  std::vector<int64_t> offsets(text.size());
  std::iota(offsets.begin(), offsets.end(), int64_t{0});
  std::vector<Feature> autos;
  if (!spec.features.empty() || !spec.exclude_features.empty()) {
    const auto B = static_cast<uint64_t>(std::max<int64_t>(1, streams));
    std::vector<int64_t> stream_start(text.size(), 0);
    for (uint64_t s = 0; s < B; ++s) {
      const auto [a, b] = segment_range(static_cast<uint64_t>(n), B, s);
      for (uint64_t i = a; i < b; ++i) stream_start[i] = static_cast<int64_t>(a);
    }
    autos = auto_features(text, offsets, stream_start, window > 0 ? window : std::max<int64_t>(n, 1));
  }
  const bool any_include = !spec.features.empty() || !spec.regexes.empty() || !spec.labels.empty();
  std::vector<uint8_t> on = any_include ? covered(text, spec.features, spec.regexes, spec.labels, offsets, autos)
                                        : std::vector<uint8_t>(text.size(), 1);
  const auto off = covered(text, spec.exclude_features, spec.exclude_regexes, spec.exclude_labels, offsets, autos);
  for (size_t i = 0; i < on.size(); ++i) on[i] = on[i] && !off[i];
  return on;
}

}  // namespace ccc::analysis
