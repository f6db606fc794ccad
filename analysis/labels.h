#pragma once
// Feature labels of dump rows, computed from the input text at each row's token (its first byte, at
// `byte_offset`; BOS rows, offset −1, have every feature off). The definitions (README "Feature labels"):
//   space (' ', '\t'), newline ('\n', '\r'), digit, upper, lower, punct (ASCII punctuation), non_ascii (>= 0x80);
//   word_start   a letter whose previous byte is not a letter (or the input start);
//   line_start   the first byte of a line (input start or after '\n');
//   in_quotes    an odd number of '"' precede it on its line;
//   in_parens    '(' minus ')' before it, never below 0, is positive;
//   after_sentence_end  not whitespace, preceded by >= 1 whitespace bytes preceded by '.', '!' or '?';
//   in_number    a digit, or '.' / ',' between two digits;
//   repeated     the 8 bytes ending here occur earlier, wholly inside this row's stream and its last
//                `window` bytes (copyable context).
// User features: every row whose token starts inside a match of a PCRE2 pattern.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ccc::analysis {

struct Feature {
  std::string name;
  std::vector<uint8_t> on;  ///< one per row
};

/// How many automatic features there are.
size_t auto_feature_count();

/// The automatic features, in the order listed above. `stream_start[r]`: offset of the first byte of
/// row r's stream (used by `repeated`).
std::vector<Feature> auto_features(std::string_view input, const std::vector<int64_t>& byte_offsets,
                                   const std::vector<int64_t>& stream_start, int64_t window);

/// Rows whose token's first byte lies inside a match of `pattern` (PCRE2, UTF mode off). Throws ccc::Error
/// naming the pattern when it does not compile.
Feature regex_feature(const std::string& name, const std::string& pattern, std::string_view input,
                      const std::vector<int64_t>& byte_offsets);

/// The most features one analysis takes (a concept set is a 64-bit mask per row).
inline constexpr size_t kMaxFeatures = 64;

/// Reads a labels CSV: header `feature,start,end` (byte offsets of the input, end exclusive) or
/// `feature,row_start,row_end` (dump rows); each line turns its range on for that feature (a feature may
/// have many lines). Integers are strictly decimal; at most kMaxFeatures distinct names; the file is read
/// through the bounded reader. Throws naming the file and line on bad input.
std::vector<Feature> read_labels_csv(const std::string& path, const std::vector<int64_t>& byte_offsets);

}  // namespace ccc::analysis
