#include "analysis/units.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <numeric>
#include <thread>

#include "model/base/util.h"
#include "model/base/dist.h"
#include "model/base/error.h"
#include "model/core/hooks.h"

namespace ccc::analysis {

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

bool is_pattern_hook(const std::string& h) {
  return h.find("hook_pattern") != std::string::npos || h.find("hook_attn_scores") != std::string::npos;
}

int64_t layer_of(const std::string& h) {
  if (h.rfind("blocks.", 0) != 0) return -1;
  return std::strtoll(h.c_str() + 7, nullptr, 10);
}

bool is_range_label(const std::string& name) { return name.rfind("domain:", 0) == 0 || name.rfind("corpus:", 0) == 0; }

// Union-find over features: related = same declared family or |labels| correlated (phi >= threshold).
std::vector<int> group_features(const std::vector<Feature>& f, const std::vector<int64_t>& rows, double phi_min) {
  const size_t F = f.size();
  std::vector<int> parent(F);
  std::iota(parent.begin(), parent.end(), 0);
  std::function<int(int)> find = [&](int x) { return parent[x] == x ? x : parent[x] = find(parent[x]); };
  std::vector<double> p(F, 0);
  const double n = static_cast<double>(rows.size());
  for (size_t a = 0; a < F; ++a) {
    for (int64_t r : rows) p[a] += f[a].on[r];
    p[a] /= std::max(1.0, n);
  }
  for (size_t a = 0; a < F; ++a)
    for (size_t b = a + 1; b < F; ++b) {
      bool related = false;
      const std::string fa = feature_family(f[a].name), fb = feature_family(f[b].name);
      if (!fa.empty() && fa == fb) related = true;
      // range labels (domains, corpora) relate only to each other: their correlation with byte-level
      // features (quotes in JSON, parentheses in code) says where a feature is common, not that it is one
      // concept; among themselves a corpus correlates with the domain it lies in
      const bool ra = is_range_label(f[a].name), rb = is_range_label(f[b].name);
      if (!related && ra == rb && p[a] > 0 && p[a] < 1 && p[b] > 0 && p[b] < 1) {
        double both = 0;
        for (int64_t r : rows) both += f[a].on[r] & f[b].on[r];
        both /= n;
        const double phi = (both - p[a] * p[b]) / std::sqrt(p[a] * (1 - p[a]) * p[b] * (1 - p[b]));
        related = phi >= phi_min;
      }
      if (related) parent[find(static_cast<int>(a))] = find(static_cast<int>(b));
    }
  std::vector<int> id(F, -1), out(F);
  int next = 0;
  for (size_t a = 0; a < F; ++a) {
    const int root = find(static_cast<int>(a));
    if (id[root] < 0) id[root] = next++;
    out[a] = id[root];
  }
  return out;
}

// Row indices in ascending order of value, ties in index order: LSD radix sort of (value key, index)
// pairs on the 32-bit order-preserving key of each float (3 passes of 11 bits).
std::vector<int64_t> sort_order(const std::vector<float>& v) {
  const size_t n = v.size();
  std::vector<uint64_t> a(n), b(n);
  for (size_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, &v[i], 4);
    bits = (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
    a[i] = (static_cast<uint64_t>(bits) << 32) | static_cast<uint64_t>(i);
  }
  for (int shift = 32; shift < 64; shift += 11) {
    std::vector<size_t> count(2049, 0);
    for (uint64_t k : a) ++count[((k >> shift) & 2047) + 1];
    for (size_t d = 1; d < count.size(); ++d) count[d] += count[d - 1];
    for (uint64_t k : a) b[count[(k >> shift) & 2047]++] = k;
    a.swap(b);
  }
  std::vector<int64_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = static_cast<int64_t>(a[i] & 0xffffffffu);
  return order;
}

struct Context {
  const std::vector<Feature>* features;
  std::vector<std::vector<int64_t>> positives;  // per feature: indices into the analysed rows
  std::vector<uint64_t> concept_mask;           // per analysed row: bit c = row is in concept c
  std::vector<int> concept_of;
  std::vector<double> base_rate;
  std::vector<uint8_t> votes;          // per feature: enough positive and negative rows (min_positives)
  std::vector<uint8_t> concept_votes;  // per concept: enough rows in it and out of it
  int64_t shift = 0;
  const UnitOptions* o;
};

// Everything about one unit from its column over the analysed rows.
// One unit's column of activations, sorted once: its moments, ranks (ties averaged) and the statistics
// every feature asks of it.
class Column {
 public:
  Column(const std::vector<float>& v, const Context& cx) : v_(v), cx_(cx), n_(static_cast<int64_t>(v.size())) {
    for (float x : v_) {
      s1_ += x;
      tot_ += static_cast<double>(x) * x;  // sum of squares
    }
    order_ = sort_order(v_);
    rank_.resize(n_);
    for (int64_t i = 0; i < n_;) {  // ranks with ties averaged (1-based)
      int64_t j = i;
      while (j + 1 < n_ && v_[order_[j + 1]] == v_[order_[i]]) ++j;
      const double r = 0.5 * static_cast<double>(i + j) + 1.0;
      for (int64_t k = i; k <= j; ++k) rank_[order_[k]] = r;
      i = j + 1;
    }
    K_ = std::min(cx.o->top_k, n_);
  }

