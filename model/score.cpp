#include "model/score.h"

#include <cmath>

#include "model/error.h"

namespace ccc::model {

std::vector<double> score_bits(Transformer& model, const std::vector<int64_t>& tokens, WindowPolicy policy,
                               HookSet* hooks) {
  torch::InferenceMode guard;
  const int64_t n = static_cast<int64_t>(tokens.size());
  std::vector<double> bits;
  if (n < 2) return bits;
  const int64_t W = policy.window > 0 ? policy.window : model->config().n_ctx;
  const int64_t S = policy.stride > 0 ? policy.stride : std::max<int64_t>(1, W / 2);
  CCC_CHECK(W >= 2 && W <= model->config().n_ctx, "window ", W, " must be in [2, n_ctx=", model->config().n_ctx, "]");
  CCC_CHECK(S >= 1 && S < W, "stride ", S, " must be in [1, window=", W, ")");
  bits.reserve(n - 1);
  int64_t scored = 0;  // predictions done: targets 1..scored
  for (int64_t start = 0; scored < n - 1; start += S) {
    const int64_t len = std::min(W, n - start);
    auto ids = torch::from_blob(const_cast<int64_t*>(tokens.data()) + start, {1, len}, torch::kInt64).clone();
    auto logits = model->forward(ids, {hooks});  // [1, len, V]
    auto logp = torch::log_softmax(logits[0].to(torch::kFloat64), -1);
    auto targets = ids[0].narrow(0, 1, len - 1);
    auto lp = logp.narrow(0, 0, len - 1).gather(1, targets.unsqueeze(1)).squeeze(1);  // [len-1]
    auto acc = lp.accessor<double, 1>();
    // prediction j in this window has target start + j + 1; keep those not yet scored
    for (int64_t j = scored - start; j < len - 1; ++j) bits.push_back(-acc[j] / std::log(2.0));
    scored = start + len - 1;
    if (start + len >= n) break;
  }
  return bits;
}

std::vector<int64_t> generate(Transformer& model, const std::vector<int64_t>& prompt, const GenerateOptions& opt) {
  torch::InferenceMode guard;
  CCC_CHECK(!prompt.empty(), "generate: empty prompt (prepend BOS)");
  const int64_t n_ctx = model->config().n_ctx;
  CCC_CHECK(static_cast<int64_t>(prompt.size()) < n_ctx, "generate: prompt of ", prompt.size(),
            " tokens fills the context n_ctx=", n_ctx);
  auto cache = model->make_cache(1);
  auto gen = at::detail::createCPUGenerator(opt.seed);
  std::vector<int64_t> out;
  auto input = torch::tensor(prompt, torch::kInt64).unsqueeze(0);
  for (int64_t i = 0; i < opt.max_new_tokens && cache.len < n_ctx; ++i) {
    auto logits = model->forward(input, {nullptr, &cache}).select(1, -1).squeeze(0);  // [V]
    int64_t next;
    if (opt.temperature <= 0) {
      next = logits.argmax().item<int64_t>();
    } else {
      auto probs = torch::softmax(logits.to(torch::kFloat64) / opt.temperature, -1);
      next = torch::multinomial(probs, 1, false, gen).item<int64_t>();
    }
    if (next == opt.stop_id) break;
    out.push_back(next);
    input = torch::tensor({next}, torch::kInt64).view({1, 1});
  }
  return out;
}

}  // namespace ccc::model
