#include "analysis/labels.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cstring>
#include <map>
#include <sstream>

#include "model/base/error.h"
#include "model/base/util.h"

namespace ccc::analysis {

namespace {
std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\r' || s.back() == ' ')) s.pop_back();
  while (!s.empty() && s.front() == ' ') s.erase(s.begin());
  return s;
}
bool letter(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool digit(unsigned char c) { return c >= '0' && c <= '9'; }
bool white(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool punct(unsigned char c) { return c >= 33 && c <= 126 && !letter(c) && !digit(c); }
}  // namespace

namespace {
const char* const kAutoFeatures[] = {"space", "newline", "digit", "upper", "lower", "punct", "non_ascii", "word_start",
                                     "line_start", "in_quotes", "in_parens", "after_sentence_end", "in_number", "repeated"};
}  // namespace

size_t auto_feature_count() { return sizeof(kAutoFeatures) / sizeof(kAutoFeatures[0]); }

std::vector<Feature> auto_features(std::string_view input, const std::vector<int64_t>& byte_offsets,
                                   const std::vector<int64_t>& stream_start, int64_t window) {
  CCC_CHECK(stream_start.size() == byte_offsets.size(), "labels: one stream start per row is needed");
  const auto& names = kAutoFeatures;
  const size_t F = auto_feature_count();
  std::vector<Feature> out(F);
  for (size_t f = 0; f < F; ++f) {
    out[f].name = names[f];
    out[f].on.assign(byte_offsets.size(), 0);
  }
  const int64_t n = static_cast<int64_t>(input.size());
  const auto* s = reinterpret_cast<const unsigned char*>(input.data());
  // per byte: quote parity on the line, parenthesis depth, end of the previous occurrence of the 8-gram
  std::vector<uint8_t> quotes(n), parens(n), after_end(n);
  std::vector<int64_t> prev8(n, -1);
  {
    int q = 0;
    int64_t depth = 0;
    unsigned char last_solid = 0;  // the last non-whitespace byte before i (0: none yet)
    size_t bits = 16;
    while ((size_t{1} << bits) < static_cast<size_t>(2 * n) && bits < 24) ++bits;
    std::vector<int64_t> table(size_t{1} << bits, -1);  // 8-gram hash -> latest end offset (verified by memcmp)
    for (int64_t i = 0; i < n; ++i) {
      // after_sentence_end: a non-white byte after a whitespace run that follows '.', '!' or '?' (one pass,
      // O(1) per byte, however long the runs)
      after_end[i] = !white(s[i]) && i > 0 && white(s[i - 1]) &&
                     (last_solid == '.' || last_solid == '!' || last_solid == '?');
      if (!white(s[i])) last_solid = s[i];
      quotes[i] = static_cast<uint8_t>(q & 1);
      parens[i] = depth > 0;
      if (s[i] == '"') ++q;
      if (s[i] == '\n') q = 0;
      if (s[i] == '(') ++depth;
      if (s[i] == ')' && depth > 0) --depth;
      if (i >= 7) {
        uint64_t key;
        std::memcpy(&key, s + i - 7, 8);
        uint64_t h = key * 0x9E3779B97F4A7C15ULL;
        auto& slot = table[h >> (64 - bits)];
        if (slot >= 0 && std::memcmp(s + slot - 7, s + i - 7, 8) == 0) prev8[i] = slot;
        slot = i;
      }
    }
  }
  for (size_t r = 0; r < byte_offsets.size(); ++r) {
    const int64_t o = byte_offsets[r];
    if (o < 0 || o >= n) continue;
    const unsigned char c = s[o];
    const unsigned char p = o > 0 ? s[o - 1] : 0;
    size_t f = 0;
    out[f++].on[r] = c == ' ' || c == '\t';
    out[f++].on[r] = c == '\n' || c == '\r';
    out[f++].on[r] = digit(c);
    out[f++].on[r] = c >= 'A' && c <= 'Z';
    out[f++].on[r] = c >= 'a' && c <= 'z';
    out[f++].on[r] = punct(c);
    out[f++].on[r] = c >= 0x80;
    out[f++].on[r] = letter(c) && (o == 0 || !letter(p));
    out[f++].on[r] = o == 0 || p == '\n';
    out[f++].on[r] = quotes[o];
    out[f++].on[r] = parens[o];
    out[f++].on[r] = after_end[o];
    out[f++].on[r] = digit(c) || ((c == '.' || c == ',') && o > 0 && o + 1 < n && digit(p) && digit(s[o + 1]));
    {
      const int64_t e = prev8[o];
      const int64_t lo = std::max(stream_start[r], o - window + 1);
      out[f++].on[r] = e >= 0 && e - 7 >= lo;
    }
  }
  return out;
}

Feature regex_feature(const std::string& name, const std::string& pattern, std::string_view input,
                      const std::vector<int64_t>& byte_offsets) {
  int err = 0;
  PCRE2_SIZE at = 0;
  pcre2_code* re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.c_str()), pattern.size(), 0, &err, &at, nullptr);
  if (re == nullptr) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    CCC_FAIL("--feature ", name, "=", pattern, ": not a valid PCRE2 pattern at offset ", at, ": ",
             reinterpret_cast<const char*>(msg));
  }
  std::vector<uint8_t> byte_on(input.size(), 0);
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(re, nullptr);
  PCRE2_SIZE start = 0;
  while (start <= input.size()) {
    const int rc = pcre2_match(re, reinterpret_cast<PCRE2_SPTR>(input.data()), input.size(), start, 0, md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {  // a match error (match / depth / heap limit, bad UTF): an error, never "no match"
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      pcre2_match_data_free(md);
      pcre2_code_free(re);
      CCC_FAIL("--feature ", name, "=", pattern, ": matching failed at byte ", start, " of the text: ",
               reinterpret_cast<const char*>(msg));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    for (PCRE2_SIZE i = ov[0]; i < ov[1]; ++i) byte_on[i] = 1;
    start = ov[1] > ov[0] ? ov[1] : ov[0] + 1;  // empty matches advance by one byte
  }
  pcre2_match_data_free(md);
  pcre2_code_free(re);
  Feature f;
  f.name = name;
  f.on.assign(byte_offsets.size(), 0);
  for (size_t r = 0; r < byte_offsets.size(); ++r)
    if (byte_offsets[r] >= 0 && byte_offsets[r] < static_cast<int64_t>(input.size())) f.on[r] = byte_on[byte_offsets[r]];
  return f;
}

std::vector<Feature> read_labels_csv(const std::string& path, const std::vector<int64_t>& byte_offsets) {
  const std::string bytes = read_file(path, kTextCap);
  std::istringstream in(bytes);
  std::string line;
  CCC_CHECK(static_cast<bool>(std::getline(in, line)), path, ": empty labels file (header feature,start,end expected)");
  const std::string header = trim(line);
  bool by_rows = false;
  if (header == "feature,row_start,row_end") by_rows = true;
  else CCC_CHECK(header == "feature,start,end", path, ":1: header must be 'feature,start,end' (byte offsets) or ",
                 "'feature,row_start,row_end' (dump rows), not '", header, "'");
  const int64_t rows = static_cast<int64_t>(byte_offsets.size());
  std::map<std::string, size_t> index;
  std::vector<Feature> out;
  int64_t lineno = 1;
  while (std::getline(in, line)) {
    ++lineno;
    line = trim(line);
    if (line.empty()) continue;
    const size_t c1 = line.find(','), c2 = line.find(',', c1 == std::string::npos ? c1 : c1 + 1);
    CCC_CHECK(c1 != std::string::npos && c2 != std::string::npos && line.find(',', c2 + 1) == std::string::npos,
              path, ":", lineno, ": expected 3 comma-separated fields, got '", line, "'");
    const std::string name = trim(line.substr(0, c1));
    CCC_CHECK(!name.empty(), path, ":", lineno, ": empty feature name");
    int64_t a = 0, b = 0;
    CCC_CHECK(parse_int64(trim(line.substr(c1 + 1, c2 - c1 - 1)), &a) && parse_int64(trim(line.substr(c2 + 1)), &b), path,
              ":", lineno, ": start and end must be decimal integers, got '", line, "'");
    CCC_CHECK(0 <= a && a <= b, path, ":", lineno, ": need 0 <= start <= end, got ", a, " and ", b);
    if (by_rows) CCC_CHECK(b <= rows, path, ":", lineno, ": row range ends at ", b, " but the dump has ", rows, " rows");
    auto it = index.find(name);
    if (it == index.end()) {
      // the label arrays are one byte per row: refuse the 65th name before allocating its array
      CCC_CHECK(out.size() < kMaxFeatures, path, ":", lineno, ": more than ", kMaxFeatures,
                " distinct feature names (the unit analysis takes at most ", kMaxFeatures, " features)");
      it = index.emplace(name, out.size()).first;
      out.push_back({name, std::vector<uint8_t>(rows, 0)});
    }
    auto& on = out[it->second].on;
    if (by_rows) {
      for (int64_t r = a; r < b; ++r) on[r] = 1;
    } else {
      for (int64_t r = 0; r < rows; ++r)
        if (byte_offsets[r] >= a && byte_offsets[r] < b) on[r] = 1;
    }
  }
  return out;
}

}  // namespace ccc::analysis
