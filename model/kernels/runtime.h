#pragma once
// Process-level runtime settings for ccc executables (not called by the library itself).

namespace ccc {

/// Sets LibTorch's intra-op threads (0 = all cores; Debian's OpenMP build otherwise starts with 1) and
/// keeps large freed blocks in glibc's heap instead of returning them to the kernel, so the big
/// activations of every forward (logits, attention scores) are reused instead of page-faulted anew.
/// The decode step's helper threads follow the same count (model/kernels/parallel.h). Returns the
/// thread count in effect.
int init_runtime(int threads = 0);

}  // namespace ccc
