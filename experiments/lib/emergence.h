#pragma once
// The `emergence` experiment: does an ability appear when a circuit starts winning? Over a series of models
// — the checkpoints of one training run (step-N) or the sizes of a family — every point is measured on the
// same seeded probe sequences [BOS, r, r] (r = L random printable bytes):
//   ability   bits_repeated (bits per byte of the second copy), bits_fresh (the first copy), the ICL score of
//             Olsson et al. on held-out text (circuits::measure_icl);
//   circuit   the induction circuit — induction heads and the previous-token heads below them, found by the
//             head detectors at the series' last point (fixed before the series is scanned; a size series
//             finds each size's own) —: the induction heads' induction score, the Δbits per byte of
//             mean-ablating the whole circuit on the second copy, and its winner share there (per token, the
//             component — any head or MLP — whose mean ablation alone costs most wins, as in the competition
//             experiment; the reference of every mean is the probes themselves).
// A change point is fitted to each series: the two-segment model (a smooth monotone curve plus one jump
// between two neighbouring points) against the smooth-improvement null (the smooth curve alone): the
// two-segment model must beat the null by more BIC than 97.5% of residual-bootstrap draws from the smooth
// fit give, and its jump must be at least a quarter of the series' range. Locations and the lag between
// them get CIs from a bootstrap over the probe sequences (the same probes resampled at every point).

#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "experiments/lib/result.h"
#include "model/formats/loader.h"

namespace ccc::experiments {

/// A fitted change point of y(x) (x increasing).
struct ChangePoint {
  bool found = false;            ///< the two-segment model beats the smooth null by the stated criterion
  int64_t index = -1;            ///< the first point after the jump (1 .. n−1); −1 when the series is too short
  double x = std::numeric_limits<double>::quiet_NaN();         ///< x of that point (the change step)
  double x_before = std::numeric_limits<double>::quiet_NaN();  ///< x of the point before it
  double jump = 0;               ///< the fitted jump (signed, in y's unit)
  double range = 0;              ///< max(y) − min(y)
  double bic_gain = 0;           ///< BIC(smooth) − BIC(two-segment): > 0 favours the jump
  double null_gain_high = 0;     ///< 97.5th percentile of bic_gain on residual-bootstrap draws of the smooth fit
  std::vector<double> null_gains;
  std::string smooth;            ///< the smooth fit's form, e.g. "a + b*exp(-(x-x0)/300)"
};

/// Points below which no change point is fitted (the two-segment model has 5 parameters).
inline constexpr size_t kMinChangePoints = 6;
/// The jump must be at least this share of the series' range to count as abrupt.
inline constexpr double kMinJumpShare = 0.25;

/// Fits y(x) as described above; `null_draws` residual-bootstrap draws (seeded) calibrate the BIC gain.
/// Fewer than kMinChangePoints points: index −1, found false. Throws ccc::Error on sizes that differ or x not
/// strictly increasing.
ChangePoint fit_change_point(const std::vector<double>& x, const std::vector<double>& y, int64_t null_draws, uint64_t seed);
/// The location only (the two-segment model's best jump index), for bootstraps; −1 for a short series.
int64_t change_index(const std::vector<double>& x, const std::vector<double>& y);

/// One point of a series, with its per-probe values (index = probe).
struct EmergencePoint {
  std::string model;    ///< directory it was loaded from
  std::string fingerprint;
  double x = 0;         ///< training step, or non-embedding parameters for a size series
  double induction_score = 0, max_prev_token = 0, max_induction = 0;
  double bits_repeated = 0, bits_fresh = 0;   ///< bits per byte, means over probes
  double circuit_delta_bits = 0;              ///< bits per byte of the second copy, induction components ablated
  double winner_share = 0;                    ///< share of second-copy tokens the induction components win
  double icl_score = std::numeric_limits<double>::quiet_NaN();  ///< NaN when no held-out text was given
  std::vector<double> p_induction, p_repeated, p_fresh, p_delta, p_winner;
};

/// A series to measure: checkpoints of one run (kind "checkpoints", x = step) or models of several sizes
/// (kind "sizes", x = non-embedding parameters).
struct EmergenceSeriesInput {
  std::string name, kind;
  std::vector<std::pair<double, std::string>> points;  ///< (x, model directory), x increasing
};

/// The checkpoints of a training run directory: RUN/checkpoints/step-N, in step order. Throws ccc::Error
/// naming the directory when it holds none.
EmergenceSeriesInput checkpoint_series(const std::string& run_dir);
/// A size series of byte-level models (x = non-embedding parameters, sorted).
EmergenceSeriesInput size_series(const std::string& name, const std::vector<std::string>& model_dirs);

struct EmergenceSeries {
  std::string name, kind;
  std::vector<std::string> components;  ///< the circuit's heads ("1.2+0.3"; one entry per point for a size series)
  std::vector<EmergencePoint> points;
  ChangePoint ability, circuit;         ///< of bits_repeated and of induction_score
  /// bootstrap over probes (empty when no change point can be fitted)
  std::vector<double> boot_ability_x, boot_circuit_x, boot_lag;
  double spacing = 0;                   ///< median distance between neighbouring points
};

struct EmergenceOptions {
  int64_t probes = 32, len = 50;  ///< probe sequences [BOS, r, r] with |r| = len
  uint64_t seed = 0;
  int64_t resamples = 1000;       ///< bootstrap over probes
  int64_t null_draws = 200;       ///< residual-bootstrap draws of the smooth null
  std::vector<std::pair<std::string, std::string>> icl_sources;  ///< held-out texts of the ICL score (none: NaN)
  int64_t icl_windows = 48;
  std::function<void(const std::string& phase, int64_t done, int64_t total)> progress;
};

/// The induction circuit of a model by the head detectors on the probes: the induction heads (score at least
/// half the best head's; at least the best head) and the previous-token heads that can feed them (score at
/// least half the best, in a layer below the deepest induction head). Index layer·n_heads + head.
struct InductionCircuit {
  std::vector<int64_t> induction, prev_token;
  std::vector<int64_t> all() const;
  std::vector<std::string> names(int64_t n_heads) const;  ///< "1.2", ...
};
InductionCircuit find_induction_circuit(model::LoadedModel& m, const EmergenceOptions& o);

/// Measures one model on the probes: the induction score is the mean over `c.induction`; the ablation and
/// the winner share take the whole circuit (c.all()).
EmergencePoint measure_emergence_point(model::LoadedModel& m, const InductionCircuit& c, const EmergenceOptions& o);

/// Runs the experiment on every series; the first series with at least kMinChangePoints points is the
/// primary one (its measurements carry the plain names, the others a _<series> suffix). The caller fills
/// model / input identity.
Result run_emergence(const std::vector<EmergenceSeriesInput>& series, const EmergenceOptions& o,
                     std::vector<EmergenceSeries>* detail = nullptr);

}  // namespace ccc::experiments