  // mean, std, active fraction, excess kurtosis, max and the top-K rows of the unit
  void moments(const std::vector<int64_t>& rows, UnitResult& u) const {
    double mx = -std::numeric_limits<double>::infinity();
    int64_t active = 0;
    for (float x : v_) {
      mx = std::max(mx, static_cast<double>(x));
      active += x > cx_.o->active_threshold;
    }
    const double mean = n_ > 0 ? s1_ / n_ : 0;
    double m2 = 0, m4 = 0;
    for (float x : v_) {
      const double d = x - mean, d2 = d * d;
      m2 += d2;
      m4 += d2 * d2;
    }
    m2 /= std::max<int64_t>(1, n_);
    m4 /= std::max<int64_t>(1, n_);
    u.mean = mean;
    u.std = std::sqrt(m2);
    u.frac_active = n_ > 0 ? static_cast<double>(active) / n_ : 0;
    u.kurtosis = m2 > 0 ? m4 / (m2 * m2) - 3 : 0;
    u.max = n_ > 0 ? mx : 0;
    u.top_rows.resize(K_);
    u.top_values.resize(K_);
    for (int64_t k = 0; k < K_; ++k) {
      const int64_t i = order_[n_ - 1 - k];
      u.top_rows[k] = rows[i];
      u.top_values[k] = v_[i];
    }
  }

  // AUROC of the rows `pos` (read `shift` rows later: the null) against the rest, from the rank sum, and
  // the standardised mean difference of the two groups
  float auroc(const std::vector<int64_t>& pos, int64_t shift, float* smd) const {
    const int64_t np = static_cast<int64_t>(pos.size()), nn = n_ - np;
    if (np == 0 || nn == 0) {
      if (smd) *smd = kNaN;
      return kNaN;
    }
    double rs = 0, sx = 0, sxx = 0;
    for (int64_t i : pos) {
      const int64_t j = shift ? (i + shift) % n_ : i;
      rs += rank_[j];
      sx += v_[j];
      sxx += static_cast<double>(v_[j]) * v_[j];
    }
    if (smd) {
      const double mp = sx / np, mn = (s1_ - sx) / nn;
      const double vp = std::max(0.0, sxx / np - mp * mp);
      const double vn = std::max(0.0, (tot_ - sxx) / nn - mn * mn);
      const double pooled = std::sqrt(0.5 * (vp + vn));
      *smd = pooled > 0 ? static_cast<float>((mp - mn) / pooled) : 0.f;
    }
    const double U = rs - 0.5 * static_cast<double>(np) * static_cast<double>(np + 1);
    return static_cast<float>(U / (static_cast<double>(np) * static_cast<double>(nn)));
  }

  // the unit's class from its AUROCs, SMDs and top-K coverage, and its top and second (another concept)
  // features; `shift` reads the labels shifted (the null)
  std::pair<std::string, std::vector<float>> classify(const std::vector<float>& au, const std::vector<float>& smd,
                                                      int64_t shift, double max, int* top, int* second) const {
    const auto cov = coverage(shift);
    std::string cls = classify_by(au, smd, cov, max, shift, top, second);
    if (cls == "split") cls = union_covered(cov, shift) ? "polysemantic" : "unexplained";
    return {cls, cov};
  }

