#include "circuits/head_detectors.h"

#include <algorithm>
#include <random>

#include "model/base/error.h"
#include "model/core/bits.h"
#include "model/core/hooks.h"

namespace ccc::circuits {

double HeadScores::max_of(const std::vector<double>& v) {
  return v.empty() ? 0.0 : *std::max_element(v.begin(), v.end());
}

nlohmann::json HeadScores::to_json() const {
  nlohmann::json heads = nlohmann::json::array();
  for (int64_t l = 0; l < n_layers; ++l)
    for (int64_t h = 0; h < n_heads; ++h)
      heads.push_back({{"layer", l}, {"head", h}, {"prev_token", score(prev_token, l, h)},
                       {"induction", score(induction, l, h)}, {"duplicate_token", score(duplicate_token, l, h)}});
  return {{"heads", heads},
          {"seq_len", seq_len},
          {"batch", batch},
          {"first_half_bits_per_token", first_half_bits},
          {"second_half_bits_per_token", second_half_bits},
          {"max_prev_token", max_of(prev_token)},
          {"max_induction", max_of(induction)},
          {"max_duplicate_token", max_of(duplicate_token)}};
}

std::vector<std::vector<double>> pattern_scores(const torch::Tensor& pattern, int64_t L) {
  CCC_CHECK(pattern.dim() == 4 && pattern.size(2) == 2 * L + 1 && pattern.size(3) == 2 * L + 1,
            "pattern_scores: want a pattern [batch, heads, 2L+1, 2L+1] for L = ", L, ", got ", pattern.sizes());
  auto p = pattern.to(torch::kFloat64).mean(0);  // [H, q, k]
  auto acc = p.accessor<double, 3>();
  const int64_t H = p.size(0);
  std::vector<std::vector<double>> out(3, std::vector<double>(H, 0.0));
  for (int64_t h = 0; h < H; ++h) {
    for (int64_t t = 1; t <= 2 * L; ++t) out[0][h] += acc[h][t][t - 1];
    for (int64_t t = L + 1; t <= 2 * L; ++t) {
      out[1][h] += acc[h][t][t - L + 1];
      out[2][h] += acc[h][t][t - L];
    }
    out[0][h] /= static_cast<double>(2 * L);
    out[1][h] /= static_cast<double>(L);
    out[2][h] /= static_cast<double>(L);
  }
  return out;
}

torch::Tensor probe_sequences(const model::LoadedModel& m, int64_t L, int64_t batch, uint64_t seed) {
  CCC_CHECK(L >= 2 && batch >= 1, "head probe: need --seq-len >= 2 and --batch >= 1");
  CCC_CHECK(2 * L + 1 <= m.config.n_ctx, "head probe: [BOS, r, r] with --seq-len ", L, " needs ", 2 * L + 1,
            " positions; the model's context is ", m.config.n_ctx);
  std::vector<int64_t> pool;
  if (m.tokenizer->kind() == "byte") {
    for (int64_t b = 32; b <= 126; ++b) pool.push_back(b);
  } else {
    const int64_t n = std::min<int64_t>(m.tokenizer->vocab_size(), m.config.d_vocab_out);
    for (int64_t id = 0; id < n; ++id)
      if (id != m.config.bos_id && id != m.config.eos_id && id != m.tokenizer->bos_id() &&
          id != m.tokenizer->eos_id() && !m.tokenizer->token_bytes(id).empty())
        pool.push_back(id);
  }
  CCC_CHECK(!pool.empty(), "head probe: the tokenizer has no ordinary token to draw from");
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<size_t> pick(0, pool.size() - 1);
  auto out = torch::empty({batch, 2 * L + 1}, torch::kInt64);
  auto acc = out.accessor<int64_t, 2>();
  for (int64_t b = 0; b < batch; ++b) {
    acc[b][0] = m.config.bos_id;
    for (int64_t i = 0; i < L; ++i) acc[b][1 + i] = acc[b][1 + L + i] = pool[pick(rng)];
  }
  return out;
}

HeadScores head_scores(model::LoadedModel& m, int64_t L, int64_t batch, uint64_t seed) {
  torch::InferenceMode guard;
  m.model->eval();
  auto tokens = probe_sequences(m, L, batch, seed);
  model::HookSet hooks;
  hooks.cache("blocks.*.attn.hook_pattern");
  auto logits = m.model->forward(tokens, {&hooks});
  HeadScores s;
  s.n_layers = m.config.n_layers;
  s.n_heads = m.config.n_heads;
  s.seq_len = L;
  s.batch = batch;
  for (int64_t l = 0; l < s.n_layers; ++l) {
    const auto& pattern = hooks.cached().at(model::hook_name(l, model::kPattern));
    auto per = pattern_scores(pattern, L);
    s.prev_token.insert(s.prev_token.end(), per[0].begin(), per[0].end());
    s.induction.insert(s.induction.end(), per[1].begin(), per[1].end());
    s.duplicate_token.insert(s.duplicate_token.end(), per[2].begin(), per[2].end());
  }
  // bits[b, i] predicts token i + 1: the first copy is tokens 1..L, the second L+1..2L
  auto bits = model::token_bits(logits.narrow(1, 0, 2 * L).to(torch::kFloat64), tokens.narrow(1, 1, 2 * L));
  s.first_half_bits = bits.narrow(1, 0, L).mean().item<double>();
  s.second_half_bits = bits.narrow(1, L, L).mean().item<double>();
  return s;
}

}  // namespace ccc::circuits
