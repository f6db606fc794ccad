#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <random>
#include <string>

#include "circuits/head_detectors.h"
#include "experiments/lib/emergence.h"
#include "model/base/error.h"
#include "model/formats/loader.h"
#include "tests/support/test_support.h"

namespace fs = std::filesystem;

namespace ccc::experiments {
namespace {

std::vector<double> steps(size_t n) {
  std::vector<double> x;
  for (size_t i = 0; i < n; ++i) x.push_back(100.0 * static_cast<double>(i + 1));
  return x;
}

// A step planted between points 11 and 12 of a slowly improving curve with noise is found there; smooth
// curves of the null's kinds and one outside them (a logistic far wider than the spacing) are not.
TEST(Emergence, ChangePointFitFindsAPlantedStepAndNoneOnSmoothCurves) {
  const auto x = steps(24);
  std::mt19937_64 rng(7);
  std::normal_distribution<double> noise(0.0, 0.02);
  std::vector<double> step_y, exp_y, pow_y, logistic_y;
  for (size_t i = 0; i < x.size(); ++i) {
    step_y.push_back(6.0 - 0.0005 * x[i] - (i >= 12 ? 3.0 : 0.0) + noise(rng));
    exp_y.push_back(2.0 + 4.0 * std::exp(-x[i] / 700.0) + noise(rng));
    pow_y.push_back(1.0 + 3.0 * std::pow(x[i], -0.5) * 10.0 + noise(rng));
    logistic_y.push_back(2.0 + 3.0 / (1.0 + std::exp((x[i] - 1200.0) / 600.0)) + noise(rng));
  }
  const auto cp = fit_change_point(x, step_y, 100, 1);
  EXPECT_TRUE(cp.found);
  EXPECT_EQ(cp.index, 12);
  EXPECT_DOUBLE_EQ(cp.x, 1300.0);
  EXPECT_DOUBLE_EQ(cp.x_before, 1200.0);
  EXPECT_NEAR(cp.jump, -3.0, 0.1);
  EXPECT_GT(cp.bic_gain, cp.null_gain_high);
  EXPECT_EQ(change_index(x, step_y), 12);
  for (const auto* y : {&exp_y, &pow_y, &logistic_y}) {
    const auto s = fit_change_point(x, *y, 100, 1);
    EXPECT_FALSE(s.found) << "jump " << s.jump << " of range " << s.range << ", BIC gain " << s.bic_gain << " vs null "
                          << s.null_gain_high << " (" << s.smooth << ")";
  }
  // noise-free and exactly smooth: no jump at all
  std::vector<double> exact;
  for (double v : x) exact.push_back(1.0 + 2.0 * std::exp(-v / 500.0));
  EXPECT_FALSE(fit_change_point(x, exact, 50, 1).found);
  // too short: not fitted; malformed: refused
  EXPECT_EQ(fit_change_point(steps(5), {1, 2, 3, 4, 5}, 10, 1).index, -1);
  EXPECT_THROW(fit_change_point({1, 1, 2, 3, 4, 5}, {1, 2, 3, 4, 5, 6}, 10, 1), Error);
  EXPECT_THROW(fit_change_point(steps(6), {1, 2, 3}, 10, 1), Error);
}

// A checkpoint series with a planted phase change: the organism's step-500 checkpoint (no induction yet)
// at steps 100..500 and its step-3000 checkpoint (the induction circuit formed) at 600..900. The experiment
// finds the ability's and the circuit's change between 500 and 600 with no lag, and the same model
// throughout gives no change point. The per-point figures equal the head detector's on the same probes.
TEST(Emergence, FindsAPlantedPhaseChangeOnTheOrganismsCheckpoints) {
  const std::string org = std::string(CCC_SOURCE_DIR) + "/data/models/ccc-attn2/checkpoints/";
  const fs::path dir = fs::temp_directory_path() / ("ccc_emergence_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  auto make_run = [&](const std::string& name, int planted_at) {
    const fs::path run = dir / name;
    fs::create_directories(run / "checkpoints");
    for (int s = 1; s <= 9; ++s)
      fs::create_directory_symlink(fs::absolute(org + (s >= planted_at ? "step-3000" : "step-500")),
                                   run / "checkpoints" / ("step-" + std::to_string(100 * s)));
    return run.string();
  };
  EmergenceOptions o;
  o.probes = 8;
  o.len = 30;
  o.resamples = 100;
  o.null_draws = 50;
  std::vector<EmergenceSeries> d;
  const Result r = run_emergence({checkpoint_series(make_run("planted", 6)), checkpoint_series(make_run("flat", 100))}, o, &d);
  ASSERT_EQ(d.size(), 2u);
  const auto& s = d[0];
  ASSERT_EQ(s.points.size(), 9u);
  EXPECT_TRUE(s.ability.found);
  EXPECT_TRUE(s.circuit.found);
  EXPECT_DOUBLE_EQ(s.ability.x, 600.0);
  EXPECT_DOUBLE_EQ(s.circuit.x, 600.0);
  EXPECT_LT(s.ability.jump, -2.0);  // the second copy gets bits cheaper by more than 2 bits per byte
  EXPECT_GT(s.circuit.jump, 0.5);
  EXPECT_EQ(r.measurements[0].name, "ability_change_step");
  EXPECT_EQ(r.measurements[2].name, "lag_steps");
  EXPECT_DOUBLE_EQ(r.measurements[2].value, 0.0);
  EXPECT_DOUBLE_EQ(r.measurements[2].ci_low, 0.0);
  EXPECT_DOUBLE_EQ(r.measurements[2].ci_high, 0.0);
  EXPECT_EQ(to_string(r.verdict), "supported");
  EXPECT_EQ(s.components.front(), "1.2");  // the organism's induction head by the independent detector
  // the same model at every step: nothing changes, no change point
  EXPECT_FALSE(d[1].ability.found);
  EXPECT_FALSE(d[1].circuit.found);
  // every point against the head detector on the same probes (same seed, length and count)
  auto m = model::load_model(org + "step-3000");
  const auto hs = circuits::head_scores(m, o.len, o.probes, o.seed);
  const auto& last = s.points.back();
  EXPECT_NEAR(last.bits_repeated, hs.second_half_bits, 1e-9);
  EXPECT_NEAR(last.bits_fresh, hs.first_half_bits, 1e-9);
  const auto c = find_induction_circuit(m, o);
  double ind = 0;
  for (int64_t k : c.induction) ind += hs.induction[static_cast<size_t>(k)] / static_cast<double>(c.induction.size());
  EXPECT_NEAR(last.induction_score, ind, 1e-9);
  EXPECT_GT(last.circuit_delta_bits, 3.0);  // ablating the circuit undoes the copy
  EXPECT_GT(last.winner_share, 0.5);
  // reproducible
  std::vector<EmergenceSeries> d2;
  const Result r2 = run_emergence({checkpoint_series(make_run("planted2", 6))}, o, &d2);
  EXPECT_EQ(r2.measurements[0].to_json().dump(), r.measurements[0].to_json().dump());
  EXPECT_EQ(d2[0].points.back().winner_share, last.winner_share);
  fs::remove_all(dir);
  EXPECT_THROW(checkpoint_series(dir.string()), Error);
}

}  // namespace
}  // namespace ccc::experiments