 private:
  // row i's label mask, read `shift` rows earlier under the null
  uint64_t mask_of_top(int64_t k, int64_t shift) const {
    int64_t i = order_[n_ - 1 - k];
    if (shift) i = ((i - shift) % n_ + n_) % n_;
    return cx_.concept_mask[i];
  }

  // coverage of the top-k rows per concept
  std::vector<float> coverage(int64_t shift) const {
    const size_t C = cx_.base_rate.size();
    std::vector<float> cov(C, 0.f);
    for (int64_t k = 0; k < K_; ++k) {
      const uint64_t m = mask_of_top(k, shift);
      for (size_t c = 0; c < C; ++c) cov[c] += (m >> c) & 1;
    }
    for (auto& x : cov) x = K_ > 0 ? x / static_cast<float>(K_) : 0.f;
    return cov;
  }

  std::string classify_by(const std::vector<float>& au, const std::vector<float>& smd, const std::vector<float>& cov,
                          double max, int64_t shift, int* top, int* second) const {
    const UnitOptions& o = *cx_.o;
    const size_t F = cx_.positives.size(), C = cx_.base_rate.size();
    *top = *second = -1;
    for (size_t f = 0; f < F; ++f)
      if (!std::isnan(au[f]) && (*top < 0 || au[f] > au[*top])) *top = static_cast<int>(f);
    for (size_t f = 0; f < F; ++f)
      if (!std::isnan(au[f]) && *top >= 0 && cx_.concept_of[f] != cx_.concept_of[*top] &&
          (*second < 0 || au[f] > au[*second]))
        *second = static_cast<int>(f);
    if (!(max > o.active_threshold)) return "dead";
    std::vector<int> mono_concepts, poly_concepts;
    for (size_t f = 0; f < F; ++f) {
      if (std::isnan(au[f]) || !cx_.votes[f]) continue;  // too few positive or negative rows
      const int c = cx_.concept_of[f];
      if (!(smd[f] >= o.min_smd)) continue;  // AUROC alone also rewards order among the near-zero values
      if (au[f] >= o.mono_auroc && std::find(mono_concepts.begin(), mono_concepts.end(), c) == mono_concepts.end())
        mono_concepts.push_back(c);
      if (au[f] >= o.poly_auroc && std::find(poly_concepts.begin(), poly_concepts.end(), c) == poly_concepts.end())
        poly_concepts.push_back(c);
    }
    if (mono_concepts.size() == 1 && cov[mono_concepts[0]] >= o.mono_coverage) return "monosemantic";
    if (poly_concepts.size() >= 2) {  // selective for several concepts: polysemantic if they explain the top rows
      uint64_t want = 0;
      for (int c : poly_concepts) want |= uint64_t{1} << c;
      if (covered_by(want, shift) >= o.mono_coverage) return "polysemantic";
    }
    // top activations split across concepts
    bool single = false;
    size_t enriched = 0;
    for (size_t c = 0; c < C; ++c) {
      if (!cx_.concept_votes[c]) continue;
      if (cov[c] >= o.mono_coverage) single = true;
      if (cov[c] >= o.poly_share && cov[c] >= 2 * cx_.base_rate[c]) ++enriched;
    }
    if (!single && enriched >= 2) return "split";  // decided on union coverage
    return "unexplained";
  }

  // share of the top-k rows in any concept of `want`
  double covered_by(uint64_t want, int64_t shift) const {
    int64_t covered = 0;
    for (int64_t k = 0; k < K_; ++k) covered += (mask_of_top(k, shift) & want) != 0;
    return K_ > 0 ? static_cast<double>(covered) / static_cast<double>(K_) : 0.0;
  }

  // a split unit is polysemantic when the enriched concepts together cover the top-k rows
  bool union_covered(const std::vector<float>& cov, int64_t shift) const {
    const UnitOptions& o = *cx_.o;
    uint64_t want = 0;
    for (size_t c = 0; c < cov.size(); ++c)
      if (cx_.concept_votes[c] && cov[c] >= o.poly_share && cov[c] >= 2 * cx_.base_rate[c]) want |= uint64_t{1} << c;
    return covered_by(want, shift) >= o.mono_coverage;
  }

