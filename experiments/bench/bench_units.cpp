#include "experiments/bench/bench_units.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <ostream>
#include <sstream>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "analysis/activation_store.h"
#include "analysis/capture.h"
#include "compress/lm_codec.h"
#include "experiments/bench/bench_support.h"
#include "experiments/support/common.h"
#include "model/base/error.h"
#include "model/base/util.h"
#include "model/formats/loader.h"
#include "model/training/corpus.h"

namespace ccc::experiments {

namespace fs = std::filesystem;

void bench_units(const BenchUnitsOptions& o, std::ostream& out) {
  const fs::path tmp = fs::temp_directory_path() / ("ccc-bench-units-" + std::to_string(::getpid()));
  std::error_code ec;
  fs::create_directories(tmp, ec);
  auto m = model::load_model(o.model.empty() ? default_model_path() : o.model, o.tokenizer);
  // held-out text of every corpus, enough rows for a dump of `dump_mb` MB of every MLP hook_post (f16)
  const int64_t row_bytes = m.config.n_layers * m.config.d_mlp * 2;
  const int64_t want_rows = (o.dump_mb << 20) / std::max<int64_t>(1, row_bytes) + 1;
  std::string text;
  const auto sources = held_out_sources("");
  for (size_t i = 0; static_cast<int64_t>(text.size()) < want_rows; ++i) {
    const auto& t = sources[i % sources.size()].second;
    const size_t take = std::min<size_t>(t.size(), 2000);
    text += t.substr((i / sources.size()) * take % std::max<size_t>(1, t.size() - take), take);
  }
  text.resize(static_cast<size_t>(want_rows));
  const std::string txt = (tmp / "text.txt").string(), h5 = (tmp / "d.h5").string(), dir = (tmp / "units").string();
  write_file_atomic(txt, text);
  {
    compress::CodecOptions codec;
    analysis::CaptureOptions c;
    c.out = h5;
    c.hooks = {"blocks.*.mlp.hook_post"};
    c.source = txt;
    analysis::ActivationCapture cap(m, text, codec, c);
    cap.attach(codec, codec);
    compress::lm_compress(m, text, codec);
    cap.finish();
  }
  const double mb = static_cast<double>(fs::file_size(h5)) / 1e6;
  // baseline: reading every activation of the dump once (the I/O and f16 conversion floor)
  auto t0 = std::chrono::steady_clock::now();
  {
    analysis::ActivationStore st(h5);
    double sink = 0;
    for (const auto& h : st.hooks())
      for (int64_t r = 0; r < st.rows(); r += 4096) sink += st.block(h, r, std::min<int64_t>(4096, st.rows() - r)).sum();
    CCC_CHECK(std::isfinite(sink), h5, ": non-finite activations in the benchmark dump");
  }
  const double read_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  t0 = std::chrono::steady_clock::now();
  const double rss = child_peak_rss_mib({"/proc/self/exe", "units", h5, "-o", dir, "-f", "-q"});
  const double units_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CCC_CHECK(rss > 0, "bench units: ccc units failed on ", h5);
  const auto summary = nlohmann::json::parse(read_file(dir + "/summary.json"));
  char line[512];
  std::snprintf(line, sizeof line,
                "bench units: %s, dump of every mlp.hook_post (f16) over %zu bytes of held-out text: %.1f MB, %lld rows\n"
                "  read the dump once (baseline)    %8.2f s\n"
                "  ccc units (14 auto features)     %8.2f s   peak RSS %.1f MiB   (targets: <= 60 s, <= 1024 MiB)\n"
                "  units: %s monosemantic, %s polysemantic (null: %s, %s)\n",
                m.source.c_str(), text.size(), mb, (long long)summary["rows_analysed"].get<int64_t>(), read_s, units_s, rss,
                summary["counts"]["monosemantic"].dump().c_str(), summary["counts"]["polysemantic"].dump().c_str(),
                summary["null_counts"]["monosemantic"].dump().c_str(), summary["null_counts"]["polysemantic"].dump().c_str());
  out << line;
  fs::remove_all(tmp, ec);
}

}  // namespace ccc::experiments
