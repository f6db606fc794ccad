#include "experiments/bench/bench_compress.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <unistd.h>

#include "analysis/capture.h"
#include "circuits/ablation.h"
#include "compress/container.h"
#include "compress/lm_codec.h"
#include "experiments/bench/bench_support.h"
#include "experiments/support/common.h"
#include "model/base/error.h"
#include "model/base/fileio.h"
#include "model/base/util.h"
#include "model/formats/loader.h"
#include "model/scoring/cost_model.h"
#include "model/training/corpus.h"

namespace ccc::experiments {

namespace fs = std::filesystem;

namespace {

using Files = std::vector<std::pair<std::string, std::string>>;  // name, bytes

struct Row {
  std::string file, method;
  double params = 0, bpb = 0, mb_s = 0, dmb_s = 0;
  double attn_flops_per_byte = 0;  // the model's attention FLOPs of the run per input byte
  std::string fingerprint;
  double roof = 0;  // matmul roofline GFLOP/s read right before and after this model's run (the better)
  int64_t window = 0;  // the window the compressor used
  bool first_window = false;  // the run at o.windows.front(): the scaling plot's one point per model
  double kv_bytes_per_byte = 0;  // fp16 keys and values the attention reads per input byte
  double mem = 0;                // memory read GB/s measured right before this model's run
};

// the held-out part of every corpus present, or the given files
Files bench_inputs(const BenchCompressOptions& o) {
  Files files;
  if (o.files.empty()) {
    const std::string dir = o.corpora_dir.empty() ? model::default_corpus_dir(CCC_SOURCE_DIR) : o.corpora_dir;
    for (const auto& n : model::present_corpora(dir)) {
      auto c = model::load_corpus(dir, n);
      files.emplace_back(n + " (held-out)", c.split(model::Split::kHeldOut));
    }
  } else {
    for (const auto& f : o.files) files.emplace_back(fs::path(f).filename().string(), read_file(f));
  }
  CCC_CHECK(!files.empty(), "bench compress: no input files");
  return files;
}

// One classic compressor on `bytes` (written to `tmp`); false when it failed or is not installed.
bool measure_classic(const std::string& name, const std::string& bytes, const std::string& tmp, const std::string& label,
                     std::vector<Row>* rows) {
  namespace ch = std::chrono;
  const auto t0 = ch::steady_clock::now();
  const int64_t size = classic_compressed_size(label, bytes, tmp);
  const double s = ch::duration<double>(ch::steady_clock::now() - t0).count();
  if (size < 0) return false;
  rows->push_back({name, label, 0, 8.0 * static_cast<double>(size) / static_cast<double>(bytes.size()), bytes.size() / 1e6 / s, 0, 0, ""});
  return true;
}

// One model at one window: compress, decompress (checked), the rooflines read beside the run, the cost model.
Row measure_model(const std::string& name, const std::string& bytes, const std::string& mp, model::LoadedModel& m,
                  int64_t window, bool first_window) {
  namespace ch = std::chrono;
  compress::CodecOptions copt;
  copt.window = window;
  copt.pure = true;  // the model's own coding (its speed against the rooflines); the default compressor: --suite
  // this machine's matmul speed moves by up to 2x within minutes (a shared host): the roofline is read
  // beside each run, before and after it, and the better reading is that row's baseline
  const double roof_before = matmul_roofline_gflops(4096, 256, 3);
  const double mem = memory_read_gbps(3);
  const auto t0 = ch::steady_clock::now();
  auto packed = compress::lm_compress(m, bytes, copt);
  const double s = ch::duration<double>(ch::steady_clock::now() - t0).count();
  const auto t1 = ch::steady_clock::now();
  auto back = compress::lm_decompress(m, packed, name, copt);
  const double ds = ch::duration<double>(ch::steady_clock::now() - t1).count();
  CCC_CHECK(back == bytes, "bench compress: round trip failed for ", name, " with ", mp);
  const double roof = std::max(roof_before, matmul_roofline_gflops(4096, 256, 3));
  const auto counts = model::stream_token_counts(m, bytes, copt);
  const double attn = model::codec_attention_flops(m.config, counts, copt);
  const double kv = model::codec_kv_cache_bytes(m.config, counts, copt);
  const std::string label = "ccc " + fs::path(mp).filename().string() +
                            (window > 0 ? " (window " + std::to_string(window) + ")" : "");
  return {name, label, static_cast<double>(m.config.n_params()), 8.0 * packed.size() / bytes.size(),
          bytes.size() / 1e6 / s, bytes.size() / 1e6 / ds, attn / static_cast<double>(bytes.size()),
          m.fingerprint, roof, model::resolve_window_policy(m.config, copt).first,
          first_window, kv / static_cast<double>(bytes.size()), mem};
}

// The table on stdout and bench_compress.csv: one row per (file, method); a cell that was not measured (a
// classic compressor's params, fingerprint, decompression speed and roofline share) is empty.
std::string print_table_and_csv(const std::vector<Row>& rows, const std::string& out_dir) {
  // roofline: model FLOPs per token (2 x params) against the matmul roofline read beside each model's run
  double roof_lo = 0, roof_hi = 0;
  for (const auto& r : rows)
    if (r.roof > 0) {
      roof_lo = roof_lo == 0 ? r.roof : std::min(roof_lo, r.roof);
      roof_hi = std::max(roof_hi, r.roof);
    }
  const std::string machine = machine_description();
  std::string csv = "file,method,params,fingerprint,bits_per_byte,compress_MB_s,decompress_MB_s,"
                    "compress_pct_roofline,decompress_pct_roofline,attention_flops_per_byte,"
                    "compress_pct_roofline_with_attention,decompress_pct_roofline_with_attention,roofline_GFLOP_s,window,"
                    "kv_cache_bytes_per_byte,compress_kv_cache_GB_s,decompress_kv_cache_GB_s,memory_read_GB_s,machine\n";
  std::printf("| file | method | params | bits/byte | compress MB/s | decompress MB/s | compress %% of roofline | "
              "decompress %% of roofline | with attention FLOPs | roofline GFLOP/s | K/V cache GB/s | memory GB/s |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const auto& r : rows) {
    // 2 x params FLOPs per token; byte models code one token per byte
    const double roof = r.roof;
    auto pct = [&](double mb_s) { return 100.0 * 2.0 * r.params * mb_s * 1e6 / (roof * 1e9); };
    // the model's whole FLOP count (Kaplan et al.'s C_forward): the weights' 2 x params per token plus the
    // attention over the window each fed position really attends (model::codec_attention_flops)
    auto pct_all = [&](double mb_s) { return 100.0 * (2.0 * r.params + r.attn_flops_per_byte) * mb_s * 1e6 / (roof * 1e9); };
    // the attention's fp16 key / value reads at that speed (each row's cache is its own: DRAM traffic)
    auto kv_gb_s = [&](double mb_s) { return r.kv_bytes_per_byte * mb_s * 1e6 / 1e9; };
    const bool model = r.params > 0;
    csv += csv_field(r.file) + "," + csv_field(r.method) + "," + (model ? format_number("%.0f", r.params) : "") + "," +
           r.fingerprint + "," + format_number("%.4f", r.bpb) + "," + format_number("%.4f", r.mb_s) + "," +
           (model ? format_number("%.4f", r.dmb_s) : "") + "," + (model ? format_number("%.2f", pct(r.mb_s)) : "") + "," +
           (model ? format_number("%.2f", pct(r.dmb_s)) : "") + "," + (model ? format_number("%.0f", r.attn_flops_per_byte) : "") + "," +
           (model ? format_number("%.2f", pct_all(r.mb_s)) : "") + "," + (model ? format_number("%.2f", pct_all(r.dmb_s)) : "") + "," +
           (model ? format_number("%.1f", roof) : "") + "," + (model ? std::to_string(r.window) : "") + "," +
           (model ? format_number("%.0f", r.kv_bytes_per_byte) : "") + "," + (model ? format_number("%.3f", kv_gb_s(r.mb_s)) : "") + "," +
           (model ? format_number("%.3f", kv_gb_s(r.dmb_s)) : "") + "," + (model ? format_number("%.1f", r.mem) : "") + "," +
           csv_field(machine) + "\n";
    if (!model) {
      std::printf("| %s | %s | - | %.4f | %.3f | - | - | - | - | - | - | - |\n", r.file.c_str(), r.method.c_str(), r.bpb,
                  r.mb_s);
      continue;
    }
    std::printf("| %s | %s | %.0f | %.4f | %.4f | %.4f | %.1f%% | %.1f%% | %.1f%% / %.1f%% | %.1f | %.1f / %.1f | %.1f |\n",
                r.file.c_str(), r.method.c_str(), r.params, r.bpb, r.mb_s, r.dmb_s, pct(r.mb_s), pct(r.dmb_s),
                pct_all(r.mb_s), pct_all(r.dmb_s), roof, kv_gb_s(r.mb_s), kv_gb_s(r.dmb_s), r.mem);
  }
  if (roof_hi > 0)
    std::printf("\nmatmul roofline read beside each model's run (the better of before and after): %.1f-%.1f GFLOP/s "
                "(byte models: 1 token per byte); %% of roofline counts 2 x params FLOPs per token, 'with attention "
                "FLOPs' adds the attention over each position's window (compress / decompress); K/V cache GB/s is what the "
                "attention reads of its fp16 caches at that speed, next to the memory read bandwidth measured before the "
                "run; %s\n",
                roof_lo, roof_hi, machine.c_str());
  else
    std::printf("\nno model ran, so no roofline was read; %s\n", machine.c_str());
  const std::string csv_path = (fs::path(out_dir) / "bench_compress.csv").string();
  write_file_atomic(csv_path, csv);
  return csv_path;
}

// Pareto (bpb vs speed) and scaling (mean bpb over the files vs params; classic compressors as horizontal
// lines at their mean over the same files, labelled at staggered places so labels never overlap).
// True when both PNGs were written.
bool write_plots(const std::vector<Row>& rows, const Files& files, const BenchCompressOptions& o, bool* pareto_ok,
                 bool* scaling_ok) {
  std::map<std::string, std::pair<double, int>> mean;
  for (const auto& r : rows) {
    mean[r.method].first += r.bpb;
    mean[r.method].second += 1;
  }
  std::string pareto_dat, scaling_dat, classic_lines;
  for (const auto& r : rows) {
    std::string label = r.method;
    for (char& c : label) c = (c == '"' || c == ',') ? ' ' : c;
    pareto_dat += format_number("%.6f", r.mb_s) + "," + format_number("%.6f", r.bpb) + ",\"" + label + "\"\n";
  }
  for (const auto& r : rows)
    if (r.params > 0 && r.first_window && r.file == rows.front().file)
      scaling_dat += format_number("%.0f", r.params) + "," + format_number("%.6f", mean[r.method].first / mean[r.method].second) + "\n";
  int k = 0;
  double lo = 1e9, hi = -1e9;
  for (const auto& [method, acc] : mean) {
    lo = std::min(lo, acc.first / acc.second);
    hi = std::max(hi, acc.first / acc.second);
  }
  classic_lines += "set yrange [" + format_number("%.4f", lo - 0.1) + ":" + format_number("%.4f", hi + 0.1) + "]\n";
  for (const auto& [method, acc] : mean) {
    if (method.rfind("ccc ", 0) == 0) continue;
    const double y = acc.first / acc.second;
    classic_lines += "set arrow from graph 0, first " + format_number("%.4f", y) + " to graph 1, first " + format_number("%.4f", y) +
                     " nohead dt 2 lc " + std::to_string(k + 1) + "\nset label " + gp_quote(method) + " at graph " +
                     format_number("%.2f", 0.02 + 0.16 * (k % 6)) + ", first " + format_number("%.4f", y + 0.02) + "\n";
    ++k;
  }
  const std::string what = std::to_string(files.size()) + " file" + (files.size() == 1 ? "" : "s") +
                           (o.files.empty() ? " (held-out corpora)" : "");
  const std::string pareto_path = (fs::path(o.out_dir) / "pareto.csv").string();
  const std::string scaling_path = (fs::path(o.out_dir) / "scaling.csv").string();
  write_file_atomic(pareto_path, pareto_dat);
  write_file_atomic(scaling_path, scaling_dat);
  const bool pareto = plot_png((fs::path(o.out_dir) / "pareto.png").string(),
                               "set datafile separator ','\nset grid\nset title " +
                                   gp_quote("bits per byte vs compression speed, " + what) +
                                   "\nset logscale x\nset xlabel 'compression speed (MB/s, log)'\nset ylabel 'bits per byte'\n"
                                   "plot " + gp_quote(pareto_path) + " using 1:2 with points pt 7 notitle, '' using 1:2:3 "
                                   "with labels offset 1,0.5 font ',8' notitle",
                               1000, 600);
  const bool scaling = !scaling_dat.empty() &&
                       plot_png((fs::path(o.out_dir) / "scaling.png").string(),
                                "set datafile separator ','\nset grid\nset title " +
                                    gp_quote("mean bits per byte over " + what + " vs model size") +
                                    "\nset logscale x\nset xlabel 'parameters (log)'\nset ylabel 'mean bits per byte'\n" +
                                    classic_lines + "plot " + gp_quote(scaling_path) +
                                    " using 1:2 with linespoints pt 7 lw 2 title 'ccc family'",
                                1000, 600);
  *pareto_ok = pareto;
  *scaling_ok = scaling;
  return pareto && scaling;
}

}  // namespace

void bench_compress(const BenchCompressOptions& o) {
  if (!o.suite.empty()) return bench_compress_suite(o);
  const Files files = bench_inputs(o);
  std::vector<std::string> models = o.models;
  if (models.empty())
    for (const char* n : {"ccc-byte-xs", "ccc-byte-s", "ccc-byte-m", "ccc-byte-l"}) {
      auto p = fs::path(CCC_SOURCE_DIR) / "data" / "models" / n;
      if (fs::exists(p / "config.json")) models.push_back(p.string());
    }
  CCC_CHECK(!o.windows.empty(), "bench compress: no window given");
  // every model loaded once, and every (model, window) checked before anything runs or is written
  std::map<std::string, model::LoadedModel> loaded;
  std::vector<std::pair<std::string, int64_t>> runs;  // (model, window), each window of each model
  for (const auto& mp : models) {
    auto& m = loaded.emplace(mp, model::load_model(mp, o.tokenizer)).first->second;
    for (int64_t w : o.windows) {
      compress::CodecOptions copt;
      copt.window = w;
      try {
        model::resolve_window_policy(m.config, copt);
      } catch (const Error& e) {
        CCC_FAIL("bench compress: --window ", w, " for ", mp, ": ", e.what());
      }
      runs.emplace_back(mp, w);
    }
  }
  std::error_code ec;
  fs::create_directories(o.out_dir, ec);
  std::vector<Row> rows;
  const std::string tmp = (fs::temp_directory_path() / ("ccc_bench_" + std::to_string(::getpid()))).string();
  ProgressLine progress("bench compress", static_cast<int64_t>(files.size() * (classic_compressors().size() + runs.size())));
  int64_t done = 0;
  for (const auto& [name, bytes] : files) {
    for (const auto& [label, cmd] : classic_compressors()) {
      const bool ok = measure_classic(name, bytes, tmp, label, &rows);
      progress.update(++done);
      if (!ok) std::fprintf(stderr, "bench compress: %s failed or is not installed; skipped\n", label.c_str());
    }
    for (const auto& [mp, window] : runs) {
      rows.push_back(measure_model(name, bytes, mp, loaded.at(mp), window, window == o.windows.front()));
      progress.update(++done);
    }
  }
  fs::remove(tmp);
  const std::string csv_path = print_table_and_csv(rows, o.out_dir);
  bool pareto = false, scaling = false;
  write_plots(rows, files, o, &pareto, &scaling);
  std::printf("wrote %s%s%s in %s\n", csv_path.c_str(), pareto ? ", pareto.png" : "", scaling ? ", scaling.png" : "",
              o.out_dir.c_str());
  if (!pareto || !scaling) std::fprintf(stderr, "warning: gnuplot failed or had nothing to draw; plots not written\n");
}

}  // namespace ccc::experiments
