#include "analysis/sae.h"

#include <chrono>
#include <cmath>
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>

#include "analysis/activation_store.h"
#include "model/base/dist.h"
#include "model/base/error.h"
#include "model/base/util.h"
#include "model/formats/safetensors.h"

namespace fs = std::filesystem;

namespace ccc::analysis {

SaeArch parse_sae_arch(const std::string& s) {
  if (s == "relu") return SaeArch::kRelu;
  if (s == "topk") return SaeArch::kTopK;
  if (s == "batchtopk") return SaeArch::kBatchTopK;
  CCC_FAIL("--arch ", s, ": expected relu, topk or batchtopk");
}

std::string to_string(SaeArch a) {
  switch (a) {
    case SaeArch::kRelu: return "relu";
    case SaeArch::kTopK: return "topk";
    case SaeArch::kBatchTopK: break;
  }
  return "batchtopk";
}

namespace {

// The k largest entries of each row kept (ReLUed), the rest 0.
torch::Tensor topk_rows(const torch::Tensor& pre, int64_t k) {
  auto [vals, idx] = pre.topk(k, -1);
  return torch::zeros_like(pre).scatter(-1, idx, torch::relu(vals));
}

// Inference: batchtopk keeps what exceeds its threshold.
torch::Tensor act(const Sae& s, const torch::Tensor& pre) {
  switch (s.arch) {
    case SaeArch::kRelu: return torch::relu(pre);
    case SaeArch::kTopK: return topk_rows(pre, s.k);
    case SaeArch::kBatchTopK: break;
  }
  return pre * (pre > s.threshold).to(pre.dtype());
}

}  // namespace

torch::Tensor Sae::pre(const torch::Tensor& x) const {
  CCC_CHECK(x.dim() == 3 && x.size(1) == sources() && x.size(2) == d_in(), "sae: input ", x.sizes(), ", expected [rows, ",
            sources(), ", ", d_in(), "]");
  if (sources() == 1) return torch::addmm(b_enc, x.select(1, 0) - b_dec[0], W_enc[0]);
  return torch::einsum("bsi,sif->bf", {x - b_dec.unsqueeze(0), W_enc}) + b_enc;
}

torch::Tensor Sae::encode(const torch::Tensor& x) const { return act(*this, pre(x)); }

torch::Tensor Sae::decode(const torch::Tensor& f) const {
  if (sources() == 1) return torch::addmm(b_dec[0], f, W_dec[0]).unsqueeze(1);
  return torch::einsum("bf,sfi->bsi", {f, W_dec}) + b_dec.unsqueeze(0);
}

torch::Tensor Sae::reconstruct(const torch::Tensor& x) const {
  if (arch != SaeArch::kTopK || sources() != 1) return decode(encode(x));
  // topk: only the k selected decoder rows are read
  auto [v, i] = pre(x).topk(k, -1);
  const auto rows = W_dec[0].index_select(0, i.reshape({-1})).view({x.size(0), k, d_in()});
  return (torch::bmm(torch::relu(v).unsqueeze(1), rows).squeeze(1) + b_dec[0]).unsqueeze(1);
}

nlohmann::json SaeTrainMetrics::to_json() const {
  return {{"mse", mse}, {"explained_variance", explained_variance}, {"l0", l0}, {"dead_fraction", dead_fraction},
          {"input_scale", input_scale}, {"rows_per_second", rows_per_second}, {"steps", steps}, {"rows", rows}};
}

SaeBatches dump_batches(const ActivationStore& store, const std::string& hook, int64_t buffer_rows, uint64_t seed) {
  const auto& hooks = store.hooks();
  CCC_CHECK(std::find(hooks.begin(), hooks.end(), hook) != hooks.end(), store.path(), ": no hook ", hook, " in the dump");
  int64_t d = 1;
  for (int64_t x : store.row_shape(hook)) d *= x;
  const auto pos = store.positions();
  std::vector<int64_t> rows;  // non-BOS rows, in file order
  for (size_t i = 0; i < pos.size(); ++i)
    if (pos[i] != 0) rows.push_back(static_cast<int64_t>(i));
  CCC_CHECK(!rows.empty(), store.path(), ": no activation rows (only BOS)");
  if (dist::size() > 1 && !dist::in_map()) {  // data-parallel training: rank r reads the r-th of N slices
    const int N = dist::size(), r = dist::rank();
    const size_t n = rows.size(), a = n * static_cast<size_t>(r) / static_cast<size_t>(N),
                 b = n * static_cast<size_t>(r + 1) / static_cast<size_t>(N);
    CCC_CHECK(b > a, store.path(), ": ", n, " activation rows are fewer than the ", N, " ranks");
    rows = std::vector<int64_t>(rows.begin() + static_cast<std::ptrdiff_t>(a), rows.begin() + static_cast<std::ptrdiff_t>(b));
    seed ^= 0x9E3779B97F4A7C15ULL * static_cast<uint64_t>(r + 1);
    buffer_rows = std::max<int64_t>(1, buffer_rows / N);
  }
  struct State {
    torch::Tensor buf;
    size_t next = 0;  // the next index of `rows` to read
    std::mt19937_64 rng;
  };
  auto st = std::make_shared<State>();
  st->rng.seed(seed);
  const int64_t B = std::min<int64_t>(buffer_rows, static_cast<int64_t>(rows.size()));
  st->buf = torch::empty({B, d});
  // `n` next rows of the file (in order, wrapping) as [n, d]
  auto read = [&store, hook, rows, d, st](int64_t n) {
    auto out = torch::empty({n, d});
    int64_t got = 0;
    while (got < n) {
      // a contiguous run of file rows starting at rows[next]
      const int64_t first = rows[st->next];
      int64_t len = 1;
      while (got + len < n && st->next + static_cast<size_t>(len) < rows.size() &&
             rows[st->next + static_cast<size_t>(len)] == first + len)
        ++len;
      const auto m = store.block(hook, first, len);
      std::memcpy(out[got].data_ptr<float>(), m.data(), sizeof(float) * static_cast<size_t>(len * d));
      got += len;
      st->next = (st->next + static_cast<size_t>(len)) % rows.size();
    }
    return out;
  };
  st->buf.copy_(read(B));
  return [st, read, B](int64_t n) {
    std::vector<int64_t> idx(static_cast<size_t>(n));
    for (auto& i : idx) i = static_cast<int64_t>(st->rng() % static_cast<uint64_t>(B));
    auto index = torch::tensor(idx, torch::kInt64);
    auto out = st->buf.index_select(0, index).unsqueeze(1);
    // drawn slots refilled in file order, one after the other: a slot drawn twice keeps the later row
    // (index_copy_ with repeated indices lets threads race for the slot: the weights then varied run to run)
    const auto fresh = read(n);
    const int64_t d = st->buf.size(1);
    float* buf = st->buf.data_ptr<float>();
    const float* src = fresh.data_ptr<float>();
    for (int64_t j = 0; j < n; ++j)
      std::memcpy(buf + idx[static_cast<size_t>(j)] * d, src + j * d, sizeof(float) * static_cast<size_t>(d));
    return out;
  };
}

void save_sae(const Sae& sae, const std::string& dir, const nlohmann::json& meta) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  CCC_CHECK(!ec, dir, ": cannot create the directory (", ec.message(), ")");
  const bool one = sae.sources() == 1;
  std::map<std::string, torch::Tensor> t = {{"W_enc", one ? sae.W_enc[0] : sae.W_enc},
                                            {"b_enc", sae.b_enc},
                                            {"W_dec", one ? sae.W_dec[0] : sae.W_dec},
                                            {"b_dec", one ? sae.b_dec[0] : sae.b_dec}};
  if (sae.arch == SaeArch::kBatchTopK) t["threshold"] = torch::full({1}, sae.threshold);
  model::safetensors_save((fs::path(dir) / "sae.safetensors").string(), t);
  nlohmann::json j = meta;
  j["architecture"] = to_string(sae.arch);
  j["sources"] = sae.sources();
  j["d_in"] = sae.d_in();
  j["d_sae"] = sae.d_sae();
  j["k"] = sae.k;
  j["threshold"] = sae.threshold;
  write_file_atomic((fs::path(dir) / "sae.json").string(), j.dump(2) + "\n");
}

