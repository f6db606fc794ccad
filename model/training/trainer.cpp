#include "model/training/trainer.h"

#include "model/core/bits.h"

#include <array>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <set>

#include "model/base/error.h"
#include "model/core/hooks.h"
#include "model/core/json_fields.h"
#include "model/formats/loader.h"
#include "model/formats/safetensors.h"
#include "model/core/score.h"
#include "model/base/util.h"

namespace ccc::model {

namespace fs = std::filesystem;

void TrainOptions::validate(const ModelConfig& cfg) const {
  CCC_CHECK(batch_size > 0 && grad_accum > 0 && steps > 0, "train: batch_size, grad_accum and steps must be > 0");
  CCC_CHECK(seq_len >= 2 && seq_len <= cfg.n_ctx, "train: seq_len ", seq_len, " must be in [2, n_ctx=", cfg.n_ctx, "]");
  CCC_CHECK(warmup_steps >= 0 && warmup_steps <= steps, "train: warmup_steps must be in [0, steps]");
  CCC_CHECK(lr > 0 && min_lr >= 0 && min_lr <= lr, "train: need 0 <= min_lr <= lr, lr > 0");
  CCC_CHECK(weight_decay >= 0 && grad_clip >= 0, "train: weight_decay and grad_clip must be >= 0");
  CCC_CHECK(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1, "train: betas must be in [0, 1)");
  CCC_CHECK(bos_prob >= 0 && bos_prob <= 1, "train: bos_prob must be in [0, 1]");
  CCC_CHECK(save_dtype == "f16" || save_dtype == "f32", "train: save_dtype must be f16 or f32");
  CCC_CHECK(!corpora.empty(), "train: no corpora named");
  for (double p : {synthetic_prob, copy_prob, crlf_prob})
    CCC_CHECK(p >= 0 && p <= 1, "train: synthetic_prob, copy_prob and crlf_prob must be in [0, 1]");
  auto range_ok = [](const std::vector<int64_t>& r) { return r.size() == 2 && r[0] >= 1 && r[0] <= r[1]; };
  CCC_CHECK(range_ok(synthetic_len) && range_ok(synthetic_repeats) && range_ok(copy_len) && range_ok(copy_count),
            "train: synthetic_len, synthetic_repeats, copy_len and copy_count must be [min, max] with 1 <= min <= max");
  CCC_CHECK(range_ok(synthetic_alphabet) && synthetic_alphabet[0] >= 2 && synthetic_alphabet[1] <= 95,
            "train: synthetic_alphabet must be [min, max] with 2 <= min <= max <= 95 (printable bytes)");
  CCC_CHECK(cfg.d_vocab_out == 256 && cfg.d_vocab == 257 && cfg.bos_id == 256,
            "train: ccc trains byte-level models (d_vocab 257 with BOS 256, d_vocab_out 256)");
}

nlohmann::json TrainOptions::to_json() const {
  return {{"batch_size", batch_size}, {"seq_len", seq_len}, {"grad_accum", grad_accum}, {"steps", steps},
          {"warmup_steps", warmup_steps}, {"lr", lr}, {"min_lr", min_lr}, {"weight_decay", weight_decay},
          {"beta1", beta1}, {"beta2", beta2}, {"grad_clip", grad_clip}, {"bos_prob", bos_prob}, {"seed", seed},
          {"eval_every", eval_every}, {"eval_windows", eval_windows}, {"log_every", log_every},
          {"checkpoint_every", checkpoint_every}, {"save_dtype", save_dtype}, {"corpora", corpora},
          {"synthetic_prob", synthetic_prob}, {"synthetic_len", synthetic_len}, {"synthetic_repeats", synthetic_repeats},
          {"synthetic_alphabet", synthetic_alphabet},
          {"copy_prob", copy_prob}, {"copy_len", copy_len}, {"copy_count", copy_count}, {"crlf_prob", crlf_prob}};
}

TrainOptions TrainOptions::from_json(const nlohmann::json& j, const std::string& src) {
  CCC_CHECK(j.is_object(), src, ": \"train\" must be an object");
  TrainOptions o;
  const auto known = o.to_json();
  for (auto it = j.begin(); it != j.end(); ++it) {
    CCC_CHECK(known.contains(it.key()), src, ": unknown train option '", it.key(), "'");
    const auto& want = known[it.key()];
    const bool ok = (want.is_number_integer() && it.value().is_number_integer()) ||
                    (want.is_number_float() && it.value().is_number()) || (want.is_string() && it.value().is_string()) ||
                    (want.is_array() && it.value().is_array());
    CCC_CHECK(ok, src, ": train option '", it.key(), "' has the wrong type (", it.value().dump(), ")");
  }
  auto merged = known;
  merged.update(j);
  o.batch_size = merged["batch_size"];
  o.seq_len = merged["seq_len"];
  o.grad_accum = merged["grad_accum"];
  o.steps = merged["steps"];
  o.warmup_steps = merged["warmup_steps"];
  o.lr = merged["lr"];
  o.min_lr = merged["min_lr"];
  o.weight_decay = merged["weight_decay"];
  o.beta1 = merged["beta1"];
  o.beta2 = merged["beta2"];
  o.grad_clip = merged["grad_clip"];
  o.bos_prob = merged["bos_prob"];
  o.seed = merged["seed"];
  o.eval_every = merged["eval_every"];
  o.eval_windows = merged["eval_windows"];
  o.log_every = merged["log_every"];
  o.checkpoint_every = merged["checkpoint_every"];
  o.save_dtype = merged["save_dtype"];
  const JsonFields f{merged, src + ": train"};
  o.corpora = f.strings("corpora");
  o.synthetic_prob = merged["synthetic_prob"];
  o.copy_prob = merged["copy_prob"];
  o.crlf_prob = merged["crlf_prob"];
  o.synthetic_len = f.integers("synthetic_len");
  o.synthetic_repeats = f.integers("synthetic_repeats");
  o.synthetic_alphabet = f.integers("synthetic_alphabet");
  o.copy_len = f.integers("copy_len");
  o.copy_count = f.integers("copy_count");
  return o;
}

TrainConfigFile TrainConfigFile::load(const std::string& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path, kJsonCap));
  } catch (const nlohmann::json::exception& e) {
    CCC_FAIL(path, ": not valid JSON: ", e.what());
  }
  CCC_CHECK(j.is_object() && j.contains("model") && j.contains("train"), path,
            ": a training config needs objects \"model\" and \"train\"");
  TrainConfigFile f;
  try {
    auto m = j["model"];
    m["model_type"] = "ccc";
    f.model = ModelConfig::from_json(m);
    f.train = TrainOptions::from_json(j["train"], path);
    f.train.validate(f.model);
  } catch (const Error& e) {
    const std::string msg = e.what();
    if (msg.rfind(path, 0) == 0) throw;
    CCC_FAIL(path, ": ", msg);
  }
  return f;
}

