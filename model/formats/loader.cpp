#include "model/formats/loader.h"

#include "model/core/json_fields.h"

#include <cstring>
#include <filesystem>
#include <fstream>

#include "model/base/error.h"
#include "model/base/util.h"

namespace ccc::model {

namespace fs = std::filesystem;

namespace {

nlohmann::json read_json(const std::string& path) {
  try {
    return nlohmann::json::parse(read_file(path, kJsonCap));
  } catch (const nlohmann::json::exception& e) {
    CCC_FAIL(path, ": not valid JSON: ", e.what());
  }
}

using Fields = JsonFields;

ActKind hf_act(const std::string& s, const std::string& src) {
  if (s == "gelu_new" || s == "gelu_pytorch_tanh" || s == "gelu_fast") return ActKind::kGeluTanh;
  if (s == "gelu") return ActKind::kGelu;
  if (s == "silu" || s == "swish") return ActKind::kSilu;
  if (s == "relu") return ActKind::kRelu;
  CCC_FAIL(src, ": unsupported activation '", s, "'");
}

}  // namespace

ModelConfig config_from_hf(const nlohmann::json& j, const std::string& src) {
  CCC_CHECK(j.is_object(), src, ": config must be a JSON object");
  Fields f{j, src};
  const std::string type = f.string("model_type", "");
  ModelConfig c;
  c.arch = type;
  if (type == "gpt2") {
    c.d_model = f.integer("n_embd");
    c.n_layers = f.integer("n_layer");
    c.n_heads = f.integer("n_head");
    c.n_kv_heads = c.n_heads;
    CCC_CHECK(c.n_heads > 0 && c.d_model % c.n_heads == 0, src, ": n_embd (", c.d_model,
              ") must be a multiple of n_head (", c.n_heads, ")");
    c.d_head = c.d_model / c.n_heads;
    c.d_mlp = f.integer("n_inner", 4 * c.d_model);
    c.n_ctx = f.integer("n_positions");
    c.d_vocab = c.d_vocab_out = f.integer("vocab_size");
    c.norm = NormKind::kLayerNorm;
    c.norm_eps = f.number("layer_norm_epsilon", 1e-5);
    c.act = hf_act(f.string("activation_function", "gelu_new"), src);
    c.pos = PosKind::kLearned;
    c.tied_embed = f.boolean("tie_word_embeddings", true);
    c.bos_id = f.integer("bos_token_id", 50256);
    c.eos_id = f.integer("eos_token_id", 50256);
  } else if (type == "gpt_neox") {
    c.d_model = f.integer("hidden_size");
    c.n_layers = f.integer("num_hidden_layers");
    c.n_heads = f.integer("num_attention_heads");
    c.n_kv_heads = c.n_heads;
    CCC_CHECK(c.n_heads > 0 && c.d_model % c.n_heads == 0, src, ": hidden_size must be a multiple of num_attention_heads");
    c.d_head = c.d_model / c.n_heads;
    c.d_mlp = f.integer("intermediate_size");
    c.n_ctx = f.integer("max_position_embeddings");
    c.d_vocab = c.d_vocab_out = f.integer("vocab_size");
    c.norm = NormKind::kLayerNorm;
    c.norm_eps = f.number("layer_norm_eps", 1e-5);
    c.act = hf_act(f.string("hidden_act", "gelu"), src);
    c.pos = PosKind::kRotary;
    const double pct = f.number("rotary_pct", 1.0);
    CCC_CHECK(pct > 0 && pct <= 1, src, ": rotary_pct must be in (0, 1], got ", pct);
    c.rotary_dim = static_cast<int64_t>(c.d_head * pct);  // HF: int(head_size * rotary_pct)
    c.rope_theta = f.number("rotary_emb_base", f.number("rope_theta", 10000.0));
    c.parallel_attn = f.boolean("use_parallel_residual", true);
    c.tied_embed = f.boolean("tie_word_embeddings", false);
    c.attn_bias = f.boolean("attention_bias", true);
    c.bos_id = f.integer("bos_token_id", 0);
    c.eos_id = f.integer("eos_token_id", 0);
  } else if (type == "llama") {
    c.d_model = f.integer("hidden_size");
    c.n_layers = f.integer("num_hidden_layers");
    c.n_heads = f.integer("num_attention_heads");
    c.n_kv_heads = f.integer("num_key_value_heads", c.n_heads);
    CCC_CHECK(c.n_heads > 0, src, ": num_attention_heads must be > 0");
    c.d_head = f.integer("head_dim", c.d_model / c.n_heads);
    c.d_mlp = f.integer("intermediate_size");
    c.n_ctx = f.integer("max_position_embeddings");
    c.d_vocab = c.d_vocab_out = f.integer("vocab_size");
    c.norm = NormKind::kRMSNorm;
    c.norm_eps = f.number("rms_norm_eps", 1e-6);
    c.act = hf_act(f.string("hidden_act", "silu"), src);
    c.pos = PosKind::kRotary;
    c.rotary_dim = c.d_head;
    c.rope_theta = f.number("rope_theta", 10000.0);
    CCC_CHECK(!f.has("rope_scaling"), src, ": rope_scaling is not supported");
    c.gated_mlp = true;
    c.tied_embed = f.boolean("tie_word_embeddings", false);
    c.attn_bias = f.boolean("attention_bias", false);
    c.mlp_bias = f.boolean("mlp_bias", false);
    c.norm_bias = false;
    c.bos_id = f.integer("bos_token_id", 1);
    c.eos_id = f.integer("eos_token_id", 2);
  } else {
    CCC_FAIL(src, ": model_type '", type, "' is not supported (expected gpt2, gpt_neox, llama or ccc)");
  }
  try {
    c.validate();
  } catch (const Error& e) {
    CCC_FAIL(src, ": ", e.what());
  }
  return c;
}

std::map<std::string, torch::Tensor> canonical_from_hf(const ModelConfig& c, std::map<std::string, torch::Tensor> sd,
                                                       const std::string& src) {
  std::map<std::string, torch::Tensor> out;
  // Accept both layouts: with the wrapper prefix (transformer. / gpt_neox. / model.) and without.
  const std::string prefix = c.arch == "gpt2" ? "transformer." : c.arch == "gpt_neox" ? "gpt_neox." : "model.";
  std::map<std::string, torch::Tensor> in;
  for (auto& [k, v] : sd) {
    std::string key = k.rfind(prefix, 0) == 0 ? k.substr(prefix.size()) : k;
    CCC_CHECK(!in.count(key), src, ": tensor '", key, "' appears both with and without the '", prefix, "' prefix");
    in[key] = v;
  }
  auto take = [&](const std::string& key) {
    auto it = in.find(key);
    CCC_CHECK(it != in.end(), src, ": missing tensor '", key, "' (", c.arch, " layout)");
    auto t = it->second;
    in.erase(it);
    CCC_CHECK(t.is_floating_point(), src, ": tensor '", key, "' is not floating point");
    return t;
  };
  auto expect = [&](const torch::Tensor& t, std::vector<int64_t> shape, const std::string& key) {
    CCC_CHECK(t.sizes() == torch::IntArrayRef(shape), src, ": tensor '", key, "' has shape ", t.sizes(), ", expected ",
              torch::IntArrayRef(shape));
    return t;
  };
  auto is_legacy = [&](const std::string& key) {
    auto ends = [&](const std::string& s) { return key.size() >= s.size() && key.compare(key.size() - s.size(), s.size(), s) == 0; };
    return ends(".attn.bias") || ends(".attn.masked_bias") || ends(".attention.bias") ||
           ends(".attention.masked_bias") || ends("rotary_emb.inv_freq");
  };
  const int64_t d = c.d_model, H = c.n_heads, K = c.n_kv_heads, dh = c.d_head;
  if (c.arch == "gpt2") {
    out["embed.W_E"] = expect(take("wte.weight"), {c.d_vocab, d}, "wte.weight");
    out["pos_embed.W_pos"] = expect(take("wpe.weight"), {c.n_ctx, d}, "wpe.weight");
    for (int64_t l = 0; l < c.n_layers; ++l) {
      const std::string h = "h." + std::to_string(l) + ".", b = "blocks." + std::to_string(l) + ".";
      out[b + "ln1.w"] = expect(take(h + "ln_1.weight"), {d}, h + "ln_1.weight");
      out[b + "ln1.b"] = expect(take(h + "ln_1.bias"), {d}, h + "ln_1.bias");
      // Conv1D stores [in, out]: transpose to Linear's [out, in].
      out[b + "attn.W_qkv"] = expect(take(h + "attn.c_attn.weight"), {d, 3 * d}, h + "attn.c_attn.weight").t().contiguous();
      out[b + "attn.b_qkv"] = expect(take(h + "attn.c_attn.bias"), {3 * d}, h + "attn.c_attn.bias");
      out[b + "attn.W_O"] = expect(take(h + "attn.c_proj.weight"), {d, d}, h + "attn.c_proj.weight").t().contiguous();
      out[b + "attn.b_O"] = expect(take(h + "attn.c_proj.bias"), {d}, h + "attn.c_proj.bias");
      out[b + "ln2.w"] = expect(take(h + "ln_2.weight"), {d}, h + "ln_2.weight");
      out[b + "ln2.b"] = expect(take(h + "ln_2.bias"), {d}, h + "ln_2.bias");
      out[b + "mlp.W_in"] = expect(take(h + "mlp.c_fc.weight"), {d, c.d_mlp}, h + "mlp.c_fc.weight").t().contiguous();
      out[b + "mlp.b_in"] = expect(take(h + "mlp.c_fc.bias"), {c.d_mlp}, h + "mlp.c_fc.bias");
      out[b + "mlp.W_out"] = expect(take(h + "mlp.c_proj.weight"), {c.d_mlp, d}, h + "mlp.c_proj.weight").t().contiguous();
      out[b + "mlp.b_out"] = expect(take(h + "mlp.c_proj.bias"), {d}, h + "mlp.c_proj.bias");
    }
    out["ln_final.w"] = expect(take("ln_f.weight"), {d}, "ln_f.weight");
    out["ln_final.b"] = expect(take("ln_f.bias"), {d}, "ln_f.bias");
    if (in.count("lm_head.weight")) {
      auto w = expect(take("lm_head.weight"), {c.d_vocab_out, d}, "lm_head.weight");
      if (c.tied_embed) {
        CCC_CHECK(torch::equal(w, out["embed.W_E"]), src, ": lm_head.weight differs from wte.weight but the config ties them");
      } else {
        out["unembed.W_U"] = w;
      }
    } else {
      CCC_CHECK(c.tied_embed, src, ": missing tensor 'lm_head.weight' (tie_word_embeddings is false)");
    }
  } else if (c.arch == "gpt_neox") {
    out["embed.W_E"] = expect(take("embed_in.weight"), {c.d_vocab, d}, "embed_in.weight");
    for (int64_t l = 0; l < c.n_layers; ++l) {
      const std::string h = "layers." + std::to_string(l) + ".", b = "blocks." + std::to_string(l) + ".";
      out[b + "ln1.w"] = expect(take(h + "input_layernorm.weight"), {d}, h + "input_layernorm.weight");
      out[b + "ln1.b"] = expect(take(h + "input_layernorm.bias"), {d}, h + "input_layernorm.bias");
      // fused query_key_value rows are laid out per head as [n_heads, 3, d_head]
      auto w = expect(take(h + "attention.query_key_value.weight"), {3 * d, d}, h + "attention.query_key_value.weight")
                   .view({H, 3, dh, d});
      out[b + "attn.W_qkv"] = torch::cat({w.select(1, 0).reshape({H * dh, d}), w.select(1, 1).reshape({H * dh, d}),
                                          w.select(1, 2).reshape({H * dh, d})}, 0);
      if (c.attn_bias) {
        auto bb = expect(take(h + "attention.query_key_value.bias"), {3 * d}, h + "attention.query_key_value.bias").view({H, 3, dh});
        out[b + "attn.b_qkv"] = torch::cat({bb.select(1, 0).reshape({-1}), bb.select(1, 1).reshape({-1}), bb.select(1, 2).reshape({-1})});
        out[b + "attn.b_O"] = expect(take(h + "attention.dense.bias"), {d}, h + "attention.dense.bias");
      }
      out[b + "attn.W_O"] = expect(take(h + "attention.dense.weight"), {d, d}, h + "attention.dense.weight");
      out[b + "ln2.w"] = expect(take(h + "post_attention_layernorm.weight"), {d}, h + "post_attention_layernorm.weight");
      out[b + "ln2.b"] = expect(take(h + "post_attention_layernorm.bias"), {d}, h + "post_attention_layernorm.bias");
      out[b + "mlp.W_in"] = expect(take(h + "mlp.dense_h_to_4h.weight"), {c.d_mlp, d}, h + "mlp.dense_h_to_4h.weight");
      out[b + "mlp.b_in"] = expect(take(h + "mlp.dense_h_to_4h.bias"), {c.d_mlp}, h + "mlp.dense_h_to_4h.bias");
      out[b + "mlp.W_out"] = expect(take(h + "mlp.dense_4h_to_h.weight"), {d, c.d_mlp}, h + "mlp.dense_4h_to_h.weight");
      out[b + "mlp.b_out"] = expect(take(h + "mlp.dense_4h_to_h.bias"), {d}, h + "mlp.dense_4h_to_h.bias");
    }
    out["ln_final.w"] = expect(take("final_layer_norm.weight"), {d}, "final_layer_norm.weight");
    out["ln_final.b"] = expect(take("final_layer_norm.bias"), {d}, "final_layer_norm.bias");
    if (!c.tied_embed) out["unembed.W_U"] = expect(take("embed_out.weight"), {c.d_vocab_out, d}, "embed_out.weight");
  } else if (c.arch == "llama") {
    out["embed.W_E"] = expect(take("embed_tokens.weight"), {c.d_vocab, d}, "embed_tokens.weight");
    for (int64_t l = 0; l < c.n_layers; ++l) {
      const std::string h = "layers." + std::to_string(l) + ".", b = "blocks." + std::to_string(l) + ".";
      out[b + "ln1.w"] = expect(take(h + "input_layernorm.weight"), {d}, h + "input_layernorm.weight");
      auto q = expect(take(h + "self_attn.q_proj.weight"), {H * dh, d}, h + "self_attn.q_proj.weight");
      auto k = expect(take(h + "self_attn.k_proj.weight"), {K * dh, d}, h + "self_attn.k_proj.weight");
      auto v = expect(take(h + "self_attn.v_proj.weight"), {K * dh, d}, h + "self_attn.v_proj.weight");
      out[b + "attn.W_qkv"] = torch::cat({q, k, v}, 0);
      if (c.attn_bias) {
        out[b + "attn.b_qkv"] = torch::cat({expect(take(h + "self_attn.q_proj.bias"), {H * dh}, h + "self_attn.q_proj.bias"),
                                            expect(take(h + "self_attn.k_proj.bias"), {K * dh}, h + "self_attn.k_proj.bias"),
                                            expect(take(h + "self_attn.v_proj.bias"), {K * dh}, h + "self_attn.v_proj.bias")});
        out[b + "attn.b_O"] = expect(take(h + "self_attn.o_proj.bias"), {d}, h + "self_attn.o_proj.bias");
      }
      out[b + "attn.W_O"] = expect(take(h + "self_attn.o_proj.weight"), {d, H * dh}, h + "self_attn.o_proj.weight");
      out[b + "ln2.w"] = expect(take(h + "post_attention_layernorm.weight"), {d}, h + "post_attention_layernorm.weight");
      out[b + "mlp.W_gate"] = expect(take(h + "mlp.gate_proj.weight"), {c.d_mlp, d}, h + "mlp.gate_proj.weight");
      out[b + "mlp.W_in"] = expect(take(h + "mlp.up_proj.weight"), {c.d_mlp, d}, h + "mlp.up_proj.weight");
      out[b + "mlp.W_out"] = expect(take(h + "mlp.down_proj.weight"), {d, c.d_mlp}, h + "mlp.down_proj.weight");
    }
    out["ln_final.w"] = expect(take("norm.weight"), {d}, "norm.weight");
    if (!c.tied_embed) out["unembed.W_U"] = expect(take("lm_head.weight"), {c.d_vocab_out, d}, "lm_head.weight");
    else in.erase("lm_head.weight");
  }
  for (const auto& [key, t] : in)
    CCC_CHECK(is_legacy(key), src, ": unexpected tensor '", key, "' (shape ", t.sizes(), ") for ", c.arch);
  return out;
}

namespace {

// Model files are read whole: refuse devices, FIFOs and directories (a symlink to /dev/zero never ends).
void require_regular(const std::string& path) {
  std::error_code ec;
  CCC_CHECK(fs::is_regular_file(path, ec), path, ": not a regular file");
}

// The weights must be those the config describes: same parameter count (checked before the model is built,
// so a config with inflated sizes allocates nothing), and every value finite.
void check_weights(const ModelConfig& c, const std::map<std::string, torch::Tensor>& sd, const std::string& cfg_path,
                   const std::string& weights) {
  int64_t held = 0;
  for (const auto& [name, t] : sd) {
    CCC_CHECK(t.is_floating_point(), weights, ": tensor ", name, " has the integer dtype ", t.scalar_type(),
              "; weights must be floating point (F32, F16, BF16, F64)");
    held += t.numel();
  }
  CCC_CHECK(held == c.n_params(), cfg_path, ": the config describes ", c.n_params(), " parameters but ", weights,
            " holds ", held);
  for (const auto& [name, t] : sd)
    CCC_CHECK(t.numel() == 0 || torch::isfinite(t).all().item<bool>(), weights, ": tensor ", name,
              " holds NaN or infinite values");
}

LoadedModel load_llama2c(const std::string& path) {
  std::string bytes = read_file(path, weights_cap());
  CCC_CHECK(bytes.size() >= 28, path, ": too short for a llama2.c header (", bytes.size(), " bytes)");
  int32_t h[7];
  std::memcpy(h, bytes.data(), sizeof h);
  const char* names[7] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"};
  for (int i = 0; i < 7; ++i)
    if (i != 5) CCC_CHECK(h[i] > 0 && h[i] < (1 << 20), path, ": implausible header field ", names[i], " = ", h[i]);
  CCC_CHECK(h[5] != 0 && std::abs(h[5]) < (1 << 24), path, ": implausible vocab_size ", h[5]);
  ModelConfig c;
  c.arch = "llama";
  c.d_model = h[0];
  c.d_mlp = h[1];
  c.n_layers = h[2];
  c.n_heads = h[3];
  c.n_kv_heads = h[4];
  c.tied_embed = h[5] > 0;
  c.d_vocab = c.d_vocab_out = std::abs(h[5]);
  c.n_ctx = h[6];
  CCC_CHECK(c.d_model % c.n_heads == 0, path, ": dim ", c.d_model, " is not a multiple of n_heads ", c.n_heads);
  c.d_head = c.d_model / c.n_heads;
  c.norm = NormKind::kRMSNorm;
  c.norm_eps = 1e-5;
  c.act = ActKind::kSilu;
  c.pos = PosKind::kRotary;
  c.rotary_dim = c.d_head;
  c.gated_mlp = true;
  c.attn_bias = c.mlp_bias = c.norm_bias = false;
  c.bos_id = 1;
  c.eos_id = 2;
  try {
    c.validate();
  } catch (const Error& e) {
    CCC_FAIL(path, ": ", e.what());
  }
  const int64_t d = c.d_model, L = c.n_layers, V = c.d_vocab, kv = c.n_kv_heads * c.d_head, hd = c.d_mlp;
  size_t pos = 28;
  auto next = [&](std::vector<int64_t> shape, const char* what) {
    int64_t n = 1;
    for (auto s : shape) n *= s;
    const size_t nbytes = static_cast<size_t>(n) * 4;
    CCC_CHECK(pos + nbytes <= bytes.size(), path, ": truncated in tensor ", what, " (needs ", nbytes, " bytes at offset ",
              pos, ", file has ", bytes.size(), ")");
    auto t = torch::empty(shape, torch::kFloat32);
    std::memcpy(t.data_ptr(), bytes.data() + pos, nbytes);
    pos += nbytes;
    return t;
  };
  auto emb = next({V, d}, "token_embedding_table");
  auto rms_att = next({L, d}, "rms_att_weight");
  auto wq = next({L, d, d}, "wq");
  auto wk = next({L, kv, d}, "wk");
  auto wv = next({L, kv, d}, "wv");
  auto wo = next({L, d, d}, "wo");
  auto rms_ffn = next({L, d}, "rms_ffn_weight");
  auto w1 = next({L, hd, d}, "w1");
  auto w2 = next({L, d, hd}, "w2");
  auto w3 = next({L, hd, d}, "w3");
  auto rms_final = next({d}, "rms_final_weight");
  next({c.n_ctx, c.d_head / 2}, "freq_cis_real");
  next({c.n_ctx, c.d_head / 2}, "freq_cis_imag");
  torch::Tensor wcls;
  if (!c.tied_embed) wcls = next({V, d}, "wcls");
  CCC_CHECK(pos == bytes.size(), path, ": ", bytes.size() - pos, " unexpected trailing bytes (header does not match the weights?)");

  // llama2.c rotates interleaved pairs (2i, 2i+1); permute each head's rows to the rotate-half order
  // (evens then odds) so pair i becomes (i, i + d_head/2). Scores q·k are unchanged by the permutation.
  std::vector<int64_t> perm;
  for (int64_t i = 0; i < c.d_head; i += 2) perm.push_back(i);
  for (int64_t i = 1; i < c.d_head; i += 2) perm.push_back(i);
  auto perm_t = torch::tensor(perm, torch::kInt64);
  auto permute_heads = [&](const torch::Tensor& w, int64_t heads) {
    return w.view({heads, c.d_head, d}).index_select(1, perm_t).reshape({heads * c.d_head, d});
  };
  std::map<std::string, torch::Tensor> sd;
  sd["embed.W_E"] = emb;
  for (int64_t l = 0; l < L; ++l) {
    const std::string b = "blocks." + std::to_string(l) + ".";
    sd[b + "ln1.w"] = rms_att[l];
    sd[b + "attn.W_qkv"] = torch::cat({permute_heads(wq[l], c.n_heads), permute_heads(wk[l], c.n_kv_heads), wv[l]}, 0);
    sd[b + "attn.W_O"] = wo[l];
    sd[b + "ln2.w"] = rms_ffn[l];
    sd[b + "mlp.W_gate"] = w1[l];
    sd[b + "mlp.W_in"] = w3[l];
    sd[b + "mlp.W_out"] = w2[l];
  }
  sd["ln_final.w"] = rms_final;
  if (!c.tied_embed) sd["unembed.W_U"] = wcls;
  check_weights(c, sd, path, path);
  LoadedModel m;
  m.config = c;
  m.model = Transformer(c);
  m.model->load_state_dict(sd, path);
  m.format = "llama2c";
  return m;
}

}  // namespace

namespace {

// The llama2.c tokenizer beside a checkpoint: tokenizer.bin, else the only other .bin there that reads as
// a llama2.c tokenizer with the model's vocabulary size (e.g. tok512.bin beside stories260K.bin).
std::string find_llama2c_tokenizer(const std::string& checkpoint, int64_t d_vocab) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path dir = fs::path(checkpoint).parent_path().empty() ? fs::path(".") : fs::path(checkpoint).parent_path();
  if (fs::is_regular_file(dir / "tokenizer.bin", ec)) return (dir / "tokenizer.bin").string();
  std::vector<std::string> found;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code e2;
    if (it->path().extension() != ".bin" || !it->is_regular_file(e2) || fs::equivalent(it->path(), checkpoint, e2)) continue;
    if (it->file_size(e2) > (64u << 20)) continue;  // tokenizers are small; checkpoints are not read twice
    try {
      load_tokenizer(it->path().string(), d_vocab);
      found.push_back(it->path().string());
    } catch (const Error&) {
    }
  }
  return found.size() == 1 ? found[0] : std::string();
}

}  // namespace

