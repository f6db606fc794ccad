#include "experiments/commands/model_cmd.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include <nlohmann/json.hpp>

#include "analysis/positions.h"
#include "circuits/sweep.h"
#include "experiments/support/common.h"
#include "experiments/support/progress_hooks.h"
#include "model/base/error.h"
#include "model/base/fileio.h"
#include "model/base/util.h"
#include "model/core/score.h"
#include "model/scoring/streams.h"

namespace ccc::experiments {

model::LoadedModel ModelArgs::load() const {
  return model::load_model(model.empty() ? default_model_path() : model, tokenizer);
}



void run_info(const ModelArgs& a, bool json) {
  auto m = a.load();
  const auto& c = m.config;
  nlohmann::json j = c.to_json();
  j.erase("model_type");
  j["source"] = m.source;
  j["format"] = m.format;
  j["n_params"] = c.n_params();
  j["tokenizer"] = m.tokenizer->kind();
  j["tokenizer_vocab"] = m.tokenizer->vocab_size();
  j["fingerprint"] = m.fingerprint;
  if (json) {
    stamp(j, "info");
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::printf("model        %s (%s)\n", m.source.c_str(), m.format.c_str());
  std::printf("architecture %s: %lld layers, d_model %lld, %lld heads (%lld kv) x d_head %lld, d_mlp %lld%s\n",
              c.arch.c_str(), (long long)c.n_layers, (long long)c.d_model, (long long)c.n_heads, (long long)c.n_kv_heads,
              (long long)c.d_head, (long long)c.d_mlp, c.attn_only ? " (attention only)" : "");
  std::printf("components   norm %s, act %s%s, positions %s", model::to_string(c.norm).c_str(), model::to_string(c.act).c_str(),
              c.gated_mlp ? " (gated)" : "", model::to_string(c.pos).c_str());
  if (c.pos == model::PosKind::kRotary) std::printf(" (rotary_dim %lld, theta %g)", (long long)c.rotary_dim, c.rope_theta);
  std::printf("%s%s\n", c.parallel_attn ? ", parallel attn+mlp" : "", c.tied_embed ? ", tied unembedding" : "");
  std::printf("parameters   %lld\n", (long long)c.n_params());
  std::printf("context      %lld\n", (long long)c.n_ctx);
  std::printf("vocab        %lld in, %lld out; tokenizer %s (%lld tokens), bos %lld\n", (long long)c.d_vocab,
              (long long)c.d_vocab_out, m.tokenizer->kind().c_str(), (long long)m.tokenizer->vocab_size(), (long long)c.bos_id);
  std::printf("fingerprint  %s\n", m.fingerprint.c_str());
}

void run_hooks(const ModelArgs& a) {
  auto m = a.load();
  for (const auto& [name, shape] : m.model->hook_shapes()) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + shape[i];
    s += "]";
    const bool opt_in = name.find("hook_result") != std::string::npos;
    std::printf("%-36s %s%s\n", name.c_str(), s.c_str(), opt_in ? "  (opt-in: exact name only)" : "");
  }
}


void run_generate(const ModelArgs& a, const GenerateArgs& g) {
  auto m = a.load();
  std::vector<int64_t> ids{m.config.bos_id};
  auto enc = m.tokenizer->encode(g.prompt);
  ids.insert(ids.end(), enc.begin(), enc.end());
  model::GenerateOptions opt;
  opt.max_new_tokens = g.n;
  opt.temperature = g.temperature;
  opt.seed = g.seed;
  opt.stop_id = m.config.bos_id == m.config.eos_id ? m.config.eos_id : m.config.bos_id;
  auto out = model::generate(m.model, ids, opt);
  std::vector<int64_t> all(enc);
  all.insert(all.end(), out.begin(), out.end());
  std::cout << m.tokenizer->decode(all) << std::endl;
}


namespace {

// A result is never NaN: a non-finite bit count (overflowing activations) is an error naming the token.
void check_finite(const std::vector<double>& bits, const std::string& file, int64_t stream = -1) {
  for (size_t i = 0; i < bits.size(); ++i)
    CCC_CHECK(std::isfinite(bits[i]), file, ": the model gave coded token ", i, stream >= 0 ? " of stream " : "",
              stream >= 0 ? std::to_string(stream) : "", " a non-finite cost (", bits[i],
              " bits); no result printed (overflowing activations? try the f32 weights)");
}

void print_bits_summary(const std::string& file, const model::LoadedModel& m, uint64_t n_bytes, uint64_t n_coded,
                        double total, const model::WindowPolicy& pol) {
  const double bpb = n_bytes == 0 ? 0.0 : total / static_cast<double>(n_bytes);
  const double bpt = n_coded == 0 ? 0.0 : total / static_cast<double>(n_coded);
  std::printf("file           %s\n", file.c_str());
  std::printf("model          %s\n", m.source.c_str());
  std::printf("n_bytes        %llu%s\n", (unsigned long long)n_bytes, n_bytes == 0 ? " (empty input: nothing to score)" : "");
  std::printf("n_tokens       %llu (BOS included; %llu coded)\n", (unsigned long long)(n_coded + 1), (unsigned long long)n_coded);
  std::printf("total_bits     %.3f\n", total);
  if (n_bytes != 0) {
    std::printf("bits_per_byte  %.4f\n", bpb);
    std::printf("bits_per_token %.4f\n", bpt);
  }
  std::printf("window         %lld tokens, stride %lld\n", (long long)pol.window, (long long)pol.stride);
}

// The summary of a byte-level model streams: the input is read 1 MiB at a time and scored in runs of
// windows (model::StreamScorer), so memory does not grow with the input and there is no size limit.
void bits_streaming(model::LoadedModel& m, const BitsArgs& o) {
  InputStream in(o.file);
  const model::WindowPolicy pol = model::resolve_window({o.window, o.stride}, m.config.n_ctx);
  ProgressLine progress("bits", static_cast<int64_t>(in.size()), !o.quiet);  // silent when size unknown
  double total = 0;
  uint64_t n_coded = 0;
  model::StreamScorer scorer(m.model, pol, [&](const double* bits, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      CCC_CHECK(std::isfinite(bits[i]), o.file, ": the model gave coded token ", n_coded + i, " a non-finite cost (",
                bits[i], " bits); no result printed (overflowing activations? try the f32 weights)");
      total += bits[i];
    }
    n_coded += n;
    progress.update(static_cast<int64_t>(n_coded));
  });
  const int64_t bos = m.config.bos_id;
  scorer.push(&bos, 1);
  std::string block;
  std::vector<int64_t> ids;
  uint64_t n_bytes = 0;
  while (true) {
    block.clear();
    if (in.read(size_t{1} << 20, &block) == 0) break;
    n_bytes += block.size();
    for (size_t at = 0; at < block.size(); at += ids.size()) {  // 64 Ki tokens at a time: the scorer's buffer stays small
      ids.resize(std::min<size_t>(block.size() - at, size_t{1} << 16));
      for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<unsigned char>(block[at + i]);
      scorer.push(ids.data(), ids.size());
    }
  }
  scorer.finish();
  print_bits_summary(o.file, m, n_bytes, n_coded, total, pol);
}

// --streams: the compressor's segmentation and window policy, one batched run.
void bits_segmented(model::LoadedModel& m, const BitsArgs& o, const std::string& text) {
  model::HookSet progress_hooks;
  model::StreamOptions bopt;
  bopt.streams = o.streams;
  bopt.window = o.window;
  bopt.strided = o.strided;
  int64_t total_tokens = 0;
  for (uint64_t n : model::stream_token_counts(m, text, bopt)) total_tokens += static_cast<int64_t>(n);
  RunProgress progress("bits", total_tokens, !o.quiet);
  progress.attach(progress_hooks);
  bopt.hooks = [&](int64_t) { return &progress_hooks; };
  const auto per_stream = model::segmented_token_bits(m, text, bopt);
  progress.finish();
  double total = 0;
  std::vector<double> flat;
  for (size_t s = 0; s < per_stream.size(); ++s) {
    check_finite(per_stream[s], o.file, static_cast<int64_t>(s));
    for (double b : per_stream[s]) total += b;
    flat.insert(flat.end(), per_stream[s].begin(), per_stream[s].end());
  }
  nlohmann::json masked;  // --positions: the bits over the selected tokens
  if (!o.positions.empty()) {
    circuits::ScoringRun run;
    run.streams = static_cast<int64_t>(per_stream.size());
    run.window = o.window;
    const int64_t W = model::resolve_window_policy(m.config, bopt).first;
    const auto mask = circuits::token_mask(m, text, run, analysis::byte_mask(text, o.positions, run.streams, W));
    CCC_CHECK(mask.positions > 0, o.file, ": the positions selected (", o.positions.describe(), ") hold no coded token");
    const double t = circuits::total_bits(circuits::masked(flat, mask));
    masked = {{"mask", o.positions.describe()}, {"count", mask.positions}, {"bytes", mask.bytes},
              {"total_bits", t}, {"bits_per_byte", t / static_cast<double>(mask.bytes)}};
  }
  if (o.json) {
    nlohmann::json j;
    j["model"] = m.source;
    j["fingerprint"] = m.fingerprint;
    j["file"] = o.file;
    j["streams"] = per_stream.size();
    j["policy"] = model::describe_policy(m.config, bopt);
    j["bits"] = per_stream;  // per stream, per coded token
    j["total_bits"] = total;
    j["n_bytes"] = text.size();
    j["bits_per_byte"] = text.empty() ? nlohmann::json() : nlohmann::json(total / static_cast<double>(text.size()));
    j["tokenizer"] = m.tokenizer->kind();
    if (!masked.is_null()) j["positions"] = masked;
    stamp(j, "bits_streams");
    std::cout << j.dump() << "\n";
    return;
  }
  std::printf("total_bits %.3f\nbits_per_byte %s\nstreams %lld\nwindow %s\n", total,
              text.empty() ? "- (empty input)" : std::to_string(total / text.size()).c_str(), (long long)per_stream.size(),
              model::describe_policy(m.config, bopt).c_str());
  if (!masked.is_null())
    std::printf("positions %s (%lld tokens, %lld bytes)\npositions_total_bits %.3f\npositions_bits_per_byte %.6f\n",
                o.positions.describe().c_str(), (long long)masked["count"].get<int64_t>(),
                (long long)masked["bytes"].get<int64_t>(), masked["total_bits"].get<double>(),
                masked["bits_per_byte"].get<double>());
}

// --json: per-token bits with each token's byte span and text.
void print_bits_json(const model::LoadedModel& m, const BitsArgs& o, const std::string& text,
                     const std::vector<int64_t>& tokens, const std::vector<int64_t>& enc, const std::vector<double>& bits,
                     double total, const model::WindowPolicy& pol) {
  const double bpb = text.empty() ? 0.0 : total / static_cast<double>(text.size());
  const double bpt = bits.empty() ? 0.0 : total / static_cast<double>(bits.size());
  nlohmann::json j;
  j["model"] = m.source;
  j["fingerprint"] = m.fingerprint;
  j["file"] = o.file;
  j["tokens"] = tokens;
  j["bits"] = bits;
  // each coded token's byte span [start, end) in the input and its bytes, escaped (\xNN for non-ASCII)
  const auto offsets = m.tokenizer->byte_offsets(enc);
  nlohmann::json spans = nlohmann::json::array(), texts = nlohmann::json::array();
  for (size_t i = 0; i < enc.size(); ++i) {
    const int64_t a0 = offsets[i], a1 = i + 1 < enc.size() ? offsets[i + 1] : static_cast<int64_t>(text.size());
    spans.push_back({a0, a1});
    texts.push_back(escape_bytes(std::string_view(text).substr(a0, a1 - a0)));
  }
  j["spans"] = spans;
  j["token_text"] = texts;
  j["total_bits"] = total;
  j["n_bytes"] = text.size();
  j["n_tokens"] = tokens.size();
  j["n_coded_tokens"] = bits.size();
  j["bits_per_byte"] = text.empty() ? nlohmann::json() : nlohmann::json(bpb);
  j["bits_per_token"] = bits.empty() ? nlohmann::json() : nlohmann::json(bpt);
  j["window"] = {{"size", pol.window}, {"stride", pol.stride}};
  j["tokenizer"] = m.tokenizer->kind();
  stamp(j, "bits");
  std::cout << j.dump() << "\n";
}

}  // namespace