uint64_t training_memory_bytes(const ModelConfig& c, const TrainOptions& o, int64_t trainable) {
  const double params = static_cast<double>(c.n_params());
  const double train_params = trainable < 0 ? params : static_cast<double>(trainable);
  const double d = static_cast<double>(c.d_model), L = static_cast<double>(c.n_layers),
               H = static_cast<double>(c.n_heads), V = static_cast<double>(c.d_vocab_out),
               mlp = c.attn_only ? 0.0 : static_cast<double>(c.d_mlp) * (c.gated_mlp ? 4.0 : 3.0);
  const double S = static_cast<double>(o.seq_len);
  // floats kept per predicted token: per layer ~12 residual-width tensors (norms, q, k, v, z, outputs),
  // the MLP's, attention scores and probabilities (and their gradients) over S keys; logits x3
  const double per_token_train = L * (12.0 * d + mlp + 4.0 * H * S) + 3.0 * V + 4.0 * d;
  const double train_acts = static_cast<double>(o.batch_size) * S * per_token_train;
  const double per_token_eval = 2.0 * H * S + 2.0 * V + 6.0 * d + mlp;  // one layer's tensors live at a time
  const double eval_acts = static_cast<double>(std::max<int64_t>(1, o.eval_windows)) * S * per_token_eval;
  const double floats = params + 3.0 * train_params + std::max(train_acts, eval_acts);
  constexpr double kLibTorch = 300.0 * (1 << 20);  // the process before any tensor (measured ~250 MB RSS)
  const double bytes = 4.0 * floats + kLibTorch;
  return bytes >= 1.8e19 ? UINT64_MAX : static_cast<uint64_t>(bytes);
}