LoadedModel load_model(const std::string& path, const std::string& tokenizer_path) {
  std::error_code ec;
  CCC_CHECK(fs::exists(path, ec), "model: ", path, " does not exist");
  LoadedModel m;
  std::string default_tok;
  if (fs::is_directory(path, ec)) {
    const auto dir = fs::path(path);
    const auto cfg_path = (dir / "config.json").string();
    CCC_CHECK(fs::exists(cfg_path, ec), path, ": not a model directory (no config.json)");
    auto j = read_json(cfg_path);
    CCC_CHECK(j.is_object() && j.contains("model_type") && j["model_type"].is_string(), cfg_path,
              ": missing string field 'model_type'");
    std::string weights = (dir / "model.safetensors").string();
    if (!fs::exists(weights, ec)) weights = (dir / "model.safetensors.index.json").string();
    CCC_CHECK(fs::exists(weights, ec), path, ": no model.safetensors or model.safetensors.index.json");
    require_regular(cfg_path);
    require_regular(weights);
    auto sd = load_safetensors_float(weights);
    if (j["model_type"] == "ccc") {
      try {
        m.config = ModelConfig::from_json(j);
      } catch (const Error& e) {
        CCC_FAIL(cfg_path, ": ", e.what());
      }
      m.format = "ccc";
    } else {
      m.config = config_from_hf(j, cfg_path);
      sd = canonical_from_hf(m.config, std::move(sd), weights);
      m.format = "hf-" + m.config.arch;
    }
    check_weights(m.config, sd, cfg_path, weights);
    m.model = Transformer(m.config);
    m.model->load_state_dict(sd, weights);
    if (m.format != "ccc") default_tok = path;
  } else {
    require_regular(path);
    {
      std::ifstream f(path, std::ios::binary);
      char magic[4] = {};
      f.read(magic, 4);
      CCC_CHECK(!(f.gcount() == 4 && std::memcmp(magic, "GGUF", 4) == 0), path,
                ": a GGUF file; GGUF is not supported yet (use a Hugging Face directory or a llama2.c .bin)");
    }
    m = load_llama2c(path);
    default_tok = find_llama2c_tokenizer(path, m.config.d_vocab);
  }
  m.model->eval();
  m.source = path;
  const std::string tok = tokenizer_path.empty() ? default_tok : tokenizer_path;
  if (!tok.empty()) {
    m.tokenizer = load_tokenizer(tok, m.config.d_vocab);
  } else if (m.format == "ccc") {
    m.tokenizer = std::make_shared<ByteTokenizer>();
  } else {
    CCC_FAIL(path, ": no tokenizer found; pass --tokenizer");
  }
  CCC_CHECK(m.tokenizer->vocab_size() <= m.config.d_vocab, path, ": tokenizer has ", m.tokenizer->vocab_size(),
            " tokens but the model embeds only ", m.config.d_vocab);
  m.fingerprint = model_fingerprint(m.config, m.model, *m.tokenizer);
  return m;
}

