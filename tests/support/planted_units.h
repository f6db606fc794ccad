#pragma once
// A dump with planted units (header-only; the analysis tests and the `ccc units` command tests share it):
// one byte-level stream whose neurons and heads answer to known features of the text.

#include <cmath>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "analysis/h5_rows.h"
#include "model/base/util.h"
#include "tests/support/test_support.h"

namespace ccc::test {

inline std::string words_text(size_t n, uint32_t seed) {
  std::string t;
  std::mt19937 rng(seed);
  const char* words[] = {"the ", "cat ", "sat ", "on ", "a ", "mat", ". ", "\n", "Dog ", "(quoted) ", "42 ", "It "};
  while (t.size() < n) t += words[rng() % 12];
  t.resize(n);
  return t;
}

// A dump of `text` as one byte-level stream (row 0 = BOS) with planted units:
//   mlp unit 0: fires on spaces (monosemantic), unit 1: on digits and on newlines (polysemantic),
//   unit 2: never above 0 (dead), unit 3: noise with ties (unexplained), unit 4: on upper-case letters;
//   hook_z head 0: large norm on newlines, head 1: noise.
struct Planted {
  test::TempDir dir;
  std::string text, text_path, dump_path;
  std::vector<float> mlp;  // [rows, 5]
  int64_t rows = 0;
};

inline void plant(Planted& p, size_t n) {
  p.text = words_text(n, 11);
  p.text_path = p.dir.file("text.txt");
  p.dump_path = p.dir.file("d.h5");
  write_file_atomic(p.text_path, p.text);
  p.rows = static_cast<int64_t>(n) + 1;
  std::mt19937 rng(3);
  std::normal_distribution<float> noise(0.f, 1.f);
  std::vector<int32_t> tokens(p.rows), stream(p.rows, 0);
  std::vector<int64_t> pos(p.rows), off(p.rows);
  std::vector<float> bits(p.rows), z(p.rows * 2 * 3);
  p.mlp.assign(p.rows * 5, 0.f);
  for (int64_t r = 0; r < p.rows; ++r) {
    const int64_t o = r - 1;
    const unsigned char c = o >= 0 ? static_cast<unsigned char>(p.text[o]) : 0;
    tokens[r] = o >= 0 ? c : 256;
    pos[r] = r;
    off[r] = o;
    bits[r] = o >= 0 ? 1.0f + 0.001f * static_cast<float>(r % 7) : NAN;
    float* m = &p.mlp[r * 5];
    m[0] = (c == ' ' ? 2.0f : 0.0f) + 0.05f * noise(rng);
    m[1] = ((c >= '0' && c <= '9') || c == '\n' ? 1.5f : 0.0f) + 0.05f * noise(rng);
    m[2] = -0.1f;
    m[3] = std::round(4 * noise(rng)) / 4;  // ties
    m[4] = (c >= 'A' && c <= 'Z' ? 1.0f : -0.05f) + 0.02f * noise(rng);
    float* h = &z[r * 6];
    for (int e = 0; e < 3; ++e) h[e] = (c == '\n' ? 3.0f : 0.1f) + 0.01f * noise(rng);
    for (int e = 3; e < 6; ++e) h[e] = noise(rng);
  }
  analysis::H5Rows f(p.dump_path, false, analysis::Compression::kNone);
  f.create("tokens", analysis::Dtype::kI32, {}, p.rows);
  f.create("stream", analysis::Dtype::kI32, {}, p.rows);
  f.create("pos", analysis::Dtype::kI64, {}, p.rows);
  f.create("byte_offset", analysis::Dtype::kI64, {}, p.rows);
  f.create("bits", analysis::Dtype::kF32, {}, p.rows);
  f.create("acts/blocks.0.mlp.hook_post", analysis::Dtype::kF32, {5}, p.rows);
  f.create("acts/blocks.0.attn.hook_z", analysis::Dtype::kF32, {2, 3}, p.rows);
  f.write("tokens", 0, p.rows, tokens.data());
  f.write("stream", 0, p.rows, stream.data());
  f.write("pos", 0, p.rows, pos.data());
  f.write("byte_offset", 0, p.rows, off.data());
  f.write("bits", 0, p.rows, bits.data());
  f.write("acts/blocks.0.mlp.hook_post", 0, p.rows, p.mlp.data());
  f.write("acts/blocks.0.attn.hook_z", 0, p.rows, z.data());
  f.attr("source", p.text_path);
  f.attr("source_sha256", sha256_hex(p.text));
  f.attr("window", int64_t{64});
  f.attr("fingerprint", std::string("test"));
  f.commit();
}

inline std::map<std::string, std::map<std::string, std::string>> read_units_csv(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  std::vector<std::string> cols;
  {
    std::stringstream ss(line);
    for (std::string c; std::getline(ss, c, ',');) cols.push_back(c);
  }
  std::map<std::string, std::map<std::string, std::string>> out;  // "hook/unit" -> column -> value
  while (std::getline(in, line)) {
    std::stringstream ss(line);
    std::map<std::string, std::string> row;
    size_t i = 0;
    for (std::string c; std::getline(ss, c, ',') && i < cols.size(); ++i) row[cols[i]] = c;
    out[row["hook"] + "/" + row["unit"]] = row;
  }
  return out;
}

}  // namespace ccc::test
