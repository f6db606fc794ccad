// `ccc bench compress --suite diverse`: the compressor on files of every kind (data/bench_suite.sh), mixed
// (the default) and pure, beside gzip, bzip2, xz, zstd, brotli and zpaq; the floor, the targets and the
// split of bits between the model and the context models, measured in the same run.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <unistd.h>

#include "compress/container.h"
#include "compress/context_mixer.h"
#include "compress/lm_codec.h"
#include "experiments/bench/bench_compress.h"
#include "experiments/bench/bench_support.h"
#include "experiments/support/common.h"
#include "model/base/error.h"
#include "model/base/util.h"
#include "model/formats/loader.h"

namespace ccc::experiments {

namespace fs = std::filesystem;

namespace {

struct SuiteFile {
  std::string name, kind, package, version, source, sha256;
  std::string bytes;
  bool recorded = false;  // its sha256 equals data/bench/diverse.tsv's
};

std::vector<std::vector<std::string>> read_tsv(const std::string& path) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(read_file(path));
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::string cell;
    std::istringstream ls(line);
    while (std::getline(ls, cell, '\t')) f.push_back(cell);
    if (!f.empty()) rows.push_back(f);
  }
  return rows;
}

// The suite's files: built by data/bench_suite.sh into `dir` when its manifest is missing.
std::vector<SuiteFile> load_suite(const std::string& dir) {
  const std::string manifest = (fs::path(dir) / "manifest.tsv").string();
  if (!fs::exists(manifest)) {
    const std::string cmd = sh_quote(std::string(CCC_SOURCE_DIR) + "/data/bench_suite.sh") + " " + sh_quote(dir) + " >&2";
    CCC_CHECK(std::system(cmd.c_str()) == 0, "bench compress --suite diverse: data/bench_suite.sh failed");
  }
  const auto recorded = read_tsv(std::string(CCC_SOURCE_DIR) + "/data/bench/diverse.tsv");
  std::map<std::string, std::string> want;
  for (const auto& r : recorded)
    if (r.size() >= 8) want[r[0]] = r[7];
  std::vector<SuiteFile> files;
  for (const auto& r : read_tsv(manifest)) {
    if (r.size() < 8 || r[0] == "name") continue;
    SuiteFile f{r[0], r[1], r[2], r[3], r[4], r[7], read_file((fs::path(dir) / r[0]).string())};
    CCC_CHECK(sha256_hex(f.bytes) == f.sha256, dir, "/", f.name, ": its bytes do not match ", manifest,
              " (rebuild with data/bench_suite.sh)");
    f.recorded = want.count(f.name) > 0 && want[f.name] == f.sha256;
    files.push_back(std::move(f));
  }
  CCC_CHECK(!files.empty(), manifest, ": no files");
  return files;
}

bool is_text(const std::string& kind) {
  for (const char* k : {"prose", "Markdown", "HTML", "XML", "JSON", "man page", "source", "log", "novel"})
    if (kind.find(k) != std::string::npos) return true;
  return false;
}

struct CccRun {
  uint64_t bytes = 0;
  double compress_s = 0, decompress_s = 0;
  compress::CodecStats stats;
  std::string mode;  // the frame kept
};

CccRun run_ccc(model::LoadedModel& m, const SuiteFile& f, bool pure) {
  namespace ch = std::chrono;
  compress::CodecOptions copt;
  copt.pure = pure;
  CccRun r;
  copt.stats = &r.stats;
  const auto t0 = ch::steady_clock::now();
  const std::string packed = compress::lm_compress_frames(m, f.bytes, copt);
  r.compress_s = seconds_since(t0);
  copt.stats = nullptr;
  const auto t1 = ch::steady_clock::now();
  const std::string back = compress::lm_decompress(m, packed, f.name, copt);
  r.decompress_s = seconds_since(t1);
  CCC_CHECK(back == f.bytes, "bench compress --suite: round trip failed for ", f.name, pure ? " (pure)" : "");
  r.bytes = packed.size();
  size_t off = 0;
  const std::string_view first(packed.data(), compress::frame_size(packed, f.name));
  r.mode = compress::frame_mode_name(compress::parse_container(first, f.name, &off).mode);
  return r;
}

}  // namespace

