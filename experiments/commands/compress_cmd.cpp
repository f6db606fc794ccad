#include "experiments/support/common.h"
#include "experiments/commands/compress_cmd.h"

#include <unistd.h>

#include <sys/statvfs.h>

#include <chrono>
#include <functional>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>

#include "analysis/capture.h"
#include "analysis/sae.h"
#include "analysis/sae_eval.h"
#include "circuits/ablation.h"
#include "compress/container.h"
#include "compress/lm_codec.h"
#include "model/training/corpus.h"
#include "model/base/dist.h"
#include "model/base/error.h"
#include "model/formats/loader.h"
#include "model/base/fileio.h"
#include "model/base/util.h"

namespace ccc::experiments {

namespace fs = std::filesystem;

namespace {

// An output of compress / decompress may be written: standard output, a character device or FIFO
// (written into directly, no --force needed), a new name, or an existing regular file with --force that
// is not the input itself.
void check_output(const std::string& out, const std::string& in, bool force) {
  if (out == "-" || is_stream_output(out)) return;
  std::error_code ec;
  if (!fs::exists(out, ec)) return;
  CCC_CHECK(force, out, " exists (use --force to overwrite)");
  CCC_CHECK(in == "-" || !fs::equivalent(in, out, ec), "output would overwrite the input ", in);
}

// A dump's output may never be the input it captures (not even with --force / --dump-force).
void check_not_input(const std::string& out, const std::string& in, const char* what) {
  std::error_code ec;
  CCC_CHECK(in == "-" || out != in, what, " ", out, " is the input");
  CCC_CHECK(in == "-" || !fs::exists(out, ec) || !fs::equivalent(in, out, ec), what, " ", out,
            " would overwrite the input ", in);
}

// The frames of a .ccc input, one at a time (memory: one frame, whatever the file's length).
class FrameReader {
 public:
  FrameReader(InputStream& in, std::string name) : in_(in), name_(std::move(name)) {}
  /// The next whole frame, or false at the end of the input. Errors name the file and the frame.
  bool next(std::string* frame) {
    if (buf_.empty() && in_.read(4096, &buf_) == 0) {
      CCC_CHECK(frames_ > 0, name_, ": empty file, not a ccc compressed file");
      return false;
    }
    if (frames_ > 0 && (buf_.size() < 4 || std::memcmp(buf_.data(), compress::kMagic, 4) != 0)) {
      in_.read(1 << 16, &buf_);
      CCC_FAIL(name_, ": unexpected bytes after the payload of frame ", frames_, " (", buf_.size(), "+ bytes)");
    }
    uint64_t n;
    while ((n = compress::frame_size(buf_, name_)) == 0) {
      if (in_.read(std::max<size_t>(4096, buf_.size()), &buf_) == 0) compress::parse_container(buf_, name_, nullptr_off());
    }
    if (buf_.size() < n) in_.read(n - buf_.size(), &buf_);
    if (buf_.size() < n) compress::parse_container(buf_, name_, nullptr_off());  // throws: truncated payload
    frame->assign(buf_, 0, n);
    buf_.erase(0, n);
    ++frames_;
    return true;
  }
  int64_t frames() const { return frames_; }

