#pragma once
// `ccc bench units`: unit analysis of a dump (rows/s, peak memory).

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace ccc::experiments {

struct BenchUnitsOptions {
  std::string tokenizer;  ///< overrides discovery
  std::string model;
  int64_t dump_mb = 50;
};
void bench_units(const BenchUnitsOptions& o, std::ostream& out);

}  // namespace ccc::experiments
