#pragma once
// The report of a study: the result directories of `ccc experiment` (result.json, section.md, plots) made
// into one report.md and one self-contained report.html (plots embedded as data: URIs, no script or style
// from anywhere else, opens offline). First a summary table — the conjecture's claim, the experiment, the
// effect with its CI, the null, the verdict — then what these models cannot test, then every section.
// Rendering only: every figure comes from result.json or section.md as the experiment wrote it.

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ccc::experiments {

/// One experiment's output directory as the report reads it.
struct ReportEntry {
  std::string dir;            ///< as given
  nlohmann::json result;      ///< DIR/result.json
  std::string section;        ///< DIR/section.md
  std::vector<std::string> images;  ///< the section's image files (relative to dir), in order
};

/// Reads each DIR/result.json (schema ccc.experiment/1) and DIR/section.md. Throws ccc::Error naming the file
/// that is missing or malformed and what is wrong, or an image a section names that is missing.
std::vector<ReportEntry> read_report_entries(const std::vector<std::string>& dirs);

/// What a study of these models cannot test, said plainly (a section of every report).
const char* report_limits();

/// The summary table in Markdown (one row per entry).
std::string report_summary(const std::vector<ReportEntry>& entries);

/// report.md: title, summary, limits, then each section with its image links rewritten by `image_link`
/// (entry index, file as the section names it) -> the link to write.
std::string report_markdown(const std::vector<ReportEntry>& entries,
                            const std::function<std::string(size_t, const std::string&)>& image_link);

/// A Markdown subset to HTML: #–#### headings, paragraphs, pipe tables (alignment row), "- " lists, **bold**,
/// `code`, ![alt](src) images (src through `image_src`), [text](href) links; everything else escaped.
std::string markdown_to_html(const std::string& md, const std::function<std::string(const std::string&)>& image_src);

/// The whole page around report_markdown's content: inline style, every image a data:image/png;base64 URI
/// read from its entry's directory, and a check run on load that records how many images decoded in
/// <body data-images="loaded/total"> and how many errors the page raised (scripts, resources) in
/// data-errors (what the browser test reads).
std::string report_html(const std::vector<ReportEntry>& entries);

/// Standard base64 (RFC 4648, with padding).
std::string base64(const std::string& bytes);

}  // namespace ccc::experiments
