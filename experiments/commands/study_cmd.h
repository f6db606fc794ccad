#pragma once
// `ccc study [--quick] -o DIR`: every experiment of the Circuit Competition Conjecture on the default model
// and at least one more (a smaller family member for competition, the ICL-trained ccc-byte-l-icl for
// copy-vs-recall, the attention-only organism ccc-attn2 for icl, the whole family for scaling), each into
// DIR/<experiment>-<model>/, then the report of them all in DIR/report (report.html, report.md).

#include <cstdint>
#include <string>
#include <vector>

namespace ccc::experiments {

struct StudyCmdOptions {
  std::string out;
  bool quick = false;
  bool default_only = false;           ///< only the default model (scaling, which needs the family, is left out)
  std::vector<std::string> experiments;  ///< a subset (default: every experiment)
  std::string corpora_dir;
  uint64_t seed = 0;
  bool force = false;
  bool progress = true;
  std::string command;
};

void run_study(const StudyCmdOptions& o);

}  // namespace ccc::experiments