  const std::vector<float>& v_;
  const Context& cx_;
  int64_t n_ = 0, K_ = 0;
  double s1_ = 0, tot_ = 0;
  std::vector<int64_t> order_;
  std::vector<double> rank_;
};

void analyze_column(const std::vector<float>& v, const Context& cx, const std::vector<int64_t>& rows, UnitResult& u) {
  const Column col(v, cx);
  col.moments(rows, u);
  const size_t F = cx.positives.size();
  u.auroc.assign(F, kNaN);
  u.smd.assign(F, kNaN);
  std::vector<float> null_au(F, kNaN), null_smd(F, kNaN);
  for (size_t f = 0; f < F; ++f) {
    u.auroc[f] = col.auroc(cx.positives[f], 0, &u.smd[f]);
    null_au[f] = col.auroc(cx.positives[f], cx.shift, &null_smd[f]);
  }
  auto [cls, cov] = col.classify(u.auroc, u.smd, 0, u.max, &u.top_feature, &u.second_feature);
  u.cls = cls;
  u.coverage = cov;
  int nt = -1, ns = -1;
  const auto null_res = col.classify(null_au, null_smd, cx.shift, u.max, &nt, &ns);
  u.null_cls = null_res.first;
  u.null_top_auroc = nt >= 0 ? null_au[nt] : kNaN;
  u.null_top_coverage = nt >= 0 ? null_res.second[static_cast<size_t>(cx.concept_of[nt])] : 0.0f;
  // downward selectivity: the lowest AUROC among features with a sample, silent where the feature is
  const UnitOptions& o = *cx.o;
  for (size_t f = 0; f < F; ++f)
    if (cx.votes[f] && !std::isnan(u.auroc[f]) && u.auroc[f] <= 1 - o.mono_auroc && u.smd[f] <= -o.min_smd &&
        (u.down_feature < 0 || u.auroc[f] < u.auroc[u.down_feature]))
      u.down_feature = static_cast<int>(f);
}

}  // namespace

std::string feature_family(const std::string& name) {
  if (name == "upper" || name == "lower" || name == "word_start") return "letters";
  if (name == "newline" || name == "line_start") return "lines";
  if (name == "digit" || name == "in_number") return "numbers";
  return "";  // domain: / corpus: labels are each their own (they relate by correlation only)
}

double auroc(const std::vector<float>& values, const std::vector<uint8_t>& on) {
  CCC_CHECK(values.size() == on.size(), "auroc: one label per value is needed");
  double pos = 0, neg = 0, u = 0;
  // O(n^2) definition: P(x_pos > x_neg) + ½ P(x_pos = x_neg)
  for (size_t i = 0; i < values.size(); ++i) {
    if (!on[i]) continue;
    for (size_t j = 0; j < values.size(); ++j) {
      if (on[j]) continue;
      u += values[i] > values[j] ? 1.0 : values[i] == values[j] ? 0.5 : 0.0;
    }
  }
  for (uint8_t b : on) (b ? pos : neg) += 1;
  if (pos == 0 || neg == 0) return std::numeric_limits<double>::quiet_NaN();
  return u / (pos * neg);
}

uint64_t units_memory_bytes(int64_t rows, size_t n_features, const UnitOptions& o) {
  const double threads = o.threads > 0 ? o.threads : available_cores();
  const double per_row = 8 + 4 + 4 + 8 + 8 + 8 + 9.0 * static_cast<double>(n_features) + 40.0 * threads;
  return static_cast<uint64_t>(static_cast<double>(std::max<int64_t>(rows, 0)) * per_row) +
         static_cast<uint64_t>(std::max<int64_t>(o.memory_bytes, 0));
}