double lr_at(const TrainOptions& o, int64_t step) {
  if (step < o.warmup_steps) return o.lr * static_cast<double>(step + 1) / static_cast<double>(o.warmup_steps);
  const double span = std::max<int64_t>(1, o.steps - o.warmup_steps);
  const double t = std::min(1.0, static_cast<double>(step - o.warmup_steps) / span);
  return o.min_lr + 0.5 * (o.lr - o.min_lr) * (1.0 + std::cos(M_PI * t));
}

namespace {
// splitmix64: a stateless mix so that batch contents depend only on (seed, step, micro, row).
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
double unit(uint64_t x) { return static_cast<double>(x >> 11) * (1.0 / 9007199254740992.0); }
// Uniform integer in [lo, hi] from a mixed word.
int64_t uniform(uint64_t x, int64_t lo, int64_t hi) { return lo + static_cast<int64_t>(x % static_cast<uint64_t>(hi - lo + 1)); }
}  // namespace

Trainer::Trainer(Transformer model, TrainOptions opt, std::vector<Corpus> corpora, std::vector<std::string> trainable)
    : model_(std::move(model)), opt_(std::move(opt)), corpora_(std::move(corpora)) {
  opt_.validate(model_->config());
  CCC_CHECK(!corpora_.empty(), "train: no corpora");
  double total = 0;
  for (const auto& c : corpora_) {
    auto r = c.range(Split::kTrain);
    CCC_CHECK(static_cast<int64_t>(r.second - r.first) > opt_.seq_len + 1, "corpus '", c.name, "' (", c.path,
              "): train split of ", r.second - r.first, " bytes is shorter than seq_len + 1 = ", opt_.seq_len + 1);
    train_ranges_.push_back(r);
    total += static_cast<double>(r.second - r.first);
    cum_weight_.push_back(total);
  }
  for (auto& w : cum_weight_) w /= total;
  std::set<std::string> want(trainable.begin(), trainable.end());
  std::vector<torch::Tensor> decay, no_decay;
  for (auto& item : model_->named_parameters(true)) {
    const bool train = want.empty() || want.count(item.key());
    item.value().set_requires_grad(train);
    if (!train) continue;
    params_.push_back(item.value());
    param_names_.push_back(item.key());
    (item.value().dim() >= 2 ? decay : no_decay).push_back(item.value());
  }
  CCC_CHECK(!params_.empty(), "train: no trainable parameters selected");
  for (const auto& n : want) CCC_CHECK(std::find(param_names_.begin(), param_names_.end(), n) != param_names_.end(),
                                       "train: no parameter named '", n, "'");
  auto base = torch::optim::AdamWOptions(opt_.lr).betas({opt_.beta1, opt_.beta2}).eps(1e-8);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  if (!decay.empty()) groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(base.weight_decay(opt_.weight_decay)));
  if (!no_decay.empty()) groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(base.weight_decay(0.0)));
  optim_ = std::make_unique<torch::optim::AdamW>(groups, base);
}

