#include "model/kernels/parallel.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace ccc::model {

namespace {

class Pool {
 public:
  ~Pool() { stop(); }

  int threads() const { return threads_.load(); }
  void set_threads(int n) {
    n = std::max(1, n);
    std::lock_guard<std::mutex> busy(busy_);
    if (n == threads_.load()) return;
    stop();
    threads_ = n;
  }

  void run(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
    const int64_t parts = std::min<int64_t>(threads_.load(), std::max<int64_t>(1, n / std::max<int64_t>(1, grain)));
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (parts <= 1 || !busy.owns_lock()) {
      if (n > 0) fn(0, n);
      return;
    }
    start(static_cast<int>(parts) - 1);
    fn_ = &fn;
    n_ = n;
    parts_ = parts;
    pending_.store(parts - 1, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lock(mu_);
      generation_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    fn(0, n / parts);  // the caller takes the first range
    while (pending_.load(std::memory_order_acquire) != 0) _mm_pause();
    fn_ = nullptr;
  }

 private:
  void start(int helpers) {
    while (static_cast<int>(workers_.size()) < helpers) {
      // the generation the new helper has seen: the next split's bump must wake it even when the
      // thread starts running only after that bump
      const int64_t index = static_cast<int64_t>(workers_.size()) + 1;
      const uint64_t seen = generation_.load(std::memory_order_acquire);
      workers_.emplace_back([this, index, seen] { loop(index, seen); });
    }
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      quit_ = true;
      generation_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
    quit_ = false;
  }

  void loop(int64_t index, uint64_t seen) {
    for (;;) {
      // spin a few microseconds for the next split, then sleep
      for (int i = 0; i < 4000 && generation_.load(std::memory_order_acquire) == seen; ++i) _mm_pause();
      if (generation_.load(std::memory_order_acquire) == seen) {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      }
      seen = generation_.load(std::memory_order_acquire);
      if (quit_) return;
      if (index < parts_) {
        (*fn_)(n_ * index / parts_, n_ * (index + 1) / parts_);
        pending_.fetch_sub(1, std::memory_order_acq_rel);
      }
    }
  }

  std::atomic<int> threads_{1};
  std::mutex busy_;  // one split at a time
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int64_t> pending_{0};
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0, parts_ = 0;
  bool quit_ = false;
  std::vector<std::thread> workers_;
};

Pool& pool() {
  static Pool p;
  return p;
}

}  // namespace

int decode_threads() { return pool().threads(); }
void set_decode_threads(int n) { pool().set_threads(n); }
void parallel_ranges(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  pool().run(n, grain, fn);
}

}  // namespace ccc::model
