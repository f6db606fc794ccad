#include "model/kernels/runtime.h"

#include <malloc.h>

#include <thread>

#include <torch/torch.h>

#include "model/kernels/parallel.h"

namespace ccc {

using model::set_decode_threads;

int init_runtime(int threads) {
  // Without this, every allocation above the mmap threshold (32 MiB at most) is a fresh mmap whose
  // pages the kernel zero-fills on first touch: measured 2x on gelu+softmax over [4096, 3072].
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_TOP_PAD, 64 << 20);
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(threads);
  set_decode_threads(threads);
  return torch::get_num_threads();
}

}  // namespace ccc