 private:
  size_t* nullptr_off() { return &scratch_; }
  InputStream& in_;
  std::string name_, buf_;
  int64_t frames_ = 0;
  size_t scratch_ = 0;
};

model::LoadedModel load(const CompressCmdOptions& o) {
  return model::load_model(o.model.empty() ? default_model_path() : o.model, o.tokenizer);
}

// The encoder's codec options of a compress / dump command line, reporting to `progress`.
compress::CodecOptions encoder_options(const CompressCmdOptions& o, ProgressLine& progress, uint64_t input_bytes = 0) {
  compress::CodecOptions copt;
  copt.streams = o.streams;
  copt.groups = o.groups;
  copt.threads = o.threads;
  copt.window = o.window;
  copt.strided = o.strided;
  copt.pure = o.pure;
  copt.progress = [&progress, input_bytes](uint64_t d, uint64_t t) {
    progress.update(static_cast<int64_t>(t ? d * input_bytes / t : 0));
  };
  return copt;
}

std::unique_ptr<analysis::ActivationCapture> make_capture(model::LoadedModel& m, const std::string& input,
                                                          const CompressCmdOptions& o, compress::CodecOptions& copt,
                                                          bool force,
                                                          const std::function<void(model::HookSet&)>& edits = {}) {
  analysis::CaptureOptions c;
  c.out = o.dump;
  c.hooks = o.hooks;
  CCC_CHECK(o.dump_dtype == "f16" || o.dump_dtype == "f32", "--dtype must be f16 or f32, got '", o.dump_dtype, "'");
  c.dtype = o.dump_dtype == "f16" ? analysis::Dtype::kF16 : analysis::Dtype::kF32;
  c.compression = analysis::parse_compression(o.dump_compression);
  c.force = force;
  c.source = o.in;
  c.command = o.command;
  if (dist::size() > 1) {  // the stream groups split across ranks, every rank writing its rows into one file
    CCC_CHECK(copt.pure, "compress --dump under mpirun splits the stream groups across the ranks, which only the "
              "model-only coding allows (mixed frames code every stream through one mixer): add --pure, or use ccc dump");
    copt.distribute = true;
    c.shared = true;
  }
  auto cap = std::make_unique<analysis::ActivationCapture>(m, input, copt, c);
  // a large dump (attention patterns hold n_heads x W values per row) is announced before it is written
  const double mb = static_cast<double>(cap->expected_bytes()) / 1e6;
  if (mb >= 100 && !o.quiet) {
    struct statvfs fs_info {};
    const std::string dir = fs::path(o.dump).has_parent_path() ? fs::path(o.dump).parent_path().string() : ".";
    const double free_mb = ::statvfs(dir.c_str(), &fs_info) == 0
                               ? static_cast<double>(fs_info.f_bavail) * static_cast<double>(fs_info.f_frsize) / 1e6
                               : -1;
    std::fprintf(stderr, "warning: %s will hold about %.0f MB of activations (%s)%s\n", o.dump.c_str(), mb,
                 c.compression == analysis::Compression::kNone ? "uncompressed" : "before compression",
                 free_mb >= 0 ? (", " + std::to_string(static_cast<int64_t>(free_mb)) + " MB free there").c_str() : "");
  }
  cap->attach(copt, copt, edits);
  return cap;
}

// An edited model for the codec (--ablate components, --sae a dictionary spliced in at its hook): one hook
// set per stream group, and a fingerprint that covers the edit (model fingerprint plus the components, mode,
// reference sha256 and seed, or the dictionary's hook and file digests), so a container made with an edit
// decodes only with the same edit.
struct CodecEdit {
  std::vector<circuits::Component> comps;
  circuits::Mode mode = circuits::Mode::kZero;
  circuits::Reference ref;
  uint64_t seed = 0;
  std::unique_ptr<analysis::Sae> sae;
  std::string sae_hook;
  std::mutex mu;
  std::map<int64_t, std::unique_ptr<model::HookSet>> sets;
  const model::ModelConfig* cfg = nullptr;

