#include "experiments/lib/batched.h"

#include <algorithm>
#include <cmath>

#include "model/base/error.h"

namespace ccc::experiments {

void require_byte_model(const model::LoadedModel& m, const std::string& who) {
  CCC_CHECK(m.config.d_vocab_out == 256 && m.tokenizer && m.tokenizer->encode("Ab") == std::vector<int64_t>({'A', 'b'}), who,
            " needs a byte-level model (one token per byte); ", m.source, " is not");
}

void run_blocks(model::LoadedModel& m, const torch::Tensor& tokens, int64_t blocks, const BlockEdits& edits,
                int64_t max_rows, const std::function<void(int64_t, int64_t, const torch::Tensor&)>& take,
                const std::function<void(int64_t)>& done) {
  torch::InferenceMode guard;
  const int64_t N = tokens.size(0), T = tokens.size(1);
  const int64_t per_call = std::max<int64_t>(1, max_rows / N);
  for (int64_t first = 0; first < blocks; first += per_call) {
    const int64_t count = std::min(per_call, blocks - first), R = count * N;
    model::RunInfo info = model::RunInfo::empty(R, T);
    for (int64_t r = 0; r < R; ++r) {
      info.stream[static_cast<size_t>(r)] = r;
      for (int64_t i = 0; i < T; ++i) {
        info.position[static_cast<size_t>(r * T + i)] = i;
        info.byte_offset[static_cast<size_t>(r * T + i)] = i - 1;
      }
    }
    model::HookSet hs;
    if (edits) edits(hs, first, count, N);
    model::RunOptions run;
    run.hooks = hs.empty() ? nullptr : &hs;
    run.info = &info;
    auto logits = m.model->forward(tokens.repeat({count, 1}), run);  // [R, T, V]
    take(first, count, (torch::log_softmax(logits.to(torch::kFloat64), -1) / std::log(2.0)).view({count, N, T, -1}));
    if (done) done(first + count);
  }
}

BlockEdits ablation_edits(const model::ModelConfig& cfg, const std::vector<std::vector<circuits::Component>>& sets,
                          circuits::Mode mode, const circuits::Reference* ref, uint64_t seed) {
  return [&cfg, &sets, mode, ref, seed](model::HookSet& hs, int64_t first, int64_t count, int64_t rows_per) {
    std::vector<std::vector<circuits::Component>> per(sets.begin() + first, sets.begin() + first + count);
    bool any = false;
    for (const auto& s : per) any = any || !s.empty();
    if (any) circuits::install_ablation(hs, cfg, per, rows_per, mode, ref, seed);
  };
}

std::vector<torch::Tensor> next_token_bits(model::LoadedModel& m, const torch::Tensor& tokens, int64_t blocks,
                                           const BlockEdits& edits, int64_t max_rows, const std::function<void(int64_t)>& done) {
  std::vector<torch::Tensor> out(static_cast<size_t>(blocks));
  const auto next = tokens.narrow(1, 1, tokens.size(1) - 1);  // [N, T − 1]
  run_blocks(m, tokens, blocks, edits, max_rows, [&](int64_t first, int64_t count, const torch::Tensor& log2p) {
    for (int64_t j = 0; j < count; ++j) {
      auto lp = log2p[j].narrow(1, 0, tokens.size(1) - 1);  // [N, T − 1, V]
      out[static_cast<size_t>(first + j)] = -lp.gather(2, next.unsqueeze(2)).squeeze(2).to(torch::kFloat64);
    }
  }, done);
  return out;
}

}  // namespace ccc::experiments