namespace {

// One unit's result as bytes and back (units gathered from the ranks that analysed them).
template <typename T>
void put(std::string& out, const T& v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}
template <typename T>
void put_vec(std::string& out, const std::vector<T>& v) {
  put<uint64_t>(out, v.size());
  out.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}
void put_str(std::string& out, const std::string& v) {
  put<uint64_t>(out, v.size());
  out += v;
}
struct Reader {
  std::string_view b;
  size_t off = 0;
  void raw(void* dst, size_t n) {
    CCC_CHECK(off + n <= b.size(), "units: a gathered unit result is short");
    std::memcpy(dst, b.data() + off, n);
    off += n;
  }
  template <typename T>
  T get() {
    T v;
    raw(&v, sizeof v);
    return v;
  }
  template <typename T>
  std::vector<T> vec() {
    std::vector<T> v(get<uint64_t>());
    raw(v.data(), v.size() * sizeof(T));
    return v;
  }
  std::string str() {
    std::string v(get<uint64_t>(), '\0');
    raw(v.data(), v.size());
    return v;
  }
};

std::string pack_unit(const UnitResult& u) {
  std::string out;
  put_str(out, u.hook);
  put(out, u.layer);
  put(out, u.unit);
  for (double d : {u.mean, u.std, u.frac_active, u.kurtosis, u.max}) put(out, d);
  put_vec(out, u.auroc);
  put_vec(out, u.smd);
  put_vec(out, u.coverage);
  put_vec(out, u.top_rows);
  put_vec(out, u.top_values);
  for (int i : {u.top_feature, u.second_feature, u.down_feature}) put(out, i);
  put_str(out, u.cls);
  put_str(out, u.null_cls);
  put(out, u.null_top_auroc);
  put(out, u.null_top_coverage);
  return out;
}

UnitResult unpack_unit(std::string_view bytes) {
  Reader r{bytes};
  UnitResult u;
  u.hook = r.str();
  u.layer = r.get<int64_t>();
  u.unit = r.get<int64_t>();
  for (double* d : {&u.mean, &u.std, &u.frac_active, &u.kurtosis, &u.max}) *d = r.get<double>();
  u.auroc = r.vec<float>();
  u.smd = r.vec<float>();
  u.coverage = r.vec<float>();
  u.top_rows = r.vec<int64_t>();
  u.top_values = r.vec<float>();
  for (int* i : {&u.top_feature, &u.second_feature, &u.down_feature}) *i = r.get<int>();
  u.cls = r.str();
  u.null_cls = r.str();
  u.null_top_auroc = r.get<float>();
  u.null_top_coverage = r.get<float>();
  CCC_CHECK(r.off == bytes.size(), "units: a gathered unit result has trailing bytes");
  return u;
}

}  // namespace

