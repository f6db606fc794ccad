#pragma once
// Prompts of one length scored side by side, each block of rows with its own edits: the experiments'
// workhorse for many short sequences (copy-vs-recall's prompts, icl's windows). Rows r of a call are
// `count` blocks of N prompts; RunInfo gives row r stream r (so r % N is the prompt: resample draws are
// paired across blocks) and positions 0..T−1, byte offsets position − 1.

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <torch/torch.h>

#include "circuits/ablation.h"
#include "model/core/hooks.h"
#include "model/formats/loader.h"

namespace ccc::experiments {

/// Throws ccc::Error naming `who` and the model unless `m` is byte-level (one token per byte, 256 outputs).
void require_byte_model(const model::LoadedModel& m, const std::string& who);

/// Installs the edits of blocks [first, first + count) of a call whose rows are `count` blocks of `rows_per`
/// prompts each.
using BlockEdits = std::function<void(model::HookSet&, int64_t first, int64_t count, int64_t rows_per)>;

/// Runs `blocks` copies of `tokens` [N, T] (int64), at most max(1, max_rows / N) copies a forward, in
/// inference mode; `take(first, count, log2p)` receives log2 p of every next token, log2p [count, N, T, V]
/// (float64). `done(blocks finished)` after each forward.
void run_blocks(model::LoadedModel& m, const torch::Tensor& tokens, int64_t blocks, const BlockEdits& edits,
                int64_t max_rows, const std::function<void(int64_t first, int64_t count, const torch::Tensor& log2p)>& take,
                const std::function<void(int64_t)>& done = {});

/// run_blocks split across MPI ranks (model/base/dist.h): each forward (the same block ranges as run_blocks)
/// is a unit on one rank; `reduce(first, count, log2p)` turns its log2p into bytes there, and every rank then
/// receives every forward's bytes in order through `take(first, count, bytes)`. One process: run_blocks.
/// `done` counts this rank's blocks.
void run_blocks_sharded(model::LoadedModel& m, const torch::Tensor& tokens, int64_t blocks, const BlockEdits& edits,
                        int64_t max_rows, const std::function<std::string(int64_t first, int64_t count, const torch::Tensor& log2p)>& reduce,
                        const std::function<void(int64_t first, int64_t count, std::string_view bytes)>& take,
                        const std::function<void(int64_t)>& done = {});

/// BlockEdits that ablate component set sets[i] in block i (empty sets leave their block clean).
BlockEdits ablation_edits(const model::ModelConfig& cfg, const std::vector<std::vector<circuits::Component>>& sets,
                          circuits::Mode mode, const circuits::Reference* ref, uint64_t seed);

/// Bits of each row's own next tokens: [blocks][N][T − 1] (float64), tokens[:, t + 1] under position t.
/// Sharded across MPI ranks (run_blocks_sharded).
std::vector<torch::Tensor> next_token_bits(model::LoadedModel& m, const torch::Tensor& tokens, int64_t blocks,
                                           const BlockEdits& edits, int64_t max_rows,
                                           const std::function<void(int64_t)>& done = {});

}  // namespace ccc::experiments