torch::Tensor Trainer::sample_batch(int64_t step, int64_t micro) const {
  const int64_t B = opt_.batch_size, T = opt_.seq_len + 1;
  auto out = torch::empty({B, T}, torch::kInt64);
  auto acc = out.accessor<int64_t, 2>();
  for (int64_t r = 0; r < B; ++r) {
    uint64_t h = mix(mix(mix(opt_.seed) ^ static_cast<uint64_t>(step)) ^ (static_cast<uint64_t>(micro) << 32 | r));
    const double u = unit(h);
    size_t c = 0;
    while (c + 1 < cum_weight_.size() && u >= cum_weight_[c]) ++c;
    h = mix(h);
    const bool bos = unit(h) < opt_.bos_prob;
    h = mix(h);
    const auto [a, b] = train_ranges_[c];
    const uint64_t span = b - a - static_cast<uint64_t>(T);
    const size_t o = a + static_cast<size_t>(h % (span + 1));
    const std::string& bytes = corpora_[c].bytes;
    int64_t k = 0;
    if (bos) acc[r][k++] = model_->config().bos_id;
    const int64_t start = k;
    // Augmentations draw from their own continuation of h, so windows without them are unchanged.
    uint64_t g = mix(h ^ 0x5bd1e995ULL);
    if (opt_.synthetic_prob > 0 && unit(g = mix(g)) < opt_.synthetic_prob) {
      const bool full_alphabet = opt_.synthetic_alphabet[0] == 95;  // validate: then max is 95 too
      while (k < T) {  // random printable strings, each repeated back to back
        const int64_t len = uniform(g = mix(g), opt_.synthetic_len[0], opt_.synthetic_len[1]);
        const int64_t reps = uniform(g = mix(g), opt_.synthetic_repeats[0], opt_.synthetic_repeats[1]);
        const int64_t first = k;
        if (full_alphabet) {
          for (int64_t i = 0; i < len && k < T; ++i) acc[r][k++] = uniform(g = mix(g), 32, 126);
        } else {  // A distinct printable bytes (partial Fisher-Yates), then the string over them
          const int64_t A = uniform(g = mix(g), opt_.synthetic_alphabet[0], opt_.synthetic_alphabet[1]);
          std::array<int64_t, 95> printable;
          for (int64_t i = 0; i < 95; ++i) printable[static_cast<size_t>(i)] = 32 + i;
          for (int64_t i = 0; i < A; ++i)
            std::swap(printable[static_cast<size_t>(i)], printable[static_cast<size_t>(uniform(g = mix(g), i, 94))]);
          for (int64_t i = 0; i < len && k < T; ++i)
            acc[r][k++] = printable[static_cast<size_t>(uniform(g = mix(g), 0, A - 1))];
        }
        for (int64_t rep = 1; rep < reps; ++rep)
          for (int64_t i = 0; i < len && k < T; ++i, ++k) acc[r][k] = acc[r][first + i];
      }
      continue;
    }
    const bool crlf = opt_.crlf_prob > 0 && unit(g = mix(g)) < opt_.crlf_prob;
    for (size_t i = o; k < T; ++i) {  // CR LF expansion reads fewer source bytes, never more
      const auto byte = static_cast<unsigned char>(bytes[i]);
      if (crlf && byte == '\n') {
        acc[r][k++] = '\r';
        if (k == T) break;
      }
      acc[r][k++] = byte;
    }
    if (opt_.copy_prob > 0 && unit(g = mix(g)) < opt_.copy_prob) {
      const int64_t room = T - start;  // window bytes after the optional BOS
      // copy_count [1, 1] draws nothing, so such configs sample the windows they sampled before the option
      const int64_t copies = opt_.copy_count[0] == opt_.copy_count[1]
                                 ? opt_.copy_count[0]
                                 : uniform(g = mix(g), opt_.copy_count[0], opt_.copy_count[1]);
      for (int64_t c = 0; c < copies; ++c) {  // each copy reads the window as the earlier copies left it
        const int64_t len = std::min(uniform(g = mix(g), opt_.copy_len[0], opt_.copy_len[1]), room / 2);
        if (len < 1) break;
        const int64_t src = start + uniform(g = mix(g), 0, room - 2 * len);
        const int64_t dst = uniform(g = mix(g), src + len, T - len);
        for (int64_t i = 0; i < len; ++i) acc[r][dst + i] = acc[r][src + i];
      }
    }
  }
  return out;
}

