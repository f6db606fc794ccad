#include "experiments/bench/bench_memory.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "experiments/support/common.h"
#include "model/base/error.h"
#include "model/base/util.h"
#include "model/core/transformer.h"
#include "model/formats/loader.h"
#include "model/training/corpus.h"

namespace ccc::experiments {

namespace fs = std::filesystem;

namespace {

// sha256 of a file read in 1 MiB pieces (the inputs are larger than anything we want in memory here).
std::string file_sha256(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  CCC_CHECK(in.good(), "bench memory: cannot read ", path);
  Sha256 h;
  std::string buf(1 << 20, '\0');
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    h.update(buf.data(), static_cast<size_t>(in.gcount()));
  }
  return h.hex();
}

// `bytes` of text: held-out corpus text repeated (every corpus present), written in pieces.
void write_input(const std::string& path, uint64_t bytes) {
  std::string text;
  const std::string dir = corpora_dir_or_default("");
  for (const auto& n : model::present_corpora(dir)) text += model::load_corpus(dir, n).split(model::Split::kHeldOut);
  if (text.empty()) text = "no corpora present: a plain repeated line of text\n";
  std::ofstream out(path, std::ios::binary);
  for (uint64_t done = 0; done < bytes;) {
    const uint64_t n = std::min<uint64_t>(text.size(), bytes - done);
    out.write(text.data(), static_cast<std::streamsize>(n));
    done += n;
  }
  CCC_CHECK(out.good(), "bench memory: cannot write ", path);
}

}  // namespace

void bench_memory(const BenchMemoryOptions& o, std::ostream& out) {
  CCC_CHECK(!o.sizes_mb.empty(), "bench memory: no --sizes");
  const fs::path tmp = (o.tmp_dir.empty() ? fs::temp_directory_path() : fs::path(o.tmp_dir)) /
                       ("ccc-bench-memory-" + std::to_string(::getpid()));
  fs::create_directories(tmp);
  struct Cleanup {
    fs::path p;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(p, ec);
    }
  } cleanup{tmp};
  std::string model = o.model;
  if (model.empty()) {
    const auto c = model::tiny_byte_config(1, 64, /*learned=*/false, /*attn_only=*/true);
    model::Transformer t(c);
    t->init_weights(1);
    model = (tmp / "model").string();
    model::save_model(model, c, t);
  }
  char line[512];
  std::snprintf(line, sizeof line,
                "model %s; frames of %llu bytes; compress, decompress and bits run as child processes\n\n",
                o.model.empty() ? "a 5K-parameter random byte model (the codec's memory, not the model's)" : model.c_str(),
                (unsigned long long)o.frame_bytes);
  out << line;
  out << "| input (MB) | compress peak RSS (MiB) | decompress peak RSS (MiB) | bits peak RSS (MiB) | compress s | "
         "decompress s | bits s | x baseline RSS |\n"
         "|---|---|---|---|---|---|---|---|\n";
  double base_rss = 0;
  ProgressLine progress("bench memory (runs)", 3 * static_cast<int64_t>(o.sizes_mb.size()));
  int64_t runs = 0;
  // peak RSS (MiB) and seconds of one child run; the command must succeed
  auto measure = [&](std::vector<std::string> args, double mb, std::pair<double, double>* rss_s) {
    if (!o.tokenizer.empty()) args.insert(args.end(), {"--tokenizer", o.tokenizer});
    const auto t0 = std::chrono::steady_clock::now();
    rss_s->first = child_peak_rss_mib(args);
    rss_s->second = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    CCC_CHECK(rss_s->first > 0, "bench memory: ", args[1], " of ", mb, " MB failed");
    progress.update(++runs);
  };
  for (double mb : o.sizes_mb) {
    CCC_CHECK(mb > 0 && mb <= 100000, "bench memory: size ", mb, " MB out of range");
    const std::string in = (tmp / "input.txt").string(), packed = in + ".ccc", back = (tmp / "restored.txt").string();
    write_input(in, static_cast<uint64_t>(mb * 1e6));
    std::pair<double, double> c, d, b;
    measure({"/proc/self/exe", "compress", "-q", "-f", "-m", model, in, "-o", packed, "--frame-bytes",
             std::to_string(o.frame_bytes)}, mb, &c);
    measure({"/proc/self/exe", "decompress", "-q", "-f", "-m", model, packed, "-o", back}, mb, &d);
    CCC_CHECK(file_sha256(in) == file_sha256(back), "bench memory: round trip of ", mb, " MB differs");
    measure({"/proc/self/exe", "bits", "-q", "-m", model, in}, mb, &b);
    const double peak = std::max({c.first, d.first, b.first});
    if (base_rss == 0) base_rss = peak;
    std::snprintf(line, sizeof line, "| %.1f | %.1f | %.1f | %.1f | %.2f | %.2f | %.2f | %.2f |\n", mb, c.first, d.first,
                  b.first, c.second, d.second, b.second, peak / base_rss);
    out << line << std::flush;
    fs::remove(in);
    fs::remove(packed);
    fs::remove(back);
  }
}

}  // namespace ccc::experiments
