#include "circuits/icl.h"

#include <algorithm>
#include <random>

#include <torch/torch.h>

#include "model/base/error.h"
#include "model/core/bits.h"
#include "model/core/score.h"

namespace ccc::circuits {

RepeatBits repeated_span_bits(model::LoadedModel& m, const std::vector<std::string>& spans) {
  RepeatBits r;
  double first = 0, second = 0;
  for (const auto& s : spans) {
    const auto ids = m.tokenizer->encode(s);
    if (ids.empty()) continue;
    std::vector<int64_t> seq{m.config.bos_id};
    seq.insert(seq.end(), ids.begin(), ids.end());
    seq.insert(seq.end(), ids.begin(), ids.end());
    const auto bits = model::score_bits(m.model, seq);  // bits[i] predicts seq[i + 1]
    const size_t n = ids.size();
    for (size_t i = 0; i < n; ++i) {
      first += bits[i];
      second += bits[n + i];
    }
    r.spans += 1;
    r.bytes += static_cast<int64_t>(s.size());
  }
  if (r.bytes > 0) {
    r.first_bpb = first / static_cast<double>(r.bytes);
    r.second_bpb = second / static_cast<double>(r.bytes);
  }
  return r;
}

std::vector<std::string> even_spans(const std::string& text, int64_t len, int64_t count) {
  std::vector<std::string> out;
  const int64_t n = static_cast<int64_t>(text.size());
  if (len <= 0 || count <= 0 || n < len) return out;
  for (int64_t k = 0; k < count; ++k) {
    const int64_t o = count == 1 ? 0 : (n - len) * k / (count - 1);
    out.push_back(text.substr(static_cast<size_t>(o), static_cast<size_t>(len)));
  }
  return out;
}

std::vector<std::string> random_printable(int64_t len, int64_t count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> byte(32, 126);
  std::vector<std::string> out(static_cast<size_t>(count));
  for (auto& s : out)
    for (int64_t i = 0; i < len; ++i) s.push_back(static_cast<char>(byte(rng)));
  return out;
}

ProbeTexts make_probe(int64_t len, int64_t count, uint64_t seed) {
  CCC_CHECK(len >= 1 && len <= (1 << 20) && count >= 1 && count <= (1 << 20) && len * count <= (int64_t{1} << 26),
            "make-probe: need 1 <= --len, --strings <= 2^20 and len x strings <= 2^26 bytes");
  const auto first = random_printable(len, count, seed);
  const auto second = random_printable(len, count, seed ^ 0x5eedf00dULL);
  ProbeTexts p;
  for (int64_t i = 0; i < count; ++i) {
    std::string other = second[static_cast<size_t>(i)];
    if (other == first[static_cast<size_t>(i)]) other[0] = other[0] == '~' ? ' ' : static_cast<char>(other[0] + 1);
    p.repeated += first[static_cast<size_t>(i)] + first[static_cast<size_t>(i)] + "\n";
    p.fresh += first[static_cast<size_t>(i)] + other + "\n";
    p.corrupt += other + first[static_cast<size_t>(i)] + "\n";
  }
  return p;
}

namespace {
nlohmann::json repeat_json(const RepeatBits& r) {
  return {{"spans", r.spans}, {"bytes_per_copy", r.bytes}, {"first_bits_per_byte", r.first_bpb},
          {"second_bits_per_byte", r.second_bpb}, {"delta_bits_per_byte", r.second_bpb - r.first_bpb}};
}
}  // namespace

nlohmann::json IclReport::to_json() const {
  nlohmann::json per = nlohmann::json::object();
  for (const auto& [name, r] : text) per[name] = repeat_json(r);
  return {{"repeated_text", repeat_json(text_all)},
          {"repeated_text_per_source", per},
          {"repeated_random", repeat_json(random)},
          {"icl_score_bits", icl_score},
          {"early_position", early},
          {"late_position", late},
          {"early_bits", early_bits},
          {"late_bits", late_bits},
          {"icl_windows", windows},
          {"icl_score_ci_low", icl_ci_low},
          {"icl_score_ci_high", icl_ci_high},
          {"bits_by_position", curve}};
}

IclReport measure_icl(model::LoadedModel& m, const std::vector<Source>& sources, const IclOptions& o) {
  torch::InferenceMode guard;
  m.model->eval();
  CCC_CHECK(!sources.empty(), "icl: no text to measure on");
  CCC_CHECK(o.band >= 1 && o.early > o.band && o.late > o.early, "icl: need --early > band and --late > --early");
  IclReport rep;
  std::vector<std::string> all;
  for (const auto& [name, text] : sources) {
    auto spans = even_spans(text, o.span_len, o.spans);
    if (spans.empty()) continue;
    rep.text.emplace_back(name, repeated_span_bits(m, spans));
    all.insert(all.end(), spans.begin(), spans.end());
  }
  CCC_CHECK(!all.empty(), "icl: every text is shorter than --span-len ", o.span_len, " bytes");
  rep.text_all = repeated_span_bits(m, all);
  rep.random = repeated_span_bits(m, random_printable(o.random_len, o.random_spans, o.seed));

  // ICL score: windows [BOS, t_1 .. t_{len-1}] with len = late + band positions
  const int64_t n_ctx = m.config.n_ctx;
  rep.late = std::min(o.late, n_ctx - o.band);
  rep.early = o.early;
  CCC_CHECK(rep.late - o.band >= rep.early + o.band, "icl: the model's context (", n_ctx,
            ") is too short for early position ", rep.early, " and a late one");
  const int64_t len = rep.late + o.band;
  std::vector<std::vector<int64_t>> windows, encoded;
  for (const auto& [name, text] : sources) {  // the sources long enough for a window share o.windows exactly
    auto ids = m.tokenizer->encode(text);
    if (static_cast<int64_t>(ids.size()) >= len - 1) encoded.push_back(std::move(ids));
  }
  const auto S = static_cast<int64_t>(encoded.size());
  for (int64_t si = 0; si < S; ++si) {
    const auto& ids = encoded[static_cast<size_t>(si)];
    const int64_t n = static_cast<int64_t>(ids.size());
    const int64_t per_source = o.windows / S + (si < o.windows % S ? 1 : 0);
    for (int64_t k = 0; k < per_source; ++k) {
      const int64_t off = per_source == 1 ? 0 : (n - (len - 1)) * k / (per_source - 1);
      std::vector<int64_t> w{m.config.bos_id};
      w.insert(w.end(), ids.begin() + off, ids.begin() + off + (len - 1));
      windows.push_back(std::move(w));
    }
  }
  CCC_CHECK(!windows.empty(), "icl: no text holds a window of ", len - 1, " tokens");
  rep.windows = static_cast<int64_t>(windows.size());
  std::vector<double> sum(static_cast<size_t>(len - 1), 0.0);
  auto band_of = [&](const std::vector<double>& curve, int64_t p) {  // positions p − band .. p + band − 1
    double s = 0;
    for (int64_t q = p - o.band; q < p + o.band; ++q) s += curve[static_cast<size_t>(q - 1)];  // index = position − 1
    return s / static_cast<double>(2 * o.band);
  };
  std::vector<double> per_window;  // each window's late − early band mean
  const int64_t B = 8;
  for (size_t w0 = 0; w0 < windows.size(); w0 += B) {
    const int64_t b = std::min<int64_t>(B, static_cast<int64_t>(windows.size() - w0));
    auto t = torch::empty({b, len}, torch::kInt64);
    for (int64_t r = 0; r < b; ++r)
      std::copy(windows[w0 + r].begin(), windows[w0 + r].end(), t[r].data_ptr<int64_t>());
    auto logits = m.model->forward(t.narrow(1, 0, len - 1));
    auto bits = model::token_bits(logits.to(torch::kFloat64), t.narrow(1, 1, len - 1)).contiguous();  // [b, len - 1]
    auto acc = bits.accessor<double, 2>();
    for (int64_t r = 0; r < b; ++r) {
      std::vector<double> row(static_cast<size_t>(len - 1));
      for (int64_t i = 0; i < len - 1; ++i) sum[i] += row[static_cast<size_t>(i)] = acc[r][i];
      per_window.push_back(band_of(row, rep.late) - band_of(row, rep.early));
    }
  }
  rep.curve.resize(sum.size());
  for (size_t i = 0; i < sum.size(); ++i) rep.curve[i] = sum[i] / static_cast<double>(rep.windows);
  rep.early_bits = band_of(rep.curve, rep.early);
  rep.late_bits = band_of(rep.curve, rep.late);
  rep.icl_score = rep.late_bits - rep.early_bits;  // = the mean of per_window
  // 95% bootstrap CI over windows (2000 resamples, seeded)
  std::mt19937_64 rng(o.seed ^ 0x1C15C0ULL);
  std::vector<double> stat(2000);
  const auto W = per_window.size();
  for (auto& st : stat) {
    double a = 0;
    for (size_t k = 0; k < W; ++k) a += per_window[static_cast<size_t>(rng() % W)];
    st = a / static_cast<double>(W);
  }
  std::sort(stat.begin(), stat.end());
  rep.icl_ci_low = stat[static_cast<size_t>(0.025 * (stat.size() - 1))];
  rep.icl_ci_high = stat[static_cast<size_t>(0.975 * (stat.size() - 1))];
  return rep;
}

}  // namespace ccc::circuits
