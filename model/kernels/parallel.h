#pragma once
// Helper threads for the decode step: a single-token step is a few dozen small GEMMs and attention
// calls of tens of microseconds each, too short for a framework's thread pool or a thread per call.
// The helpers spin briefly between calls (then sleep), so a split costs about a microsecond.
//
// Work is cut into contiguous index ranges and each index is computed by exactly one thread with the
// same arithmetic, so results never depend on the thread count. One split runs at a time: a call made
// while another thread's split is in flight runs serially (the compressor's parallel groups pin the
// decode threads to 1 anyway, as they do for BLAS).

#include <cstdint>
#include <functional>

namespace ccc::model {

/// Threads the decode step may use, the caller included (default 1; ccc's CLI sets all cores).
int decode_threads();
/// Sets decode_threads() (process-wide; 1 = no helpers). Helpers start lazily.
void set_decode_threads(int n);

/// Runs fn(begin, end) over [0, n) split into decode_threads() contiguous ranges of at least `grain`
/// indices each (fewer ranges when n is small); returns when all are done.
void parallel_ranges(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

/// Pins decode_threads() to `n` for the lifetime of the object (restores the previous count).
class ScopedDecodeThreads {
 public:
  explicit ScopedDecodeThreads(int n) : prev_(decode_threads()) { set_decode_threads(n); }
  ~ScopedDecodeThreads() { set_decode_threads(prev_); }
  ScopedDecodeThreads(const ScopedDecodeThreads&) = delete;
  ScopedDecodeThreads& operator=(const ScopedDecodeThreads&) = delete;

 private:
  int prev_;
};

}  // namespace ccc::model