  CodecEdit(model::LoadedModel& m, const CompressCmdOptions& o) : seed(o.seed), cfg(&m.config) {
    std::string id;
    if (!o.ablate.empty()) {
      comps = circuits::parse_components(o.ablate, m.config);
      mode = circuits::parse_mode(o.ablate_mode);
      CCC_CHECK(mode != circuits::Mode::kCorrupt, "compress --ablate: --mode corrupt is for paired scoring (ablate, sweep, "
                "patch, discover); a container's edit must be rebuilt from the model and a reference alone");
      id = "ablate";
      for (const auto& c : comps) id += " " + c.name();
      id += " mode " + circuits::to_string(mode);
      if (mode != circuits::Mode::kZero) {
        CCC_CHECK(!o.reference.empty(), "--mode ", o.ablate_mode,
                  " needs --reference FILE (the decoder must rebuild the same replacement values)");
        const std::string text = read_file(o.reference);
        ref = circuits::collect_reference(m, text, comps, mode, 0, 0, seed);
        id += " reference " + sha256_hex(text) + " seed " + std::to_string(seed);
      }
      m.source += " --ablate " + o.ablate + " --mode " + o.ablate_mode;
    }
    if (!o.sae.empty()) {
      nlohmann::json meta;
      sae = std::make_unique<analysis::Sae>(analysis::load_sae(o.sae, &meta));
      sae_hook = meta.value("hook", "");
      CCC_CHECK(!sae_hook.empty(), o.sae, "/sae.json: no hook named");
      analysis::check_sae_fits(m, *sae, sae_hook, o.sae);
      const std::string fp = meta.value("model_fingerprint", "");
      CCC_CHECK(fp.empty() || fp == m.fingerprint, o.sae, ": trained on the model with fingerprint ", fp.substr(0, 16),
                "..., not ", m.source, " (", m.fingerprint.substr(0, 16), "...)");
      id += (id.empty() ? "" : "\n") + std::string("sae ") + sae_hook + " " +
            sha256_hex(read_file((fs::path(o.sae) / "sae.safetensors").string())) + " " +
            sha256_hex(read_file((fs::path(o.sae) / "sae.json").string()));
      // m.source (the header's model hint) stays the model's: the hint names a model, the fingerprint the edit
    }
    m.fingerprint = sha256_hex(m.fingerprint + "\n" + id);
  }
  void install(model::HookSet& hs) const {
    if (!comps.empty()) circuits::install_ablation(hs, *cfg, {comps}, 0, mode, &ref, seed);
    if (sae) analysis::install_sae_splice(hs, *sae, sae_hook);
  }
  void attach(compress::CodecOptions& copt) {
    copt.hooks = [this](int64_t g) {
      std::lock_guard<std::mutex> lock(mu);
      auto& hs = sets[g];
      if (!hs) {
        hs = std::make_unique<model::HookSet>();
        install(*hs);
      }
      return hs.get();
    };
  }
};

std::unique_ptr<CodecEdit> make_ablation(model::LoadedModel& m, const CompressCmdOptions& o) {
  if (o.ablate.empty() && o.sae.empty()) return nullptr;
  return std::make_unique<CodecEdit>(m, o);
}

// Decompress without -m: the default model, else the shipped model the header's hint names, when its
// fingerprint is the one the container needs; otherwise the error names the fingerprint.
model::LoadedModel model_for_container(const std::string& packed, const CompressCmdOptions& o) {
  auto m = load(o);
  size_t off = 0;
  compress::Header h;
  try {
    h = compress::parse_container(packed, o.in, &off);
  } catch (const Error&) {
    return m;  // lm_decompress reports what is wrong
  }
  if (h.mode == compress::FrameMode::kStored || h.mode == compress::FrameMode::kContext || !o.ablate.empty() || !o.sae.empty() ||
      compress::hex(h.fingerprint) == m.fingerprint)
    return m;
  std::error_code ec;
  const fs::path hinted = fs::path(CCC_SOURCE_DIR) / "data" / "models" / fs::path(h.model_hint).filename();
  if (!h.model_hint.empty() && h.model_hint.find('/') == std::string::npos && fs::is_directory(hinted, ec)) {
    auto alt = model::load_model(hinted.string());
    if (alt.fingerprint == compress::hex(h.fingerprint)) return alt;
  }
  CCC_FAIL(o.in, ": needs the model with fingerprint ", compress::hex(h.fingerprint).substr(0, 16), "... (hint '",
           h.model_hint, "'); the default model has ", m.fingerprint.substr(0, 16), "...; pass -m (a container coded with --ablate "
           "or --sae decodes only with the same options)");
}

}  // namespace

// Streaming: the input is read and coded one frame (compress::kFrameBytes) at a time and the output
// written as it goes (to a temporary renamed at the end), so memory does not grow with the input.
void run_compress(const CompressCmdOptions& o) {
  const std::string out = !o.out.empty() ? o.out : (o.in == "-" ? "-" : o.in + ".ccc");
  CCC_CHECK(out != "-" || o.force || !::isatty(1),
            "refusing to write compressed data to a terminal (redirect it, use -o FILE, or -f to force)");
  check_output(out, o.in, o.force);
  CCC_CHECK(o.dump.empty() || o.dump != out, "--dump and the compressed output are the same file");
  if (!o.dump.empty()) check_not_input(o.dump, o.in, "--dump");
  CCC_CHECK(o.hooks.empty() || !o.dump.empty(), "--hooks needs --dump OUT.h5");
  CCC_CHECK(o.frame_bytes >= 4096 && o.frame_bytes <= compress::kMaxFrameBytes, "--frame-bytes ", o.frame_bytes,
            ": expected 4096 to ", compress::kMaxFrameBytes);
  auto m = load(o);
  InputStream in(o.in);
  ProgressLine progress("compress", static_cast<int64_t>(in.size()), !o.quiet, ProgressLine::Unit::kBytes);
  compress::CodecOptions copt = encoder_options(o, progress);
  std::string whole;  // --dump: the input as one frame (the capture indexes rows by input offset)
  std::unique_ptr<analysis::ActivationCapture> capture;
  auto ablation = make_ablation(m, o);  // first: the dump records the ablated model's fingerprint
  // an edited model's container is a measurement (its size difference to `--pure` is the edit's cost in
  // bytes): model-only coding, no context models to absorb the edit's effect
  if (ablation) copt.pure = true;
  copt.distribute = copt.pure;  // under mpirun model-only frames split their stream groups across the ranks
  if (!o.dump.empty()) {
    in.read(compress::kMaxFrameBytes + 1, &whole);
    CCC_CHECK(whole.size() <= compress::kMaxFrameBytes, o.in, ": compress --dump captures inputs of at most ",
              compress::kMaxFrameBytes, " bytes (one frame); use ccc dump on a part of it");
    std::function<void(model::HookSet&)> edits;
    if (ablation) edits = [&](model::HookSet& hs) { ablation->install(hs); };
    capture = make_capture(m, whole, o, copt, o.dump_force, edits);
  }
  if (ablation && !capture) ablation->attach(copt);
  compress::CodecStats stats;
  stats.shadow = true;
  copt.stats = o.explain ? &stats : nullptr;
  OutputFile writer(out, o.force);
  uint64_t in_bytes = 0, out_bytes = 0;
  int64_t frames = 0;
  const auto t0 = std::chrono::steady_clock::now();
  std::string chunk;
  for (;;) {
    chunk.clear();
    if (capture) chunk.swap(whole);
    else in.read(o.frame_bytes, &chunk);
    if (chunk.empty() && frames > 0) break;
    const uint64_t before = in_bytes, n = chunk.size();
    copt.progress = [&, before, n](uint64_t d, uint64_t t) { progress.update(static_cast<int64_t>(before + (t ? d * n / t : 0))); };
    const std::string packed = compress::lm_compress(m, chunk, copt);
    writer.write(packed);
    in_bytes += n;
    out_bytes += packed.size();
    ++frames;
    if (capture || n < o.frame_bytes) break;
  }
  progress.finish();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (capture) capture->finish();
  writer.commit();
  if (capture && !o.quiet)
    std::fprintf(stderr, "%s: %lld rows, %.1f MB of activations and metadata, total_bits %.3f\n", o.dump.c_str(),
                 (long long)capture->rows(), capture->bytes_written() / 1e6, capture->total_bits());
  if (!o.quiet) {
    const std::string fr = frames > 1 ? ", " + std::to_string(frames) + " frames" : "";
    if (in_bytes == 0)
      std::fprintf(stderr, "%s: empty input -> %llu bytes (the container header alone), %.2f s\n", o.in.c_str(),
                   (unsigned long long)out_bytes, s);
    else
      std::fprintf(stderr, "%s: %llu -> %llu bytes (%.2f%%), %.4f bits/byte, %.1f KB/s, %.2f s%s\n", o.in.c_str(),
                   (unsigned long long)in_bytes, (unsigned long long)out_bytes, 100.0 * out_bytes / in_bytes,
                   8.0 * out_bytes / in_bytes, in_bytes / 1e3 / std::max(1e-9, s), s, fr.c_str());
  }
  if (o.explain && in_bytes > 0) {
    // the model alone covers every coded frame; the context models alone and the mix cover the mixed ones
    const double n = static_cast<double>(in_bytes);
    std::printf("lm_bits %.1f (%.4f bits/byte)", stats.lm_bits, stats.lm_bits / n);
    if (stats.mixed_bytes > 0 && stats.shadow) {
      const double nm = static_cast<double>(stats.mixed_bytes);
      std::printf("  cm_bits %.1f (%.4f bits/byte)  mix_bits %.1f (%.4f bits/byte) over %llu mixed bytes", stats.cm_bits,
                  stats.cm_bits / nm, stats.mix_bits, stats.mix_bits / nm, (unsigned long long)stats.mixed_bytes);
    }
    std::printf("\nframes %llu: %llu mixed, %llu pure (%llu groups raw), %llu context models alone, %llu stored; "
                "model frames %llu bytes, context-model frames %llu bytes; mixer state %.1f MB; output %llu bytes\n",
                (unsigned long long)stats.frames, (unsigned long long)stats.mixed_frames,
                (unsigned long long)stats.pure_frames, (unsigned long long)stats.raw_groups,
                (unsigned long long)stats.context_frames, (unsigned long long)stats.stored_frames,
                (unsigned long long)stats.model_frame_bytes, (unsigned long long)stats.context_frame_bytes,
                stats.mixer_memory / 1e6, (unsigned long long)out_bytes);
  }
}

void run_dump(const CompressCmdOptions& o) {
  CCC_CHECK(!o.dump.empty(), "dump: -o OUT.h5 is required");
  check_not_input(o.dump, o.in, "dump: -o");
  auto m = load(o);
  const std::string input = read_input(o.in);
  ProgressLine progress("dump", static_cast<int64_t>(input.size()), !o.quiet, ProgressLine::Unit::kBytes);
  compress::CodecOptions copt = encoder_options(o, progress, input.size());
  copt.pure = true;  // the container is not kept: the model's run alone (the same rows and bits)
  dist::fault_point("dump.start");
  auto capture = make_capture(m, input, o, copt, o.force);
  const auto t0 = std::chrono::steady_clock::now();
  compress::lm_compress(m, input, copt);  // the encoder's run; its container is not kept
  progress.finish();
  capture->finish();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!o.quiet)
    std::fprintf(stderr, "%s: %lld rows, %.1f MB written in %.2f s (%.1f MB/s), total_bits %.3f, %.4f bits/byte\n",
                 o.dump.c_str(), (long long)capture->rows(), capture->bytes_written() / 1e6, s,
                 capture->bytes_written() / 1e6 / std::max(1e-9, s), capture->total_bits(),
                 input.empty() ? 0.0 : capture->total_bits() / static_cast<double>(input.size()));
}

