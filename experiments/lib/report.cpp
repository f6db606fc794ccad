#include "experiments/lib/report.h"

#include <cstdio>
#include <filesystem>
#include <sstream>

#include "model/base/error.h"
#include "model/base/util.h"

namespace fs = std::filesystem;

namespace ccc::experiments {

namespace {

std::string fmt(double x) {
  char b[64];
  std::snprintf(b, sizeof b, "%.3f", x);
  return b;
}

// ![alt](src) occurrences of a Markdown text, in order: the src of each.
std::vector<std::string> image_sources(const std::string& md) {
  std::vector<std::string> out;
  for (size_t at = md.find("!["); at != std::string::npos; at = md.find("![", at + 2)) {
    const size_t close = md.find("](", at);
    const size_t end = close == std::string::npos ? close : md.find(')', close);
    if (end != std::string::npos && md.find('\n', at) > end) out.push_back(md.substr(close + 2, end - close - 2));
  }
  return out;
}

std::string escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}

// Inline Markdown: `code`, **bold**, ![alt](src), [text](href); the rest escaped.
std::string inline_html(const std::string& s, const std::function<std::string(const std::string&)>& image_src) {
  std::string o;
  for (size_t i = 0; i < s.size();) {
    if (s[i] == '`') {
      const size_t e = s.find('`', i + 1);
      if (e != std::string::npos) {
        o += "<code>" + escape(s.substr(i + 1, e - i - 1)) + "</code>";
        i = e + 1;
        continue;
      }
    }
    if (s.compare(i, 2, "**") == 0) {
      const size_t e = s.find("**", i + 2);
      if (e != std::string::npos) {
        o += "<strong>" + inline_html(s.substr(i + 2, e - i - 2), image_src) + "</strong>";
        i = e + 2;
        continue;
      }
    }
    const bool img = s.compare(i, 2, "![") == 0;
    if (img || s[i] == '[') {
      const size_t start = i + (img ? 2 : 1), mid = s.find("](", start);
      const size_t end = mid == std::string::npos ? mid : s.find(')', mid);
      if (end != std::string::npos) {
        const std::string text = s.substr(start, mid - start), target = s.substr(mid + 2, end - mid - 2);
        if (img) o += "<img alt=\"" + escape(text) + "\" src=\"" + escape(image_src(target)) + "\">";
        else o += "<a href=\"" + escape(target) + "\">" + inline_html(text, image_src) + "</a>";
        i = end + 1;
        continue;
      }
    }
    o += escape(std::string(1, s[i]));
    ++i;
  }
  return o;
}

std::vector<std::string> cells(std::string line) {
  std::vector<std::string> out;
  if (!line.empty() && line.front() == '|') line.erase(0, 1);
  if (!line.empty() && line.back() == '|') line.pop_back();
  std::string cur;
  for (char c : line) {
    if (c == '|') out.push_back(cur), cur.clear();
    else cur += c;
  }
  out.push_back(cur);
  for (auto& c : out) {
    const size_t a = c.find_first_not_of(' '), b = c.find_last_not_of(' ');
    c = a == std::string::npos ? "" : c.substr(a, b - a + 1);
  }
  return out;
}

}  // namespace

std::string base64(const std::string& bytes) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string o;
  o.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    const uint32_t a = static_cast<uint8_t>(bytes[i]);
    const uint32_t b = i + 1 < bytes.size() ? static_cast<uint8_t>(bytes[i + 1]) : 0;
    const uint32_t c = i + 2 < bytes.size() ? static_cast<uint8_t>(bytes[i + 2]) : 0;
    const uint32_t v = a << 16 | b << 8 | c;
    o += k[v >> 18 & 63];
    o += k[v >> 12 & 63];
    o += i + 1 < bytes.size() ? k[v >> 6 & 63] : '=';
    o += i + 2 < bytes.size() ? k[v & 63] : '=';
  }
  return o;
}

