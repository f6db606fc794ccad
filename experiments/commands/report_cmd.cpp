#include "experiments/commands/report_cmd.h"

#include <cstdio>
#include <filesystem>

#include "experiments/lib/report.h"
#include "model/base/error.h"
#include "model/base/fileio.h"
#include "model/base/util.h"

namespace fs = std::filesystem;

namespace ccc::experiments {

std::string run_report(const ReportCmdOptions& o, bool print) {
  CCC_CHECK(!o.out.empty(), "report: -o REPORT_DIR is required");
  std::error_code ec;
  CCC_CHECK(o.force || !fs::exists(o.out, ec), o.out, " exists (use --force to replace it)");
  for (const auto& d : o.dirs)
    CCC_CHECK(fs::weakly_canonical(d, ec) != fs::weakly_canonical(o.out, ec), "report: the output ", o.out,
              " is one of its inputs");
  const auto entries = read_report_entries(o.dirs);
  // report.md links its images beside it, flat: <entry>-<experiment>-<file>
  auto link = [&entries](size_t i, const std::string& f) {
    return std::to_string(i + 1) + "-" + entries[i].result.value("experiment", "experiment") + "-" + f;
  };
  const std::string md = report_markdown(entries, link), html = report_html(entries);
  OutputDir out(o.out, o.force);
  write_file_atomic(out.file("report.md"), md);
  write_file_atomic(out.file("report.html"), html);
  for (size_t i = 0; i < entries.size(); ++i)
    for (const auto& img : entries[i].images)
      write_file_atomic(out.file(link(i, img)), read_file((fs::path(entries[i].dir) / img).string()));
  out.commit();
  const std::string summary = report_summary(entries);
  if (print)
    std::printf("%s\nwrote %s (%zu experiments; open it in any browser, offline) and %s\n", summary.c_str(),
                (fs::path(o.out) / "report.html").string().c_str(), entries.size(),
                (fs::path(o.out) / "report.md").string().c_str());
  return summary;
}

}  // namespace ccc::experiments