void run_decompress(const CompressCmdOptions& o) {
  std::string out = o.out;
  if (out.empty() && !o.test && !o.list) {
    if (o.in == "-") {
      out = "-";  // as compress: standard input goes to standard output
    } else {
      CCC_CHECK(o.in.size() > 4 && o.in.compare(o.in.size() - 4, 4, ".ccc") == 0, o.in,
                ": name does not end in .ccc; pass -o OUT or -c");
      out = o.in.substr(0, o.in.size() - 4);
    }
  }
  InputStream in(o.in);
  FrameReader frames(in, o.in);
  std::string frame;
  if (o.list) {
    uint64_t original = 0, packed = 0, tokens = 0, streams = 0;
    uint64_t modes[4] = {0, 0, 0, 0};
    bool have_model = false;
    compress::Header first;
    while (frames.next(&frame)) {
      size_t off = 0;
      const auto h = compress::parse_container(frame, o.in, &off);
      if (!have_model && (h.mode == compress::FrameMode::kPure || h.mode == compress::FrameMode::kMixed)) {
        first = h;  // the model's figures come from the first frame the model coded
        have_model = true;
      }
      original += h.original_bytes;
      packed += frame.size();
      ++modes[static_cast<int>(h.mode)];
      streams += h.streams.size();
      for (const auto& st : h.streams) tokens += st.n_tokens;
    }
    const auto& h = first;
    std::printf("%s: original %llu bytes, compressed %llu bytes (%.2f%%, %.4f bits/byte) in %lld frame%s\n", o.in.c_str(),
                (unsigned long long)original, (unsigned long long)packed, original ? 100.0 * packed / original : 0.0,
                original ? 8.0 * packed / original : 0.0, (long long)frames.frames(), frames.frames() == 1 ? "" : "s");
    if (have_model)
      std::printf("  model %s (fingerprint %s)\n  tokenizer %s, %llu tokens in %llu streams, %u groups, %s window %u%s\n",
                  h.model_hint.c_str(), compress::hex(h.fingerprint).c_str(), h.tokenizer_kind.c_str(),
                  (unsigned long long)tokens, (unsigned long long)streams, h.n_groups,
                  h.policy == compress::WindowKind::kRolling ? "rolling" : "strided", h.window,
                  h.policy == compress::WindowKind::kRolling ? "" : (" stride " + std::to_string(h.stride)).c_str());
    else
      std::printf("  model: none (no frame needs one)\n");
    std::printf("  frames: %llu mixed, %llu pure, %llu context models alone, %llu stored\n", (unsigned long long)modes[2],
                (unsigned long long)modes[1], (unsigned long long)modes[3], (unsigned long long)modes[0]);
    return;
  }
  if (!o.test) check_output(out, o.in, o.force);
  frames.next(&frame);  // the first frame names the model (an empty file is an error here)
  auto m = o.model.empty() ? model_for_container(frame, o) : load(o);
  ProgressLine progress(o.test ? "test" : "decompress", static_cast<int64_t>(in.size()), !o.quiet, ProgressLine::Unit::kBytes);
  compress::CodecOptions copt;
  copt.threads = o.threads;
  auto ablation = make_ablation(m, o);
  if (ablation) ablation->attach(copt);
  std::unique_ptr<OutputFile> writer;
  if (!o.test) writer = std::make_unique<OutputFile>(out, o.force);
  uint64_t restored = 0, consumed = 0;
  do {
    const uint64_t before = consumed, n = frame.size();
    copt.progress = [&, before, n](uint64_t d, uint64_t t) { progress.update(static_cast<int64_t>(before + (t ? d * n / t : 0))); };
    const std::string data = compress::lm_decompress_frame(m, frame, o.in, copt);
    if (writer) writer->write(data);
    restored += data.size();
    consumed += n;
  } while (frames.next(&frame));
  progress.finish();
  if (writer) writer->commit();
  if (o.test && !o.quiet)
    std::fprintf(stderr, "%s: OK (%llu bytes restored from %lld frame%s, checksums verified)\n", o.in.c_str(),
                 (unsigned long long)restored, (long long)frames.frames(), frames.frames() == 1 ? "" : "s");
}

void run_codec_files(const CompressCmdOptions& o, bool decompress) {
  CCC_CHECK(!o.inputs.empty(), "no input file given ('-' reads standard input)");
  CCC_CHECK(o.out.empty() || o.inputs.size() == 1, "-o names one output; with ", o.inputs.size(),
            " inputs each gets its own (IN.ccc, or IN without .ccc), or use -c");
  CCC_CHECK(!(o.to_stdout && !o.out.empty() && o.out != "-"), "-c and -o FILE contradict each other");
  for (const auto& in : o.inputs) {
    CompressCmdOptions one = o;
    one.in = in;
    if (o.to_stdout) one.out = "-";
    if (decompress || o.test || o.list) run_decompress(one);
    else run_compress(one);
  }
}

}  // namespace ccc::experiments