double Trainer::train_step() {
  model_->train();
  for (auto& group : optim_->param_groups())
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr_at(opt_, step_));
  optim_->zero_grad();
  double loss_sum = 0;
  for (int64_t m = 0; m < opt_.grad_accum; ++m) {
    auto batch = sample_batch(step_, m);
    auto input = batch.narrow(1, 0, opt_.seq_len);
    auto target = batch.narrow(1, 1, opt_.seq_len);
    // mean bits per token; the gradient step is taken on nats (bits / kBitsPerNat), as the learning rates were tuned
    auto loss_bits = token_bits(model_->forward(input), target).mean();
    (loss_bits / (kBitsPerNat * static_cast<double>(opt_.grad_accum))).backward();
    loss_sum += loss_bits.item<double>();
  }
  // A diverged run stops with an error before its step is applied (so before anything of it is saved).
  CCC_CHECK(std::isfinite(loss_sum), "training diverged at step ", step_ + 1, ": the loss is ", loss_sum,
            " (lower the learning rate); nothing of this step is saved");
  if (opt_.grad_clip > 0) {
    last_grad_norm_ = torch::nn::utils::clip_grad_norm_(params_, opt_.grad_clip);
  }
  optim_->step();
  {
    torch::NoGradGuard no_grad;
    for (const auto& p : params_)
      CCC_CHECK(torch::isfinite(p).all().item<bool>(), "training diverged at step ", step_ + 1,
                ": the update made weights NaN or infinite (lower the learning rate); nothing of this step is saved");
  }
  ++step_;
  tokens_ += opt_.batch_size * opt_.seq_len * opt_.grad_accum;
  return loss_sum / static_cast<double>(opt_.grad_accum);
}

double Trainer::validation_bpb() {
  torch::InferenceMode guard;
  model_->eval();
  const int64_t T = opt_.seq_len + 1;
  double bits = 0;
  int64_t count = 0;
  for (const auto& c : corpora_) {
    auto [a, b] = c.range(Split::kValidation);
    if (static_cast<int64_t>(b - a) < T) continue;
    const int64_t n = std::max<int64_t>(1, opt_.eval_windows);
    auto ids = torch::empty({n, T}, torch::kInt64);
    auto acc = ids.accessor<int64_t, 2>();
    for (int64_t w = 0; w < n; ++w) {
      const size_t o = a + static_cast<size_t>((b - a - T) * w / std::max<int64_t>(1, n - 1));
      for (int64_t k = 0; k < T; ++k) acc[w][k] = static_cast<unsigned char>(c.bytes[o + k]);
    }
    bits += total_bits(model_->forward(ids.narrow(1, 0, T - 1)), ids.narrow(1, 1, T - 1)).item<double>();
    count += n * (T - 1);
  }
  return count ? bits / static_cast<double>(count) : 0.0;
}

void Trainer::run(int64_t until, const std::function<void(const TrainEvent&)>& on_event) {
  if (until <= 0 || until > opt_.steps) until = opt_.steps;
  auto t0 = std::chrono::steady_clock::now();
  const int64_t start_tokens = tokens_;
  while (step_ < until) {
    TrainEvent ev;
    ev.lr = lr_at(opt_, step_);
    ev.train_bpb = train_step();
    ev.step = step_;
    ev.tokens = tokens_;
    ev.grad_norm = last_grad_norm_;
    ev.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ev.tokens_per_s = static_cast<double>(tokens_ - start_tokens) / std::max(1e-9, ev.elapsed_s);
    const bool eval = (opt_.eval_every > 0 && step_ % opt_.eval_every == 0) || step_ == opt_.steps;
    if (eval) ev.val_bpb = validation_bpb();
    if (on_event) on_event(ev);
  }
}

void Trainer::save_state(const std::string& dir) const {
  std::error_code ec;
  fs::create_directories(dir, ec);
  CCC_CHECK(fs::is_directory(dir, ec), "cannot create ", dir);
  save_model(dir, model_->config(), model_, SaveDtype::kF32);
  // Adam moments by parameter name (safetensors, fp32)
  std::map<std::string, torch::Tensor> moments;
  for (size_t i = 0; i < params_.size(); ++i) {
    auto it = optim_->state().find(c10::guts::to_string(params_[i].unsafeGetTensorImpl()));
    if (it == optim_->state().end()) continue;
    auto& st = static_cast<torch::optim::AdamWParamState&>(*it->second);
    moments["exp_avg." + param_names_[i]] = st.exp_avg();
    moments["exp_avg_sq." + param_names_[i]] = st.exp_avg_sq();
  }
  safetensors_save((fs::path(dir) / "optimizer.safetensors").string(), moments);
  nlohmann::json st = {{"step", step_}, {"tokens", tokens_}, {"train", opt_.to_json()}, {"trainable", param_names_}};
  write_file_atomic((fs::path(dir) / "state.json").string(), st.dump(2) + "\n");
}