std::vector<ReportEntry> read_report_entries(const std::vector<std::string>& dirs) {
  CCC_CHECK(!dirs.empty(), "report: no result directory given");
  std::vector<ReportEntry> out;
  for (const auto& dir : dirs) {
    ReportEntry e;
    e.dir = dir;
    const std::string rj = (fs::path(dir) / "result.json").string(), sm = (fs::path(dir) / "section.md").string();
    std::error_code ec;
    CCC_CHECK(fs::is_regular_file(rj, ec), rj, ": missing (is ", dir, " a `ccc experiment` output directory?)");
    CCC_CHECK(fs::is_regular_file(sm, ec), sm, ": missing");
    try {
      e.result = nlohmann::json::parse(read_file(rj));
    } catch (const nlohmann::json::exception& x) {
      CCC_FAIL(rj, ": not valid JSON (", x.what(), ")");
    }
    CCC_CHECK(e.result.is_object() && e.result.value("schema", "") == "ccc.experiment/1", rj,
              ": not a ccc experiment result (schema ", e.result.is_object() ? e.result.value("schema", "none") : "none",
              ", expected ccc.experiment/1)");
    for (const char* key : {"experiment", "verdict", "measurements", "null", "model"})
      CCC_CHECK(e.result.contains(key), rj, ": no \"", key, "\" field");
    e.section = read_file(sm);
    for (const auto& img : image_sources(e.section)) {
      CCC_CHECK(img.find("..") == std::string::npos && !img.empty() && img[0] != '/', sm, ": image ", img,
                " is not a file inside ", dir);
      CCC_CHECK(fs::is_regular_file(fs::path(dir) / img, ec), sm, ": image ", img, " is missing from ", dir);
      e.images.push_back(img);
    }
    out.push_back(std::move(e));
  }
  return out;
}

const char* report_limits() {
  return "## What these models cannot test\n\n"
         "The models here are small byte-level transformers (up to ~4 M parameters, 5 layers) trained by this project on "
         "a few MB of English text and code. The conjecture is also offered as the explanation of chain-of-thought "
         "reasoning, instruction following and abilities that appear only at scale; none of these can be tested "
         "with these models: they were not instruction-tuned, do not reason in steps, and span too small a range of "
         "sizes. Verdicts below are about these models on these inputs. A verdict is decided by the rule stated "
         "beside it, fixed before the data was seen; \"inconclusive\" means the data did not separate the effect "
         "from its null, not that the claim is false.\n";
}

std::string report_summary(const std::vector<ReportEntry>& entries) {
  std::ostringstream md;
  md << "| claim of the conjecture | experiment | effect (95% CI) | null (95% range) | verdict |\n|---|---|---|---|---|\n";
  for (const auto& e : entries) {
    const auto& r = e.result;
    const std::string key = r.value("headline", "");
    std::string effect = "-", null = "-";
    if (!key.empty() && r["measurements"].contains(key)) {
      const auto& m = r["measurements"][key];
      effect = key + " = " + fmt(m.value("value", 0.0)) + " [" + fmt(m.value("ci_low", 0.0)) + ", " +
               fmt(m.value("ci_high", 0.0)) + "]";
    }
    if (!key.empty() && r["null"].contains(key)) {
      const auto& n = r["null"][key];
      null = fmt(n.value("value", 0.0)) + " [" + fmt(n.value("ci_low", 0.0)) + ", " + fmt(n.value("ci_high", 0.0)) + "]";
    }
    const std::string model = fs::path(r.value("model", "")).filename().string();
    md << "| " << r.value("claim", "-") << " | " << r.value("experiment", "") << " (" << model << ", "
       << r.value("input", "") << (r.value("quick", false) ? ", quick" : "") << ") | " << effect << " | " << null
       << " | **" << r.value("verdict", "") << "** |\n";
  }
  return md.str();
}

std::string report_markdown(const std::vector<ReportEntry>& entries,
                            const std::function<std::string(size_t, const std::string&)>& image_link) {
  std::ostringstream md;
  md << "# The Circuit Competition Conjecture, measured in bits\n\n"
     << "Each row is one experiment of `ccc experiment`; its section below gives the hypothesis, every measurement "
        "beside its null, the rule that decided the verdict, and the plots.\n\n"
     << report_summary(entries) << "\n" << report_limits();
  for (size_t i = 0; i < entries.size(); ++i) {
    std::string s = entries[i].section;
    for (const auto& img : entries[i].images) {
      const std::string from = "](" + img + ")", to = "](" + image_link(i, img) + ")";
      for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
    }
    md << "\n" << s;
    if (!s.empty() && s.back() != '\n') md << "\n";
  }
  return md.str();
}