void run_bits(const ModelArgs& a, const BitsArgs& o) {
  auto m = a.load();
  const bool masked = !o.positions.empty();
  // --streams unset (< 0): one stream on the full-sequence path; --streams 0: automatic, as in every command
  if (o.streams < 0 && !o.json && !masked && m.tokenizer->kind() == "byte") return bits_streaming(m, o);
  const std::string text = read_input(o.file);
  if (masked) {  // per-token bits under one segmentation: one stream unless --streams says otherwise
    BitsArgs one = o;
    one.streams = o.streams < 0 ? 1 : o.streams;
    return bits_segmented(m, one, text);
  }
  if (o.streams >= 0) return bits_segmented(m, o, text);
  model::HookSet progress_hooks;
  std::vector<int64_t> tokens{m.config.bos_id};
  auto enc = m.tokenizer->encode(text);
  tokens.insert(tokens.end(), enc.begin(), enc.end());
  const model::WindowPolicy pol = model::resolve_window({o.window, o.stride}, m.config.n_ctx);
  RunProgress progress("bits", static_cast<int64_t>(tokens.size()), !o.quiet);
  progress.attach(progress_hooks);
  auto bits = model::score_bits(m.model, tokens, pol, &progress_hooks);
  progress.finish();
  check_finite(bits, o.file);
  double total = 0;
  for (double b : bits) total += b;
  if (o.json) return print_bits_json(m, o, text, tokens, enc, bits, total, pol);
  print_bits_summary(o.file, m, text.size(), bits.size(), total, pol);
}

