#include "experiments/lib/batched.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "model/base/dist.h"
#include "model/base/error.h"

namespace ccc::experiments {

void require_byte_model(const model::LoadedModel& m, const std::string& who) {
  CCC_CHECK(m.config.d_vocab_out == 256 && m.tokenizer && m.tokenizer->encode("Ab") == std::vector<int64_t>({'A', 'b'}), who,
            " needs a byte-level model (one token per byte); ", m.source, " is not");
}

namespace {

// log2 p of blocks [first, first + count) of `tokens`, [count, N, T, V] (float64)
torch::Tensor forward_blocks(model::LoadedModel& m, const torch::Tensor& tokens, int64_t first, int64_t count,
                             const BlockEdits& edits) {
  const int64_t N = tokens.size(0), T = tokens.size(1), R = count * N;
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
  return (torch::log_softmax(logits.to(torch::kFloat64), -1) / std::log(2.0)).view({count, N, T, -1});
}

}  // namespace

void run_blocks(model::LoadedModel& m, const torch::Tensor& tokens, int64_t blocks, const BlockEdits& edits,
                int64_t max_rows, const std::function<void(int64_t, int64_t, const torch::Tensor&)>& take,
                const std::function<void(int64_t)>& done) {
  torch::InferenceMode guard;
  const int64_t per_call = std::max<int64_t>(1, max_rows / tokens.size(0));
  for (int64_t first = 0; first < blocks; first += per_call) {
    const int64_t count = std::min(per_call, blocks - first);
    take(first, count, forward_blocks(m, tokens, first, count, edits));
    if (done) done(first + count);
  }
}

void run_blocks_sharded(model::LoadedModel& m, const torch::Tensor& tokens, int64_t blocks, const BlockEdits& edits,
                        int64_t max_rows, const std::function<std::string(int64_t, int64_t, const torch::Tensor&)>& reduce,
                        const std::function<void(int64_t, int64_t, std::string_view)>& take,
                        const std::function<void(int64_t)>& done) {
  torch::InferenceMode guard;
  const int64_t per_call = std::max<int64_t>(1, max_rows / tokens.size(0));
  const int64_t units = (blocks + per_call - 1) / per_call;
  int64_t finished = 0;
  const auto res = dist::map(units, [&](int64_t u) {
    const int64_t first = u * per_call, count = std::min(per_call, blocks - first);
    return reduce(first, count, forward_blocks(m, tokens, first, count, edits));
  }, [&](int64_t u) {
    finished += std::min(per_call, blocks - u * per_call);
    if (done) done(finished);
  });
  for (int64_t u = 0; u < units; ++u) {
    const int64_t first = u * per_call;
    take(first, std::min(per_call, blocks - first), res[static_cast<size_t>(u)]);
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
  const int64_t N = tokens.size(0), T1 = tokens.size(1) - 1;
  const auto next = tokens.narrow(1, 1, T1);  // [N, T − 1]
  run_blocks_sharded(m, tokens, blocks, edits, max_rows, [&](int64_t, int64_t count, const torch::Tensor& log2p) {
    std::string bytes;
    for (int64_t j = 0; j < count; ++j) {
      auto lp = log2p[j].narrow(1, 0, T1);  // [N, T − 1, V]
      const auto b = (-lp.gather(2, next.unsqueeze(2)).squeeze(2)).to(torch::kFloat64).contiguous();
      bytes.append(static_cast<const char*>(b.data_ptr()), static_cast<size_t>(b.numel()) * sizeof(double));
    }
    return bytes;
  }, [&](int64_t first, int64_t count, std::string_view bytes) {
    const size_t per = static_cast<size_t>(N * T1) * sizeof(double);
    CCC_CHECK(bytes.size() == per * static_cast<size_t>(count), "next_token_bits: a unit's results have the wrong size");
    for (int64_t j = 0; j < count; ++j) {
      auto t = torch::empty({N, T1}, torch::kFloat64);
      std::memcpy(t.data_ptr(), bytes.data() + per * static_cast<size_t>(j), per);
      out[static_cast<size_t>(first + j)] = t;
    }
  }, done);
  return out;
}

}  // namespace ccc::experiments
