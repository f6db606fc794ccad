#include "experiments/support/progress_hooks.h"

#include <algorithm>
#include <cstdio>

namespace ccc::experiments {

RunProgress::RunProgress(std::string what, int64_t total, bool enabled)
    : line_(std::move(what), total, enabled), total_(total) {}

void RunProgress::attach(model::HookSet& hs, const std::string& site) {
  hs.observe(site, [this](const torch::Tensor&, const model::HookContext& ctx) {
    if (ctx.run == nullptr || ctx.run->position.empty()) return;
    const auto& run = *ctx.run;
    std::lock_guard<std::mutex> lock(mu_);
    for (int64_t r = 0; r < run.batch; ++r) {
      if (!run.live.empty() && !run.live[r]) continue;
      int64_t hi = -1;
      for (int64_t i = 0; i < run.pos; ++i) hi = std::max(hi, run.position_at(r, i));
      auto& n = next_[run.stream.empty() ? 0 : run.stream[r]];
      if (hi + 1 > n) {
        done_ += hi + 1 - n;
        n = hi + 1;
      }
    }
    line_.update(std::min(done_, total_));
  });
}

void RunProgress::finish() { line_.update(total_); }

std::string escape_bytes(std::string_view bytes) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    switch (c) {
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      default:
        if (c >= 32 && c < 127) {
          out += static_cast<char>(c);
        } else {
          out += "\\x";
          out += kHex[c >> 4];
          out += kHex[c & 15];
        }
    }
  }
  return out;
}

}  // namespace ccc::experiments