void Trainer::load_state(const std::string& dir) {
  const std::string cfg_path = (fs::path(dir) / "config.json").string();
  nlohmann::json saved_cfg;
  try {
    saved_cfg = nlohmann::json::parse(read_file(cfg_path, kJsonCap));
  } catch (const nlohmann::json::exception& e) {
    CCC_FAIL(cfg_path, ": not valid JSON: ", e.what());
  }
  auto mine = model_->config().to_json();
  for (auto it = mine.begin(); it != mine.end(); ++it)
    CCC_CHECK(saved_cfg.contains(it.key()) && saved_cfg[it.key()] == it.value(), "resume: checkpoint ", dir,
              " is from another config: '", it.key(), "' is ", saved_cfg.value(it.key(), nlohmann::json()).dump(),
              " there and ", it.value().dump(), " here");
  auto st = nlohmann::json::parse(read_file((fs::path(dir) / "state.json").string(), kJsonCap));
  CCC_CHECK(st["trainable"].get<std::vector<std::string>>() == param_names_, "resume: checkpoint ", dir,
            " trained a different parameter subset");
  auto sd = load_safetensors_float((fs::path(dir) / "model.safetensors").string());
  {
    torch::NoGradGuard g;
    model_->load_state_dict(sd, dir + "/model.safetensors");
  }
  auto moments = load_safetensors_float((fs::path(dir) / "optimizer.safetensors").string());
  const int64_t step = st["step"].get<int64_t>();
  for (size_t i = 0; i < params_.size(); ++i) {
    auto a = moments.find("exp_avg." + param_names_[i]);
    if (a == moments.end()) continue;
    auto ps = std::make_unique<torch::optim::AdamWParamState>();
    ps->step(step);
    ps->exp_avg(a->second.clone());
    ps->exp_avg_sq(moments.at("exp_avg_sq." + param_names_[i]).clone());
    optim_->state()[c10::guts::to_string(params_[i].unsafeGetTensorImpl())] = std::move(ps);
  }
  step_ = step;
  tokens_ = st["tokens"].get<int64_t>();
}

double text_bits_per_byte(Transformer& model, const std::string& text, int64_t bos_id) {
  if (text.empty()) return 0.0;
  std::vector<int64_t> tokens{bos_id};
  for (unsigned char c : text) tokens.push_back(c);
  double total = 0;
  for (double b : score_bits(model, tokens)) total += b;
  return total / static_cast<double>(text.size());
}

std::vector<std::string> select_parameters(const Transformer& model, const std::string& spec) {
  std::vector<std::string> patterns;
  if (spec == "all" || spec.empty()) {
    patterns = {"*"};
  } else if (spec == "attn") {
    patterns = {"blocks.*.attn.*"};
  } else if (spec == "mlp") {
    patterns = {"blocks.*.mlp.*"};
  } else if (spec.rfind("layers:", 0) == 0) {
    std::string rest = spec.substr(7);
    size_t pos = 0;
    while (pos <= rest.size()) {
      size_t comma = rest.find(',', pos);
      if (comma == std::string::npos) comma = rest.size();
      const std::string l = rest.substr(pos, comma - pos);
      CCC_CHECK(!l.empty() && l.find_first_not_of("0123456789") == std::string::npos, "--params: bad layer list '", spec, "'");
      CCC_CHECK(std::stoll(l) < model->config().n_layers, "--params: layer ", l, " does not exist (model has ",
                model->config().n_layers, ")");
      patterns.push_back("blocks." + l + ".*");
      pos = comma + 1;
    }
  } else {
    size_t pos = 0;
    while (pos <= spec.size()) {
      size_t comma = spec.find(',', pos);
      if (comma == std::string::npos) comma = spec.size();
      patterns.push_back(spec.substr(pos, comma - pos));
      pos = comma + 1;
    }
  }
  std::vector<std::string> out;
  for (const auto& [name, t] : model->state_dict())
    for (const auto& p : patterns)
      if (glob_match(p, name)) {
        out.push_back(name);
        break;
      }
  CCC_CHECK(!out.empty(), "--params '", spec, "' selects no parameter");
  return out;
}

}  // namespace ccc::model
