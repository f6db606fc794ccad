#include "model/core/bits.h"

#include "model/base/error.h"

namespace ccc::model {

torch::Tensor token_bits(const torch::Tensor& logits, const torch::Tensor& targets) {
  CCC_CHECK(logits.dim() == targets.dim() + 1 && logits.sizes().slice(0, targets.dim()) == targets.sizes(),
            "token_bits: logits ", logits.sizes(), " do not match targets ", targets.sizes());
  auto lp = torch::log_softmax(logits, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1);
  return lp * (-kBitsPerNat);
}

torch::Tensor total_bits(const torch::Tensor& logits, const torch::Tensor& targets) {
  return token_bits(logits, targets).sum();
}

}  // namespace ccc::model
