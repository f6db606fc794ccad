#include "model/kernels/runtime.h"

#include <malloc.h>

#include <thread>

#include <torch/torch.h>

#include "model/base/util.h"
#include "model/kernels/blas_threads.h"
#include "model/kernels/parallel.h"

namespace ccc {

using model::set_decode_threads;

int init_runtime(int threads) {
  // Without this, every allocation above the mmap threshold (32 MiB at most) is a fresh mmap whose
  // pages the kernel zero-fills on first touch: measured 2x on gelu+softmax over [4096, 3072].
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_TOP_PAD, 64 << 20);
  if (threads <= 0) threads = available_cores();
  torch::set_num_threads(threads);
  set_decode_threads(threads);
  // OpenBLAS keeps its own thread count (LibTorch's setting does not reach it): without this a
  // `--threads 1` run still multiplied matrices on every core (and mpirun's ranks oversubscribed them)
  model::set_blas_threads(threads);
  return torch::get_num_threads();
}

}  // namespace ccc
