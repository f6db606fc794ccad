#pragma once
// Unit analysis of an activation dump: per-unit statistics, selectivity for labelled features (rank
// AUROC with ties averaged, standardised mean difference), and a class per unit — dead, monosemantic,
// polysemantic or unexplained — next to the same classification on circularly shifted labels (the null).
//
// Units: one per column of a 1-D hook (a neuron of mlp.hook_post, a residual dimension); one per head of a
// [n_heads, d_head] hook (hook_z / q / k / v: the L2 norm of the head's vector at that row). Attention
// patterns and scores are not units. BOS rows (byte_offset −1) are left out.
//
// Features are grouped into concepts: two features are related when they share a declared family or their
// labels correlate (phi ≥ `related_phi`); domain / corpus range labels are each their own concept and
// relate only to one another, by correlation (a corpus with the domain it lies in; "code" never with
// "prose"); the concepts are the connected groups of that relation.
// Minimum sample: a feature with fewer than `min_positives` positive (or negative) rows votes for no
// class (its AUROC is still reported), and a concept with fewer rows counts toward no coverage rule.
// A feature counts toward a class only when its AUROC passes and its standardised mean difference is
// ≥ min_smd (on a mostly silent unit AUROC also rewards a consistent order among near-zero values).
// Classes (thresholds in UnitOptions, defaults justified in README "Unit classes"):
//   dead          no row above `active_threshold`;
//   monosemantic  exactly one concept has a feature with AUROC ≥ mono_auroc, and the rows of that concept
//                 make up ≥ mono_coverage of the unit's top-k activations;
//   polysemantic  ≥ 2 concepts each have a feature with AUROC ≥ poly_auroc and together they cover ≥
//                 mono_coverage of the top-k rows, or the top-k rows split across ≥ 2 concepts each
//                 covering ≥ poly_share of them (and ≥ 2× its base rate) that together cover ≥
//                 mono_coverage;
//   unexplained   otherwise (selective concepts that do not explain the unit's top rows included).
// Selectivity downward (a unit silent on a feature) is reported beside the class: the feature with the
// lowest AUROC when AUROC ≤ 1 − mono_auroc and SMD ≤ −min_smd (`down_feature`).

#include <cstdint>
#include <functional>
#include <map>
#include <string_view>
#include <string>
#include <vector>

#include "analysis/activation_store.h"
#include "analysis/labels.h"

namespace ccc::analysis {

struct UnitOptions {
  std::vector<std::string> hooks;  ///< globs over the dump's hooks; empty = every unit-bearing hook
  double active_threshold = 0.0;   ///< a row is active when the unit's value exceeds this
  double mono_auroc = 0.9, mono_coverage = 0.8;
  double poly_auroc = 0.8, poly_share = 0.2;
  double min_smd = 0.5;            ///< a feature counts for a class only if it also shifts the mean this much
  double related_phi = 0.3;
  int64_t min_positives = 20;      ///< rows a feature needs on each side (positive, negative) to vote
  int64_t top_k = 100;                       ///< top activations kept per unit (coverage, report)
  int64_t null_shift = -1;                   ///< label shift of the null in rows (−1 = half the rows)
  int64_t memory_bytes = int64_t{256} << 20; ///< budget of the unit columns held at once
  int threads = 0;                           ///< 0 = hardware concurrency
  std::function<void(int64_t done, int64_t total)> progress;  ///< units analysed so far (optional)
  /// Units computed from a hook's rows rather than read from its columns (a dictionary's features): each
  /// gets the same statistics, classes and null as the dump's units, on the same rows and features; its
  /// results carry `name` as their hook.
  struct Derived {
    std::string name, hook;  ///< results' hook name; the dump hook read
    int64_t units = 0;
    std::function<RowMatrix(const RowMatrix& rows)> fn;  ///< [rows, hook width] -> [rows, units]
  };
  std::vector<Derived> derived;
};

/// A feature's declared family ("" = its own): letters, lines, numbers, domain:…
std::string feature_family(const std::string& name);

struct UnitResult {
  std::string hook;
  int64_t layer = -1;  ///< from "blocks.L." (−1 otherwise)
  int64_t unit = 0;
  double mean = 0, std = 0, frac_active = 0, kurtosis = 0, max = 0;
  std::vector<float> auroc, smd;        ///< per feature (NaN when a feature has no positive or no negative row)
  std::vector<float> coverage;          ///< per concept: fraction of the top-k rows in it
  std::vector<int64_t> top_rows;        ///< dump rows of the top activations, largest first
  std::vector<float> top_values;
  int top_feature = -1, second_feature = -1;  ///< best feature, best of another concept (−1 = none)
  int down_feature = -1;                ///< strongest downward selectivity (AUROC ≤ 1 − mono_auroc), −1 = none
  std::string cls, null_cls;
  float null_top_auroc = 0;             ///< best AUROC under shifted labels
  float null_top_coverage = 0;          ///< under shifted labels: share of the top-k rows in the best feature's concept
};

struct UnitsReport {
  std::vector<std::string> features;     ///< names
  std::vector<int> concept_of;           ///< per feature
  std::vector<std::string> concepts;     ///< names (features joined by '+')
  std::vector<double> base_rate;         ///< per concept, over the analysed rows
  int64_t rows = 0, null_shift = 0;
  std::vector<UnitResult> units;
};

/// Beyond the classes (neurons vs a dictionary's features): per hook, over its live units, the share whose
/// best feature's concept covers at least `coverage` of their top-k rows, the median of that coverage (each
/// also under the shifted-label null) and the median share of rows a unit is active on.
struct CoverageSummary {
  std::string hook;
  int64_t live = 0;
  double share_covered = 0, share_covered_null = 0, median_coverage = 0, median_coverage_null = 0, median_frac_active = 0;
};
std::vector<CoverageSummary> coverage_summary(const UnitsReport& rep, const std::vector<std::string>& hooks, double coverage);

/// The automatic features (analysis::auto_features) of a dump's rows over its source `text`: each row's
/// stream start from the dump's byte offsets, the window from its `window` attribute (the whole text when 0).
std::vector<Feature> dump_auto_features(const ActivationStore& store, std::string_view text);

/// Units per class ("monosemantic", "polysemantic", "unexplained", ...; `null`: the shifted-label classes).
std::map<std::string, int64_t> class_totals(const UnitsReport& rep, bool null = false);

/// Analyses the selected hooks of `store` against `features` (one label per dump row).
UnitsReport analyze_units(const ActivationStore& store, const std::vector<Feature>& features, const UnitOptions& o);

/// Estimated peak memory of analyze_units (and the labels before it), in bytes: per dump row the metadata
/// columns, one byte per feature label and the features' positive-row lists (8 bytes per feature, the worst
/// case), each worker's sort buffers; plus the column budget o.memory_bytes. Checked before anything is read.
uint64_t units_memory_bytes(int64_t rows, size_t n_features, const UnitOptions& o);

/// Exact AUROC of `values` for rows with `on` set vs without (Mann-Whitney U, ties averaged); NaN when a
/// class is empty. The reference implementation the fast path is tested against.
double auroc(const std::vector<float>& values, const std::vector<uint8_t>& on);

}  // namespace ccc::analysis
