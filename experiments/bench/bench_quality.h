#pragma once
// `ccc bench quality`: held-out bits/byte of the shipped models beside bzip2 -9 and xz -9e on the same bytes.

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace ccc::experiments {

/// `ccc bench quality`: held-out bpb of the shipped models next to bzip2 -9 and xz -9e on the same bytes.
void bench_quality(const std::vector<std::string>& models, const std::string& corpora_dir, const std::string& tokenizer = "");

}  // namespace ccc::experiments