std::string markdown_to_html(const std::string& md, const std::function<std::string(const std::string&)>& image_src) {
  std::vector<std::string> lines;
  std::istringstream in(md);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  std::ostringstream o;
  std::string para;
  auto flush = [&] {
    if (!para.empty()) o << "<p>" << inline_html(para, image_src) << "</p>\n";
    para.clear();
  };
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string& l = lines[i];
    if (l.empty()) {
      flush();
      continue;
    }
    size_t h = 0;
    while (h < l.size() && h < 4 && l[h] == '#') ++h;
    if (h > 0 && h < l.size() && l[h] == ' ') {
      flush();
      o << "<h" << h << ">" << inline_html(l.substr(h + 1), image_src) << "</h" << h << ">\n";
      continue;
    }
    if (l[0] == '|' && i + 1 < lines.size() && lines[i + 1].rfind("|-", 0) == 0) {
      flush();
      const auto head = cells(l), align = cells(lines[i + 1]);
      o << "<table>\n<thead><tr>";
      auto style = [&](size_t c) {
        return c < align.size() && !align[c].empty() && align[c].back() == ':' ? " class=\"num\"" : "";
      };
      for (size_t c = 0; c < head.size(); ++c) o << "<th" << style(c) << ">" << inline_html(head[c], image_src) << "</th>";
      o << "</tr></thead>\n<tbody>\n";
      i += 2;
      for (; i < lines.size() && !lines[i].empty() && lines[i][0] == '|'; ++i) {
        const auto row = cells(lines[i]);
        o << "<tr>";
        for (size_t c = 0; c < row.size(); ++c) o << "<td" << style(c) << ">" << inline_html(row[c], image_src) << "</td>";
        o << "</tr>\n";
      }
      --i;
      o << "</tbody>\n</table>\n";
      continue;
    }
    if (l.rfind("- ", 0) == 0) {
      flush();
      o << "<ul>\n";
      for (; i < lines.size() && lines[i].rfind("- ", 0) == 0; ++i) o << "<li>" << inline_html(lines[i].substr(2), image_src) << "</li>\n";
      --i;
      o << "</ul>\n";
      continue;
    }
    para += (para.empty() ? "" : " ") + l;
  }
  flush();
  return o.str();
}

std::string report_html(const std::vector<ReportEntry>& entries) {
  // images travel as "entry:file" links through the Markdown, then become data: URIs
  const std::string md = report_markdown(entries, [](size_t i, const std::string& f) { return std::to_string(i) + ":" + f; });
  auto src = [&entries](const std::string& link) -> std::string {
    const size_t colon = link.find(':');
    if (colon == std::string::npos) return link;
    const size_t i = std::stoul(link.substr(0, colon));
    const std::string file = link.substr(colon + 1);
    const std::string bytes = read_file((fs::path(entries.at(i).dir) / file).string());
    return "data:image/png;base64," + base64(bytes);
  };
  std::ostringstream h;
  h << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
       "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
       "<title>ccc: the Circuit Competition Conjecture, measured in bits</title>\n<style>\n"
       "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;"
       "line-height:1.45;color:#222}\n"
       "table{border-collapse:collapse;margin:1em 0;font-size:0.9em}th,td{border:1px solid #ccc;padding:0.25em 0.5em;"
       "vertical-align:top}th{background:#f3f3f3}td.num,th.num{text-align:right}\n"
       "img{max-width:100%;height:auto;display:block;margin:1em 0;border:1px solid #eee}\n"
       "code{background:#f5f5f5;padding:0 0.2em}h1{border-bottom:2px solid #333}h2{border-bottom:1px solid #ccc;"
       "margin-top:2em}\n</style>\n"
       // errors of any kind (a script, an image that fails to decode) are counted from the first moment
       "<script>\nvar cccErrors = 0;\nwindow.addEventListener('error', function () { cccErrors++; }, true);\n</script>\n"
       "</head>\n<body>\n"
    << markdown_to_html(md, src)
    << "<script>\nwindow.addEventListener('load', function () {\n"
       "  var all = document.images, ok = 0;\n"
       "  for (var i = 0; i < all.length; i++) if (all[i].complete && all[i].naturalWidth > 0) ok++;\n"
       "  document.body.setAttribute('data-images', ok + '/' + all.length);\n"
       "  document.body.setAttribute('data-errors', String(cccErrors));\n});\n</script>\n</body>\n</html>\n";
  return h.str();
}

}  // namespace ccc::experiments
