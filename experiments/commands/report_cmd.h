#pragma once
// `ccc report DIR... -o REPORT_DIR`: the result directories of `ccc experiment` made into report.md and a
// self-contained report.html (experiments/lib/report.h), written all or nothing.

#include <string>
#include <vector>

namespace ccc::experiments {

struct ReportCmdOptions {
  std::vector<std::string> dirs;  ///< `ccc experiment` output directories
  std::string out;                ///< the report directory
  bool force = false;
};

/// Writes the report; returns the summary table (Markdown) it printed.
std::string run_report(const ReportCmdOptions& o, bool print = true);

}  // namespace ccc::experiments
