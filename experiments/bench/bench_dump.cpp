#include "experiments/bench/bench_dump.h"

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>

#include "analysis/capture.h"
#include "experiments/bench/bench_support.h"
#include "compress/lm_codec.h"
#include "experiments/support/common.h"
#include "model/base/error.h"
#include "model/base/util.h"

namespace ccc::experiments {

namespace fs = std::filesystem;

void bench_dump(const BenchDumpOptions& o, std::ostream& out) {
  const fs::path tmp = o.tmp_dir.empty() ? fs::temp_directory_path() / ("ccc-bench-dump-" + std::to_string(::getpid()))
                                         : fs::path(o.tmp_dir);
  std::error_code ec;
  fs::create_directories(tmp, ec);
  CCC_CHECK(fs::is_directory(tmp, ec), "bench dump: cannot create ", tmp.string());
  auto m = model::load_model(o.model.empty() ? default_model_path() : o.model, o.tokenizer);
  const std::string input = bench_input(o.file, o.corpora_dir, o.bytes, "bench dump");
  const std::vector<std::string> hooks{"blocks.*.mlp.hook_post", "blocks.*.hook_resid_pre", "blocks.*.hook_resid_mid",
                                       "blocks.*.hook_resid_post"};
  char line[512];
  std::snprintf(line, sizeof line, "bench dump: model %s, %zu bytes of %s, hooks every MLP hook_post and resid hook\n",
                m.source.c_str(), input.size(), o.file.empty() ? "held-out corpora" : o.file.c_str());
  out << line;

  compress::CodecOptions base;  // defaults: the compressor's streams, window and groups
  auto run = [&](const std::string& dump_path, analysis::Compression comp, int64_t* bytes,
                 std::string_view text) {
    compress::CodecOptions codec = base;
    std::unique_ptr<analysis::ActivationCapture> cap;
    if (!dump_path.empty()) {
      analysis::CaptureOptions c;
      c.out = dump_path;
      c.hooks = hooks;
      c.compression = comp;
      c.force = true;
      c.source = "bench";
      cap = std::make_unique<analysis::ActivationCapture>(m, text, codec, c);
      cap->attach(codec, codec);
    }
    const auto t0 = std::chrono::steady_clock::now();
    compress::lm_compress(m, text, codec);
    if (cap) {
      cap->finish();
      *bytes = cap->bytes_written();
    }
    return seconds_since(t0);
  };
  // interleaved: plain, dump, plain, dump; best of two each
  int64_t written = 0;
  const std::string d0 = (tmp / "none.h5").string();
  double plain = 1e30, dumped = 1e30;
  for (int rep = 0; rep < 2; ++rep) {
    plain = std::min(plain, run("", analysis::Compression::kNone, nullptr, input));
    dumped = std::min(dumped, run(d0, analysis::Compression::kNone, &written, input));
  }
  out << "variant                               seconds   MB written   MB/s written   vs plain\n";
  std::snprintf(line, sizeof line, "%-36s %8.2f %12s %14s %9s\n", "compress (no dump)", plain, "-", "-", "1.00x");
  out << line;
  std::snprintf(line, sizeof line, "%-36s %8.2f %12.1f %14.1f %8.2fx\n", "compress + dump (f16, none)", dumped,
                written / 1e6, written / 1e6 / dumped, dumped / plain);
  out << line;
  out << "target: dump run <= 1.5x the plain run; >= 100 MB/s of activations written\n\n";
  fs::remove(d0, ec);
  const std::string small = input.substr(0, static_cast<size_t>(std::min<int64_t>(o.compression_bytes, input.size())));
  std::snprintf(line, sizeof line, "dump compression on the first %zu bytes (same hooks, f16):\n", small.size());
  out << line << "compression   file MB   seconds   ratio to none\n";
  double none_mb = 0;
  for (auto c : {analysis::Compression::kNone, analysis::Compression::kFast, analysis::Compression::kGzip}) {
    const std::string p = (tmp / (analysis::to_string(c) + ".h5")).string();
    int64_t w = 0;
    const double s = run(p, c, &w, small);
    const double mb = static_cast<double>(fs::file_size(p)) / 1e6;
    if (c == analysis::Compression::kNone) none_mb = mb;
    std::snprintf(line, sizeof line, "%-12s %8.1f %9.2f %9.3f\n", analysis::to_string(c).c_str(), mb, s, mb / none_mb);
    out << line;
    fs::remove(p, ec);
  }
  if (o.rss) {
    // peak RSS of `ccc dump` (child processes) on 1 MB and 10 MB of input: the capture's memory does not
    // grow with the input (the compressor itself still holds the input and its tokens: ~10 bytes per byte)
    const std::string rss_model = o.rss_model.empty()
                                      ? (fs::path(CCC_SOURCE_DIR) / "data" / "models" / "ccc-byte-xs").string()
                                      : o.rss_model;
    out << "\npeak RSS of `ccc dump -m " << rss_model << " --hooks 'blocks.*.ln1.hook_scale' --streams 64`:\n";
    std::mt19937 rng(1);
    std::string big;
    while (big.size() < (10u << 20)) big += input.substr(0, std::min<size_t>(input.size(), (10u << 20) - big.size()));
    for (size_t mb : {1u, 10u}) {
      const std::string in = (tmp / ("in-" + std::to_string(mb) + ".txt")).string();
      write_file_atomic(in, big.substr(0, mb << 20));
      const std::string h5 = (tmp / "rss.h5").string();
      const auto t0 = std::chrono::steady_clock::now();
      std::vector<std::string> args = {"/proc/self/exe", "dump", "-m", rss_model, in, "-o", h5, "--hooks",
                                       "blocks.*.ln1.hook_scale", "--streams", "64", "-f", "-q"};
      if (!o.tokenizer.empty()) args.insert(args.end(), {"-t", o.tokenizer});
      const double rss = child_peak_rss_mib(args);
      const double s = seconds_since(t0);
      std::snprintf(line, sizeof line, "  %2zu MB input: peak RSS %7.1f MiB, dump %7.1f MB, %.1f s\n", mb, rss,
                    fs::exists(h5, ec) ? fs::file_size(h5) / 1e6 : 0.0, s);
      out << line;
      fs::remove(in, ec);
      fs::remove(h5, ec);
    }
  }
  fs::remove_all(tmp, ec);
}

}  // namespace ccc::experiments