void run_init(const InitArgs& o) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(o.config, kJsonCap));
  } catch (const nlohmann::json::exception& e) {
    CCC_FAIL(o.config, ": not valid JSON: ", e.what());
  }
  CCC_CHECK(!(j.is_object() && j.contains("model") && j.contains("train")), o.config,
            ": a training config ({\"model\", \"train\"}); init wants a model config (its \"model\" object alone), "
            "or train it with ccc train -c ", o.config, " -o OUT");
  model::ModelConfig c;
  try {
    c = model::ModelConfig::from_json(j);
  } catch (const Error& e) {
    CCC_FAIL(o.config, ": ", e.what());
  }
  std::error_code ec;
  CCC_CHECK(o.force || !std::filesystem::exists(o.out, ec), o.out, " exists (use --force to replace)");
  // f32 weights plus the f16/f32 copy save_model serialises, plus LibTorch
  check_memory(static_cast<uint64_t>(8.0 * static_cast<double>(c.n_params())) + (uint64_t{300} << 20), 0, "init " + o.config);
  OutputDir out(o.out, o.force);  // config and weights appear together
  model::Transformer m(c);
  m->init_weights(o.seed);
  model::save_model(out.temp_dir(), c, m);
  out.commit();
  std::printf("wrote %s (%lld parameters, random init, seed %llu)\n", o.out.c_str(), (long long)c.n_params(),
              (unsigned long long)o.seed);
}


}  // namespace ccc::experiments
