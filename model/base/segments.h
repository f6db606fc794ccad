#pragma once
// The one segmentation formula of ccc: an input of n bytes split into B streams (the container format and
// the scoring unit both use it; no torch).

#include <cstdint>
#include <utility>

namespace ccc {

/// Byte range of segment i of B over n bytes: [i·n/B, (i+1)·n/B) (128-bit products: exact for any n).
inline std::pair<uint64_t, uint64_t> segment_range(uint64_t n, uint64_t B, uint64_t i) {
  __extension__ typedef unsigned __int128 u128;
  const auto at = [&](uint64_t k) { return static_cast<uint64_t>(static_cast<u128>(n) * k / B); };
  return {at(i), at(i + 1)};
}

}  // namespace ccc
