#include "model/core/config.h"

#include "model/base/error.h"
#include "model/core/json_fields.h"

namespace ccc::model {

std::string to_string(NormKind k) { return k == NormKind::kLayerNorm ? "layernorm" : "rmsnorm"; }
std::string to_string(ActKind k) {
  switch (k) {
    case ActKind::kGeluTanh: return "gelu_tanh";
    case ActKind::kGelu: return "gelu";
    case ActKind::kSilu: return "silu";
    case ActKind::kRelu: return "relu";
  }
  return "?";
}
std::string to_string(PosKind k) {
  switch (k) {
    case PosKind::kLearned: return "learned";
    case PosKind::kRotary: return "rotary";
    case PosKind::kNone: return "none";
  }
  return "?";
}

namespace {
NormKind parse_norm(const std::string& s) {
  if (s == "layernorm") return NormKind::kLayerNorm;
  if (s == "rmsnorm") return NormKind::kRMSNorm;
  CCC_FAIL("unknown norm '", s, "' (expected layernorm or rmsnorm)");
}
ActKind parse_act(const std::string& s) {
  if (s == "gelu_tanh") return ActKind::kGeluTanh;
  if (s == "gelu") return ActKind::kGelu;
  if (s == "silu") return ActKind::kSilu;
  if (s == "relu") return ActKind::kRelu;
  CCC_FAIL("unknown activation '", s, "' (expected gelu_tanh, gelu, silu or relu)");
}
PosKind parse_pos(const std::string& s) {
  if (s == "learned") return PosKind::kLearned;
  if (s == "rotary") return PosKind::kRotary;
  if (s == "none") return PosKind::kNone;
  CCC_FAIL("unknown positional scheme '", s, "' (expected learned, rotary or none)");
}
}  // namespace

void ModelConfig::validate() const {
  auto positive = [](const char* name, int64_t v) { CCC_CHECK(v > 0, "config: ", name, " must be > 0, got ", v); };
  positive("d_vocab", d_vocab);
  positive("d_vocab_out", d_vocab_out);
  positive("d_model", d_model);
  positive("n_layers", n_layers);
  positive("n_heads", n_heads);
  positive("n_kv_heads", n_kv_heads);
  positive("d_head", d_head);
  positive("n_ctx", n_ctx);
  // hard caps (well above any real checkpoint) so that no size computed from a config can overflow or
  // allocate absurd amounts before the weights are checked against it
  auto capped = [](const char* name, int64_t v, int64_t cap) {
    CCC_CHECK(v <= cap, "config: ", name, " = ", v, " exceeds the supported maximum ", cap);
  };
  capped("d_vocab", d_vocab, int64_t{1} << 24);
  capped("d_vocab_out", d_vocab_out, int64_t{1} << 24);
  capped("d_model", d_model, int64_t{1} << 16);
  capped("n_layers", n_layers, int64_t{1} << 10);
  capped("n_heads", n_heads, int64_t{1} << 10);
  capped("n_kv_heads", n_kv_heads, int64_t{1} << 10);
  capped("d_head", d_head, int64_t{1} << 12);
  capped("d_mlp", d_mlp, int64_t{1} << 18);
  capped("n_ctx", n_ctx, int64_t{1} << 20);
  CCC_CHECK(d_vocab_out <= d_vocab || !tied_embed, "config: tied embeddings need d_vocab_out (", d_vocab_out,
            ") <= d_vocab (", d_vocab, ")");
  CCC_CHECK(n_heads % n_kv_heads == 0, "config: n_heads (", n_heads, ") must be a multiple of n_kv_heads (",
            n_kv_heads, ")");
  CCC_CHECK(attn_only || d_mlp > 0, "config: d_mlp must be > 0 unless attn_only");
  CCC_CHECK(rotary_dim >= 0 && rotary_dim <= d_head && rotary_dim % 2 == 0,
            "config: rotary_dim must be even and in [0, d_head=", d_head, "], got ", rotary_dim);
  CCC_CHECK(pos != PosKind::kRotary || rotary_dim > 0, "config: rotary positions need rotary_dim > 0");
  CCC_CHECK(rope_theta > 0, "config: rope_theta must be > 0");
  CCC_CHECK(norm_eps > 0 && norm_eps < 1, "config: norm_eps must be in (0, 1), got ", norm_eps);
  CCC_CHECK(bos_id >= 0 && bos_id < d_vocab, "config: bos_id ", bos_id, " outside [0, d_vocab=", d_vocab, ")");
  CCC_CHECK(eos_id >= -1 && eos_id < d_vocab, "config: eos_id ", eos_id, " outside [-1, d_vocab)");
  CCC_CHECK(!gated_mlp || !attn_only, "config: gated_mlp and attn_only are exclusive");
  CCC_CHECK(!parallel_attn || !attn_only, "config: parallel_attn needs an MLP");
}

nlohmann::json ModelConfig::to_json() const {
  return nlohmann::json{{"model_type", "ccc"},
                        {"arch", arch},
                        {"d_vocab", d_vocab},
                        {"d_vocab_out", d_vocab_out},
                        {"d_model", d_model},
                        {"n_layers", n_layers},
                        {"n_heads", n_heads},
                        {"n_kv_heads", n_kv_heads},
                        {"d_head", d_head},
                        {"d_mlp", d_mlp},
                        {"n_ctx", n_ctx},
                        {"norm", to_string(norm)},
                        {"norm_eps", norm_eps},
                        {"act", to_string(act)},
                        {"pos", to_string(pos)},
                        {"rotary_dim", rotary_dim},
                        {"rope_theta", rope_theta},
                        {"parallel_attn", parallel_attn},
                        {"gated_mlp", gated_mlp},
                        {"attn_only", attn_only},
                        {"tied_embed", tied_embed},
                        {"attn_bias", attn_bias},
                        {"mlp_bias", mlp_bias},
                        {"norm_bias", norm_bias},
                        {"bos_id", bos_id},
                        {"eos_id", eos_id}};
}

ModelConfig tiny_byte_config(int64_t n_layers, int64_t n_ctx, bool learned, bool attn_only) {
  ModelConfig c;  // defaults: arch ccc, 257 input ids (bytes + BOS 256), 256 outputs
  c.d_model = 16;
  c.n_layers = n_layers;
  c.n_heads = c.n_kv_heads = 2;
  c.d_head = 8;
  c.attn_only = attn_only;
  c.d_mlp = attn_only ? 0 : 32;
  c.n_ctx = n_ctx;
  c.tied_embed = true;
  if (!learned) {
    c.pos = PosKind::kRotary;
    c.rotary_dim = c.d_head;
  }
  return c;
}

ModelConfig ModelConfig::from_json(const nlohmann::json& j) {
  CCC_CHECK(j.is_object(), "config: expected a JSON object");
  const JsonFields f{j, "config"};
  ModelConfig c;
  c.arch = f.string("arch");
  c.d_vocab = f.integer("d_vocab");
  c.d_vocab_out = f.integer("d_vocab_out");
  c.d_model = f.integer("d_model");
  c.n_layers = f.integer("n_layers");
  c.n_heads = f.integer("n_heads");
  c.n_kv_heads = f.integer("n_kv_heads");
  c.d_head = f.integer("d_head");
  c.d_mlp = f.integer("d_mlp");
  c.n_ctx = f.integer("n_ctx");
  c.norm = parse_norm(f.string("norm"));
  c.norm_eps = f.number("norm_eps");
  c.act = parse_act(f.string("act"));
  c.pos = parse_pos(f.string("pos"));
  c.rotary_dim = f.integer("rotary_dim");
  c.rope_theta = f.number("rope_theta");
  c.parallel_attn = f.boolean("parallel_attn");
  c.gated_mlp = f.boolean("gated_mlp");
  c.attn_only = f.boolean("attn_only");
  c.tied_embed = f.boolean("tied_embed");
  c.attn_bias = f.boolean("attn_bias");
  c.mlp_bias = f.boolean("mlp_bias");
  c.norm_bias = f.boolean("norm_bias");
  c.bos_id = f.integer("bos_id");
  c.eos_id = f.integer("eos_id");
  c.validate();
  return c;
}

int64_t ModelConfig::n_matmul_params() const {
  int64_t d_qkv = (n_heads + 2 * n_kv_heads) * d_head;
  int64_t attn = d_qkv * d_model + n_heads * d_head * d_model;
  int64_t mlp = attn_only ? 0 : (gated_mlp ? 3 : 2) * d_model * d_mlp;
  return n_layers * (attn + mlp) + d_vocab_out * d_model;
}

int64_t ModelConfig::n_params() const {
  int64_t d_qkv = (n_heads + 2 * n_kv_heads) * d_head;
  int64_t norm_p = (norm == NormKind::kLayerNorm && norm_bias) ? 2 * d_model : d_model;
  int64_t per_layer = d_qkv * d_model + n_heads * d_head * d_model + norm_p;
  if (attn_bias) per_layer += d_qkv + d_model;
  if (!attn_only) {
    per_layer += (gated_mlp ? 3 : 2) * d_model * d_mlp + norm_p;
    if (mlp_bias) per_layer += d_mlp * (gated_mlp ? 2 : 1) + d_model;
  }
  int64_t total = n_layers * per_layer + d_vocab * d_model + norm_p;
  if (pos == PosKind::kLearned) total += n_ctx * d_model;
  if (!tied_embed) total += d_vocab_out * d_model;
  return total;
}

}  // namespace ccc::model