UnitsReport analyze_units(const ActivationStore& store, const std::vector<Feature>& features, const UnitOptions& o) {
  CCC_CHECK(features.size() <= kMaxFeatures, store.path(), ": at most ", kMaxFeatures, " features (given ", features.size(), ")");
  for (const auto& f : features)
    CCC_CHECK(static_cast<int64_t>(f.on.size()) == store.rows(), "feature ", f.name, " has ", f.on.size(),
              " labels for ", store.rows(), " dump rows");
  // hooks
  std::vector<std::string> hooks;
  if (o.hooks.empty()) {
    for (const auto& h : store.hooks())
      if (!is_pattern_hook(h)) hooks.push_back(h);
  } else {
    for (const auto& pat : o.hooks) {
      bool any = false;
      for (const auto& h : store.hooks())
        if (model::glob_match(pat, h)) {
          any = true;
          CCC_CHECK(!is_pattern_hook(h), store.path(), ": ", h, " holds attention weights, not units");
          if (std::find(hooks.begin(), hooks.end(), h) == hooks.end()) hooks.push_back(h);
        }
      CCC_CHECK(any, store.path(), ": --hooks ", pat, " matches none of its hooks");
    }
  }
  CCC_CHECK(!hooks.empty(), store.path(), ": no unit-bearing activations in the dump");
  // analysed rows: every non-BOS row
  const auto offsets = store.byte_offsets();
  std::vector<int64_t> rows;
  for (int64_t r = 0; r < static_cast<int64_t>(offsets.size()); ++r)
    if (offsets[r] >= 0) rows.push_back(r);
  const int64_t n = static_cast<int64_t>(rows.size());
  CCC_CHECK(n >= 2, store.path(), ": fewer than two non-BOS rows");

  UnitsReport rep;
  rep.rows = n;
  Context cx;
  cx.o = &o;
  cx.features = &features;
  cx.concept_of = group_features(features, rows, o.related_phi);
  int C = 0;
  for (int c : cx.concept_of) C = std::max(C, c + 1);
  rep.concepts.assign(C, "");
  for (size_t f = 0; f < features.size(); ++f) {
    rep.features.push_back(features[f].name);
    auto& name = rep.concepts[cx.concept_of[f]];
    name += (name.empty() ? "" : "+") + features[f].name;
  }
  rep.concept_of = cx.concept_of;
  cx.positives.resize(features.size());
  cx.concept_mask.assign(n, 0);
  for (size_t f = 0; f < features.size(); ++f)
    for (int64_t i = 0; i < n; ++i)
      if (features[f].on[rows[i]]) {
        cx.positives[f].push_back(i);
        cx.concept_mask[i] |= uint64_t{1} << cx.concept_of[f];
      }
  cx.base_rate.assign(C, 0);
  for (int64_t i = 0; i < n; ++i)
    for (int c = 0; c < C; ++c) cx.base_rate[c] += (cx.concept_mask[i] >> c) & 1;
  for (auto& b : cx.base_rate) b /= static_cast<double>(n);
  const auto min_pos = static_cast<size_t>(std::max<int64_t>(1, o.min_positives));
  cx.votes.assign(features.size(), 0);
  for (size_t f = 0; f < features.size(); ++f)
    cx.votes[f] = cx.positives[f].size() >= min_pos && static_cast<size_t>(n) - cx.positives[f].size() >= min_pos;
  cx.concept_votes.assign(static_cast<size_t>(C), 0);
  for (int c = 0; c < C; ++c) {
    const double in = cx.base_rate[c] * static_cast<double>(n);
    cx.concept_votes[c] = in >= static_cast<double>(min_pos) && static_cast<double>(n) - in >= static_cast<double>(min_pos);
  }
  rep.base_rate = cx.base_rate;
  cx.shift = o.null_shift >= 0 ? o.null_shift % n : n / 2;
  rep.null_shift = cx.shift;

  const int threads = o.threads > 0 ? o.threads : available_cores();
  int64_t total_units = 0;
  for (const auto& hook : hooks) total_units += store.row_shape(hook)[0];
  for (const auto& d : o.derived) total_units += d.units;
  // the units of one source, `chunk` columns at a time: column k of a block of rows is value(b, r, k)
  auto analyse = [&](const std::string& name, const std::string& hook, int64_t units,
                     const std::function<RowMatrix(const RowMatrix&)>& derive, int64_t width) {
    int64_t row_width = 1;
    for (int64_t x : store.row_shape(hook)) row_width *= x;
    const int64_t per_unit_bytes = n * static_cast<int64_t>(sizeof(float));
    const int64_t chunk = std::clamp<int64_t>(o.memory_bytes / std::max<int64_t>(1, per_unit_bytes), 1, units);
    const int64_t block_rows =
        std::max<int64_t>(1, (int64_t{16} << 20) / std::max<int64_t>(1, std::max(row_width, derive ? units : 0) * 4));
    for (int64_t u0 = 0; u0 < units; u0 += chunk) {
      const int64_t uc = std::min(chunk, units - u0);
      std::vector<std::vector<float>> col(uc, std::vector<float>(n));
      int64_t i = 0;  // analysed-row cursor
      for (int64_t r0 = 0; r0 < store.rows(); r0 += block_rows) {
        const int64_t nr = std::min(block_rows, store.rows() - r0);
        RowMatrix b = store.block(hook, r0, nr);
        if (derive) b = derive(b);
        for (int64_t r = 0; r < nr; ++r) {
          if (offsets[r0 + r] < 0) continue;
          for (int64_t k = 0; k < uc; ++k) {
            if (width == 1) {
              col[k][i] = b(r, u0 + k);
            } else {
              double ss = 0;
              for (int64_t e = 0; e < width; ++e) {
                const double x = b(r, (u0 + k) * width + e);
                ss += x * x;
              }
              col[k][i] = static_cast<float>(std::sqrt(ss));
            }
          }
          ++i;
        }
      }
      const size_t base = rep.units.size();
      rep.units.resize(base + uc);
      // under mpirun column k of the chunk is rank (k mod N)'s (the null with it); the results are gathered
      const bool spread = dist::size() > 1 && !dist::in_map();
      std::vector<std::thread> pool;
      for (int t = 0; t < threads; ++t)
        pool.emplace_back([&, t] {
          for (int64_t k = t; k < uc; k += threads) {
            if (spread && dist::owner(k) != dist::rank()) continue;
            UnitResult& u = rep.units[base + k];
            u.hook = name;
            u.layer = layer_of(hook);
            u.unit = u0 + k;
            analyze_column(col[k], cx, rows, u);
          }
        });
      for (auto& th : pool) th.join();
      if (spread) {
        const auto all = dist::map(uc, [&](int64_t k) { return pack_unit(rep.units[base + static_cast<size_t>(k)]); });
        for (int64_t k = 0; k < uc; ++k) rep.units[base + static_cast<size_t>(k)] = unpack_unit(all[static_cast<size_t>(k)]);
      }
      if (o.progress) o.progress(static_cast<int64_t>(rep.units.size()), total_units);
    }
  };
  for (const auto& hook : hooks) {
    const auto shape = store.row_shape(hook);
    CCC_CHECK(shape.size() == 1 || shape.size() == 2, store.path(), ": ", hook, " has rows of rank ", shape.size(),
              "; units need 1-D rows or [heads, d_head]");
    analyse(hook, hook, shape[0], {}, shape.size() == 2 ? shape[1] : 1);  // [heads, d_head]: the head's norm
  }
  for (const auto& d : o.derived) {
    const auto& hs = store.hooks();
    CCC_CHECK(std::find(hs.begin(), hs.end(), d.hook) != hs.end(), store.path(), ": no hook ", d.hook, " for ", d.name);
    analyse(d.name, d.hook, d.units, d.fn, 1);
  }
  return rep;
}

