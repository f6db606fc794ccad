#include "experiments/lib/report.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "model/base/error.h"
#include "model/base/util.h"
#include "tests/support/test_support.h"

namespace ccc::experiments {
namespace {

TEST(Report, Base64MatchesTheRfc4648Vectors) {
  EXPECT_EQ(base64(""), "");
  EXPECT_EQ(base64("f"), "Zg==");
  EXPECT_EQ(base64("fo"), "Zm8=");
  EXPECT_EQ(base64("foo"), "Zm9v");
  EXPECT_EQ(base64("foob"), "Zm9vYg==");
  EXPECT_EQ(base64("fooba"), "Zm9vYmE=");
  EXPECT_EQ(base64("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64(std::string("\xff\x00\xfe", 3)), "/wD+");
}

TEST(Report, MarkdownBecomesEscapedHtml) {
  const std::string md = "## A <title>\n\nsome **bold** and `x<y` text\ncontinued\n\n| a | b |\n|---|---:|\n| 1 | 2 |\n"
                         "| <script> | 3 |\n\n- one\n- two\n\n![plot](p.png) and [link](https://example.org)\n";
  const auto html = markdown_to_html(md, [](const std::string& s) { return "data:" + s; });
  EXPECT_NE(html.find("<h2>A &lt;title&gt;</h2>"), std::string::npos) << html;
  EXPECT_NE(html.find("<p>some <strong>bold</strong> and <code>x&lt;y</code> text continued</p>"), std::string::npos) << html;
  EXPECT_NE(html.find("<th>a</th><th class=\"num\">b</th>"), std::string::npos) << html;
  EXPECT_NE(html.find("<td>1</td><td class=\"num\">2</td>"), std::string::npos) << html;
  EXPECT_NE(html.find("<td>&lt;script&gt;</td>"), std::string::npos) << html;
  EXPECT_EQ(html.find("<script>"), std::string::npos) << "no markup passes through unescaped";
  EXPECT_NE(html.find("<ul>\n<li>one</li>\n<li>two</li>\n</ul>"), std::string::npos) << html;
  EXPECT_NE(html.find("<img alt=\"plot\" src=\"data:p.png\">"), std::string::npos) << html;
  EXPECT_NE(html.find("<a href=\"https://example.org\">link</a>"), std::string::npos) << html;
}

// A result directory the report reads, and every way it can be wrong: named file, named problem.
TEST(Report, ReadsResultDirectoriesAndNamesWhatIsWrong) {
  test::TempDir tmp;
  const std::string d = tmp.file("exp");
  std::filesystem::create_directories(d);
  nlohmann::json r = {{"schema", "ccc.experiment/1"}, {"experiment", "toy"}, {"verdict", "supported"},
                      {"model", "/m/default"}, {"input", "in.txt"}, {"claim", "A claim."}, {"headline", "effect"},
                      {"measurements", {{"effect", {{"value", 0.5}, {"ci_low", 0.4}, {"ci_high", 0.6}}}}},
                      {"null", {{"effect", {{"value", 0.1}, {"ci_low", 0.0}, {"ci_high", 0.2}}}}}};
  test::expect_error([&] { read_report_entries({d}); }, {"result.json", "missing"});
  write_file_atomic(d + "/result.json", "{not json");
  write_file_atomic(d + "/section.md", "## toy\n\n![p](plot.png)\n");
  test::expect_error([&] { read_report_entries({d}); }, {"result.json", "not valid JSON"});
  write_file_atomic(d + "/result.json", nlohmann::json{{"schema", "ccc.units/1"}}.dump());
  test::expect_error([&] { read_report_entries({d}); }, {"result.json", "ccc.experiment/1"});
  write_file_atomic(d + "/result.json", r.dump());
  test::expect_error([&] { read_report_entries({d}); }, {"section.md", "plot.png", "missing"});
  write_file_atomic(d + "/plot.png", std::string("\x89PNG\r\n\x1a\n", 8));
  const auto e = read_report_entries({d});
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].images, std::vector<std::string>{"plot.png"});
  const auto summary = report_summary(e);
  EXPECT_NE(summary.find("| A claim. | toy (default, in.txt) | effect = 0.500 [0.400, 0.600] | 0.100 [0.000, 0.200] | **supported** |"),
            std::string::npos) << summary;
  const auto md = report_markdown(e, [](size_t i, const std::string& f) { return std::to_string(i) + "-" + f; });
  EXPECT_NE(md.find("![p](0-plot.png)"), std::string::npos) << md;
  EXPECT_NE(md.find("cannot test"), std::string::npos);
  const auto html = report_html(e);
  EXPECT_NE(html.find("src=\"data:image/png;base64," + base64(std::string("\x89PNG\r\n\x1a\n", 8)) + "\""), std::string::npos);
  EXPECT_EQ(html.find("http"), std::string::npos) << "nothing is fetched from anywhere";
  write_file_atomic(d + "/section.md", "![p](../x.png)\n");
  test::expect_error([&] { read_report_entries({d}); }, {"section.md", "../x.png", "not a file inside"});
}

}  // namespace
}  // namespace ccc::experiments