void save_model(const std::string& dir, const ModelConfig& cfg, const Transformer& model, SaveDtype dtype,
                const nlohmann::json& extra_config) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  CCC_CHECK(fs::is_directory(dir, ec), "cannot create model directory ", dir);
  auto j = cfg.to_json();
  if (extra_config.is_object())
    for (auto it = extra_config.begin(); it != extra_config.end(); ++it) j[it.key()] = it.value();
  std::map<std::string, std::string> meta{{"format", "pt"}, {"ccc_config", cfg.to_json().dump()}};
  safetensors_save((fs::path(dir) / "model.safetensors").string(), model->state_dict(), meta, dtype);
  write_file_atomic((fs::path(dir) / "config.json").string(), j.dump(2) + "\n");
}

std::string model_fingerprint(const ModelConfig& cfg, const Transformer& model, const Tokenizer& tok) {
  Sha256 h;
  h.update(cfg.to_json().dump());
  for (const auto& [name, t] : model->state_dict()) {
    auto c = t.detach().to(torch::kFloat32).contiguous();
    h.update(name);
    for (auto s : c.sizes()) h.update(&s, sizeof s);
    h.update(c.data_ptr(), static_cast<size_t>(c.numel()) * sizeof(float));
  }
  h.update(tok.serialize());
  return h.hex();
}

}  // namespace ccc::model