std::vector<CoverageSummary> coverage_summary(const UnitsReport& rep, const std::vector<std::string>& hooks, double coverage) {
  auto median = [](std::vector<double> v) {
    if (v.empty()) return 0.0;
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
    return v[v.size() / 2];
  };
  auto share = [&](const std::vector<double>& v) {
    const auto n = std::count_if(v.begin(), v.end(), [&](double c) { return c >= coverage; });
    return v.empty() ? 0.0 : static_cast<double>(n) / static_cast<double>(v.size());
  };
  std::vector<CoverageSummary> out;
  for (const auto& h : hooks) {
    std::vector<double> cov, null_cov, act;
    for (const auto& u : rep.units) {
      if (u.hook != h || u.cls == "dead") continue;
      cov.push_back(u.top_feature >= 0 ? u.coverage[rep.concept_of[u.top_feature]] : 0.0);
      null_cov.push_back(u.null_top_coverage);
      act.push_back(u.frac_active);
    }
    out.push_back({h, static_cast<int64_t>(cov.size()), share(cov), share(null_cov), median(cov), median(null_cov), median(act)});
  }
  return out;
}

std::vector<Feature> dump_auto_features(const ActivationStore& store, std::string_view text) {
  const auto offsets = store.byte_offsets();
  const auto streams = store.streams();
  std::map<int32_t, int64_t> first;
  for (size_t r = 0; r < offsets.size(); ++r)
    if (offsets[r] >= 0) {
      auto it = first.find(streams[r]);
      if (it == first.end() || offsets[r] < it->second) first[streams[r]] = offsets[r];
    }
  std::vector<int64_t> stream_start(offsets.size(), 0);
  for (size_t r = 0; r < offsets.size(); ++r) stream_start[r] = first.count(streams[r]) ? first[streams[r]] : 0;
  int64_t window = store.attr_int("window");
  if (window <= 0) window = static_cast<int64_t>(text.size());
  return auto_features(text, offsets, stream_start, window);
}

std::map<std::string, int64_t> class_totals(const UnitsReport& rep, bool null) {
  std::map<std::string, int64_t> out;
  for (const auto& u : rep.units) ++out[null ? u.null_cls : u.cls];
  return out;
}

}  // namespace ccc::analysis