Sae load_sae(const std::string& dir, nlohmann::json* meta) {
  const std::string jf = (fs::path(dir) / "sae.json").string(), tf = (fs::path(dir) / "sae.safetensors").string();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(jf));
  } catch (const nlohmann::json::exception& e) {
    CCC_FAIL(jf, ": not valid JSON (", e.what(), ")");
  }
  Sae s;
  s.arch = parse_sae_arch(j.value("architecture", ""));
  s.k = j.value("k", int64_t{32});
  s.threshold = j.value("threshold", 0.0);
  const int64_t S = j.value("sources", int64_t{1}), D = j.value("d_in", int64_t{0}), F = j.value("d_sae", int64_t{0});
  auto t = model::load_safetensors_float(tf);
  auto get = [&](const std::string& name, std::vector<int64_t> shape) {
    CCC_CHECK(t.count(name), tf, ": no tensor ", name);
    auto x = t.at(name);
    if (S == 1) shape.erase(shape.begin());
    CCC_CHECK(x.sizes().vec() == shape, tf, ": ", name, " is ", x.sizes(), ", sae.json says ", torch::IntArrayRef(shape));
    return S == 1 ? x.unsqueeze(0).contiguous() : x;
  };
  s.W_enc = get("W_enc", {S, D, F});
  s.W_dec = get("W_dec", {S, F, D});
  s.b_dec = get("b_dec", {S, D});
  CCC_CHECK(t.count("b_enc") && t.at("b_enc").sizes().vec() == std::vector<int64_t>{F}, tf, ": b_enc missing or not [", F, "]");
  s.b_enc = t.at("b_enc");
  if (meta != nullptr) *meta = j;
  return s;
}

}  // namespace ccc::analysis