void bench_compress_suite(const BenchCompressOptions& o) {
  CCC_CHECK(o.suite == "diverse", "bench compress: unknown --suite '", o.suite, "' (known: diverse)");
  const std::string dir = o.suite_dir.empty() ? std::string(CCC_SOURCE_DIR) + "/.cache/diverse" : o.suite_dir;
  const auto files = load_suite(dir);
  CCC_CHECK(o.models.size() <= 1, "bench compress --suite: one model at a time (-m)");
  auto m = model::load_model(o.models.empty() ? default_model_path() : o.models.front(), o.tokenizer);
  std::error_code ec;
  fs::create_directories(o.out_dir, ec);
  const std::string tmp = (fs::temp_directory_path() / ("ccc_suite_" + std::to_string(::getpid()))).string();
  const auto& classics = classic_compressors();
  std::string csv = "file,kind,package,version,bytes,recorded_bytes,method,compressed_bytes,bits_per_byte,compress_s,decompress_s,frame\n";
  std::printf("| file | kind | bytes | ccc | ccc --pure | model alone | context models alone | mix | ");
  for (const auto& c : classics) std::printf("%s | ", c.first.c_str());
  std::printf("frame | bound ok |\n|---|---|---|---|---|---|---|---|");
  for (size_t i = 0; i < classics.size(); ++i) std::printf("---|");
  std::printf("---|---|\n");
  double pure_c = 0, pure_d = 0, mix_c = 0, mix_d = 0, model_c = 0, model_d = 0, model_pc = 0, model_pd = 0;
  uint64_t total = 0, model_frames_bytes = 0, mixer_mem = 0;
  int beat_xz = 0, text = 0, beat_zpaq = 0, bound_ok = 0;
  std::string lose_xz, lose_zpaq;
  double crlf_bits = -1, lf_bits = -1, lf_bytes = 0, crlf_bytes = 0;
  std::string plot;
  ProgressLine progress("bench compress --suite", static_cast<int64_t>(files.size()));
  int64_t done = 0;
  for (const auto& f : files) {
    const double n = static_cast<double>(f.bytes.size());
    std::map<std::string, int64_t> classic;
    for (const auto& c : classics) classic[c.first] = classic_compressed_size(c.first, f.bytes, tmp);
    const CccRun mixed = run_ccc(m, f, false), pure = run_ccc(m, f, true);
    total += f.bytes.size();
    pure_c += pure.compress_s;
    pure_d += pure.decompress_s;
    mix_c += mixed.compress_s;
    mix_d += mixed.decompress_s;
    if (mixed.mode == "mixed") {  // the speed target compares frames the model codes both ways
      model_c += mixed.compress_s;
      model_d += mixed.decompress_s;
      model_pc += pure.compress_s;
      model_pd += pure.decompress_s;
      model_frames_bytes += f.bytes.size();
    }
    mixer_mem = std::max(mixer_mem, mixed.stats.mixer_memory);
    const bool ok = mixed.bytes <= compress::stored_frame_size(f.bytes.size());  // pure has no floor (the measurement)
    bound_ok += ok ? 1 : 0;
    auto bpb = [&](double bytes) { return 8.0 * bytes / n; };
    const int64_t xz = classic["xz -9e"], zpaq = classic["zpaq -m5"];
    if (xz >= 0 && static_cast<int64_t>(mixed.bytes) < xz) ++beat_xz;
    else lose_xz += " " + f.name;
    if (is_text(f.kind)) {
      ++text;
      if (zpaq >= 0 && static_cast<int64_t>(mixed.bytes) < zpaq) ++beat_zpaq;
      else lose_zpaq += " " + f.name;
    }
    if (f.kind == "English prose (LF)") lf_bits = 8.0 * mixed.bytes, lf_bytes = n;
    if (f.kind == "English prose (CRLF)") crlf_bits = 8.0 * mixed.bytes, crlf_bytes = n;
    const double lm = mixed.stats.lm_bits / n, cm = bpb(static_cast<double>(mixed.stats.context_frame_bytes)),
                 mix = bpb(static_cast<double>(mixed.stats.model_frame_bytes));
    std::printf("| %s%s | %s | %zu | **%.3f** | %.3f | %.3f | %.3f | %.3f | ", f.name.c_str(), f.recorded ? "" : " (*)",
                f.kind.c_str(), f.bytes.size(), bpb(mixed.bytes), bpb(pure.bytes), lm, cm, mix);
    for (const auto& c : classics) std::printf(classic[c.first] >= 0 ? "%.3f | " : "- | ", bpb(classic[c.first]));
    std::printf("%s | %s |\n", mixed.mode.c_str(), ok ? "yes" : "NO");
    const std::string head = csv_field(f.name) + "," + csv_field(f.kind) + "," + csv_field(f.package) + "," +
                             csv_field(f.version) + "," + std::to_string(f.bytes.size()) + "," + (f.recorded ? "yes" : "no") + ",";
    csv += head + "ccc," + std::to_string(mixed.bytes) + "," + format_number("%.4f", bpb(mixed.bytes)) + "," + format_number("%.3f", mixed.compress_s) +
           "," + format_number("%.3f", mixed.decompress_s) + "," + mixed.mode + "\n";
    csv += head + "ccc --pure," + std::to_string(pure.bytes) + "," + format_number("%.4f", bpb(pure.bytes)) + "," +
           format_number("%.3f", pure.compress_s) + "," + format_number("%.3f", pure.decompress_s) + "," + pure.mode + "\n";
    csv += head + "model alone (lm_bits)," + format_number("%.1f", mixed.stats.lm_bits / 8) + "," + format_number("%.4f", lm) + ",,,\n";
    csv += head + "context models alone," + std::to_string(mixed.stats.context_frame_bytes) + "," + format_number("%.4f", cm) + ",,,context\n";
    csv += head + "mix," + std::to_string(mixed.stats.model_frame_bytes) + "," + format_number("%.4f", mix) + ",,,mixed\n";
    for (const auto& c : classics)
      if (classic[c.first] >= 0)
        csv += head + csv_field(c.first) + "," + std::to_string(classic[c.first]) + "," + format_number("%.4f", bpb(classic[c.first])) + ",,,\n";
    std::string label = f.name;  // one whitespace-free word per row of the data file
    for (char& ch : label) ch = (ch == ' ' || ch == '\t' || ch == '"' || ch == '\'') ? '_' : ch;
    plot += std::to_string(done) + " " + label + " " + format_number("%.4f", bpb(mixed.bytes)) + " " +
            format_number("%.4f", bpb(pure.bytes)) + " " + format_number("%.4f", xz >= 0 ? bpb(xz) : 0) + " " +
            format_number("%.4f", zpaq >= 0 ? bpb(zpaq) : 0) + " " + format_number("%.4f", cm) + "\n";
    progress.update(++done);
  }
  fs::remove(tmp, ec);
  const double N = static_cast<double>(total);
  std::printf("\n(*) bytes differ from data/bench/diverse.tsv (another package version here)\n");
  std::printf("never larger than input + %llu + varint(n) bytes per frame: %d of %zu files\n",
              (unsigned long long)compress::kStoredOverhead, bound_ok, files.size());
  std::printf("smaller than xz -9e: %d of %zu files%s\n", beat_xz, files.size(), lose_xz.empty() ? "" : (" (not:" + lose_xz + ")").c_str());
  std::printf("smaller than zpaq -m5: %d of %d text files%s\n", beat_zpaq, text, lose_zpaq.empty() ? "" : (" (not:" + lose_zpaq + ")").c_str());
  if (lf_bits >= 0 && crlf_bits >= 0)
    std::printf("CRLF prose: %.4f bits per byte of the LF text more than LF (%.0f vs %.0f bits; %.4f vs %.4f bits/byte)\n",
                (crlf_bits - lf_bits) / lf_bytes, crlf_bits, lf_bits, crlf_bits / crlf_bytes, lf_bits / lf_bytes);
  std::printf("speed over the suite (%.0f KB): ccc %.2f / %.2f KB/s, ccc --pure %.2f / %.2f KB/s (compress / decompress): "
              "%.0f%% / %.0f%%\n", N / 1e3, N / 1e3 / mix_c, N / 1e3 / mix_d, N / 1e3 / pure_c, N / 1e3 / pure_d,
              100.0 * pure_c / mix_c, 100.0 * pure_d / mix_d);
  if (model_frames_bytes > 0) {
    const double kb = model_frames_bytes / 1e3;
    std::printf("on the files kept as mixed frames (%.0f KB): ccc %.2f / %.2f KB/s, ccc --pure %.2f / %.2f KB/s: "
                "mixed runs at %.0f%% / %.0f%% of pure's speed (target >= 80%%)\n", kb, kb / model_c, kb / model_d,
                kb / model_pc, kb / model_pd, 100.0 * model_pc / model_c, 100.0 * model_pd / model_d);
  }
  std::printf("context mixer state: at most %.1f MB (tables %d..%d bits of 64-byte buckets, match table, histories)\n",
              mixer_mem / 1e6, compress::kMinTableBits, compress::kMaxTableBits);
  const std::string csv_path = (fs::path(o.out_dir) / "suite_diverse.csv").string();
  write_file_atomic(csv_path, csv);
  Plot p;
  const std::string dat = p.data("suite.dat", plot);
  const bool png = p.render((fs::path(o.out_dir) / "suite_diverse.png").string(),
                            "set grid\nset title " + gp_quote("bits per byte on the diverse suite (" + machine_description() + ")") +
                                " noenhanced\nset ylabel 'bits per byte'\nset xtics rotate by 45 right font ',8' noenhanced\nset key top left noenhanced\n"
                                "set bmargin 8\nplot " + dat + " using 1:3:xtic(2) with points pt 7 ps 1.5 title 'ccc', '' using 1:4 "
                                "with points pt 6 title 'ccc --pure', '' using 1:5 with points pt 4 title 'xz -9e', '' using 1:6 "
                                "with points pt 8 title 'zpaq -m5', '' using 1:7 with points pt 2 title 'context models alone'",
                            1100, 600);
  std::printf("wrote %s%s\n", csv_path.c_str(), png ? " and suite_diverse.png" : " (gnuplot failed: no plot)");
}

}  // namespace ccc::experiments
