#!/usr/bin/env python3
"""Independent reference for ccc's parity tests.

Writes a tiny random checkpoint in Hugging Face layout (config.json + safetensors, written by the
minimal writer below, not by ccc) and the reference logits of a fixed token batch, computed with plain
PyTorch following the Hugging Face modeling code (GPT2 Conv1D, GPT-NeoX fused per-head qkv with
partial rotary and parallel residual, LLaMA RMSNorm/SwiGLU/GQA/rotate-half rotary).

usage: ref_forward.py ARCH OUT_DIR SEED
"""
import json
import math
import os
import struct
import sys

import torch

torch.set_grad_enabled(False)


def save_safetensors(path, tensors, dtype):
    """tensors: name -> float32 tensor; dtype: 'F32' | 'F16' | 'BF16'."""
    conv = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}[dtype]
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].to(conv).contiguous()
        raw = t.view(torch.int16).numpy().tobytes() if dtype != "F32" else t.numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def rounded(t, dtype):
    conv = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}[dtype]
    return t.to(conv).to(torch.float32)


def layer_norm(x, w, b, eps):
    return torch.nn.functional.layer_norm(x, (x.shape[-1],), w, b, eps)


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rope(x, dim, base):
    # x [b, heads, p, d_head]; rotates the first `dim` dims (HF GPT-NeoX / LLaMA convention)
    p = x.shape[2]
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    freqs = torch.outer(torch.arange(p, dtype=torch.float64), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos().float(), emb.sin().float()
    xr, xp = x[..., :dim], x[..., dim:]
    return torch.cat((xr * cos + rotate_half(xr) * sin, xp), dim=-1)


def attend(q, k, v):
    # q [b, H, p, dh], k/v [b, H, p, dh]; causal softmax attention
    p = q.shape[2]
    s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    mask = torch.triu(torch.ones(p, p, dtype=torch.bool), 1)
    s = s.masked_fill(mask, float("-inf"))
    return torch.softmax(s, -1) @ v


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def build(arch, seed):
    g = torch.Generator().manual_seed(seed)
    rnd = lambda *s: torch.randn(*s, generator=g) * 0.2
    V, d, L, H, P = 97, 32, 2, 4, 64
    dh = d // H
    W = {}
    if arch == "gpt2":
        cfg = {"model_type": "gpt2", "vocab_size": V, "n_embd": d, "n_layer": L, "n_head": H, "n_positions": P,
               "n_inner": None, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
               "bos_token_id": V - 1, "eos_token_id": V - 1}
        W["wte.weight"], W["wpe.weight"] = rnd(V, d), rnd(P, d)
        for l in range(L):
            h = f"h.{l}."
            W[h + "ln_1.weight"], W[h + "ln_1.bias"] = 1 + rnd(d), rnd(d)
            W[h + "attn.c_attn.weight"], W[h + "attn.c_attn.bias"] = rnd(d, 3 * d), rnd(3 * d)
            W[h + "attn.c_proj.weight"], W[h + "attn.c_proj.bias"] = rnd(d, d), rnd(d)
            W[h + "ln_2.weight"], W[h + "ln_2.bias"] = 1 + rnd(d), rnd(d)
            W[h + "mlp.c_fc.weight"], W[h + "mlp.c_fc.bias"] = rnd(d, 4 * d), rnd(4 * d)
            W[h + "mlp.c_proj.weight"], W[h + "mlp.c_proj.bias"] = rnd(4 * d, d), rnd(d)
        W["ln_f.weight"], W["ln_f.bias"] = 1 + rnd(d), rnd(d)
        return cfg, W, "F32", ""
    if arch == "gpt_neox":
        cfg = {"model_type": "gpt_neox", "vocab_size": V, "hidden_size": d, "num_hidden_layers": L,
               "num_attention_heads": H, "intermediate_size": 3 * d, "max_position_embeddings": P,
               "rotary_pct": 0.5, "rotary_emb_base": 10000, "use_parallel_residual": True,
               "hidden_act": "gelu", "layer_norm_eps": 1e-5, "tie_word_embeddings": False}
        W["embed_in.weight"] = rnd(V, d)
        for l in range(L):
            h = f"layers.{l}."
            W[h + "input_layernorm.weight"], W[h + "input_layernorm.bias"] = 1 + rnd(d), rnd(d)
            W[h + "post_attention_layernorm.weight"], W[h + "post_attention_layernorm.bias"] = 1 + rnd(d), rnd(d)
            W[h + "attention.query_key_value.weight"], W[h + "attention.query_key_value.bias"] = rnd(3 * d, d), rnd(3 * d)
            W[h + "attention.dense.weight"], W[h + "attention.dense.bias"] = rnd(d, d), rnd(d)
            W[h + "mlp.dense_h_to_4h.weight"], W[h + "mlp.dense_h_to_4h.bias"] = rnd(3 * d, d), rnd(3 * d)
            W[h + "mlp.dense_4h_to_h.weight"], W[h + "mlp.dense_4h_to_h.bias"] = rnd(d, 3 * d), rnd(d)
        W["final_layer_norm.weight"], W["final_layer_norm.bias"] = 1 + rnd(d), rnd(d)
        W["embed_out.weight"] = rnd(V, d)
        return cfg, W, "F16", "gpt_neox."
    if arch == "llama":
        K = 2
        cfg = {"model_type": "llama", "vocab_size": V, "hidden_size": d, "num_hidden_layers": L,
               "num_attention_heads": H, "num_key_value_heads": K, "intermediate_size": 3 * d,
               "max_position_embeddings": P, "rms_norm_eps": 1e-6, "rope_theta": 500.0,
               "hidden_act": "silu", "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2}
        W["embed_tokens.weight"] = rnd(V, d)
        for l in range(L):
            h = f"layers.{l}."
            W[h + "input_layernorm.weight"] = 1 + rnd(d)
            W[h + "post_attention_layernorm.weight"] = 1 + rnd(d)
            W[h + "self_attn.q_proj.weight"] = rnd(H * dh, d)
            W[h + "self_attn.k_proj.weight"] = rnd(K * dh, d)
            W[h + "self_attn.v_proj.weight"] = rnd(K * dh, d)
            W[h + "self_attn.o_proj.weight"] = rnd(d, H * dh)
            W[h + "mlp.gate_proj.weight"] = rnd(3 * d, d)
            W[h + "mlp.up_proj.weight"] = rnd(3 * d, d)
            W[h + "mlp.down_proj.weight"] = rnd(d, 3 * d)
        W["norm.weight"] = 1 + rnd(d)
        W["lm_head.weight"] = rnd(V, d)
        return cfg, W, "BF16", "model."
    raise SystemExit(f"unknown arch {arch}")


def forward(arch, cfg, W, ids):
    b, p = ids.shape
    if arch == "gpt2":
        d, H = cfg["n_embd"], cfg["n_head"]
        dh = d // H
        x = W["wte.weight"][ids] + W["wpe.weight"][:p]
        for l in range(cfg["n_layer"]):
            h = f"h.{l}."
            a = layer_norm(x, W[h + "ln_1.weight"], W[h + "ln_1.bias"], 1e-5)
            qkv = a @ W[h + "attn.c_attn.weight"] + W[h + "attn.c_attn.bias"]
            q, k, v = qkv.split(d, dim=-1)
            sh = lambda t: t.view(b, p, H, dh).transpose(1, 2)
            z = attend(sh(q), sh(k), sh(v)).transpose(1, 2).reshape(b, p, d)
            x = x + z @ W[h + "attn.c_proj.weight"] + W[h + "attn.c_proj.bias"]
            m = layer_norm(x, W[h + "ln_2.weight"], W[h + "ln_2.bias"], 1e-5)
            m = gelu_new(m @ W[h + "mlp.c_fc.weight"] + W[h + "mlp.c_fc.bias"])
            x = x + m @ W[h + "mlp.c_proj.weight"] + W[h + "mlp.c_proj.bias"]
        x = layer_norm(x, W["ln_f.weight"], W["ln_f.bias"], 1e-5)
        return x @ W["wte.weight"].T
    if arch == "gpt_neox":
        d, H = cfg["hidden_size"], cfg["num_attention_heads"]
        dh = d // H
        rot = int(dh * cfg["rotary_pct"])
        x = W["embed_in.weight"][ids]
        for l in range(cfg["num_hidden_layers"]):
            h = f"layers.{l}."
            a = layer_norm(x, W[h + "input_layernorm.weight"], W[h + "input_layernorm.bias"], 1e-5)
            qkv = a @ W[h + "attention.query_key_value.weight"].T + W[h + "attention.query_key_value.bias"]
            qkv = qkv.view(b, p, H, 3 * dh).permute(0, 2, 1, 3)  # per head [q | k | v]
            q, k, v = qkv[..., :dh], qkv[..., dh:2 * dh], qkv[..., 2 * dh:]
            q, k = rope(q, rot, cfg["rotary_emb_base"]), rope(k, rot, cfg["rotary_emb_base"])
            z = attend(q, k, v).permute(0, 2, 1, 3).reshape(b, p, d)
            attn = z @ W[h + "attention.dense.weight"].T + W[h + "attention.dense.bias"]
            m = layer_norm(x, W[h + "post_attention_layernorm.weight"], W[h + "post_attention_layernorm.bias"], 1e-5)
            m = torch.nn.functional.gelu(m @ W[h + "mlp.dense_h_to_4h.weight"].T + W[h + "mlp.dense_h_to_4h.bias"])
            m = m @ W[h + "mlp.dense_4h_to_h.weight"].T + W[h + "mlp.dense_4h_to_h.bias"]
            x = m + attn + x
        x = layer_norm(x, W["final_layer_norm.weight"], W["final_layer_norm.bias"], 1e-5)
        return x @ W["embed_out.weight"].T
    if arch == "llama":
        d, H, K = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
        dh = d // H
        x = W["embed_tokens.weight"][ids]
        for l in range(cfg["num_hidden_layers"]):
            h = f"layers.{l}."
            a = rms_norm(x, W[h + "input_layernorm.weight"], cfg["rms_norm_eps"])
            q = (a @ W[h + "self_attn.q_proj.weight"].T).view(b, p, H, dh).transpose(1, 2)
            k = (a @ W[h + "self_attn.k_proj.weight"].T).view(b, p, K, dh).transpose(1, 2)
            v = (a @ W[h + "self_attn.v_proj.weight"].T).view(b, p, K, dh).transpose(1, 2)
            q, k = rope(q, dh, cfg["rope_theta"]), rope(k, dh, cfg["rope_theta"])
            k, v = k.repeat_interleave(H // K, dim=1), v.repeat_interleave(H // K, dim=1)
            z = attend(q, k, v).transpose(1, 2).reshape(b, p, d)
            x = x + z @ W[h + "self_attn.o_proj.weight"].T
            m = rms_norm(x, W[h + "post_attention_layernorm.weight"], cfg["rms_norm_eps"])
            m = torch.nn.functional.silu(m @ W[h + "mlp.gate_proj.weight"].T) * (m @ W[h + "mlp.up_proj.weight"].T)
            x = x + m @ W[h + "mlp.down_proj.weight"].T
        x = rms_norm(x, W["norm.weight"], cfg["rms_norm_eps"])
        return x @ W["lm_head.weight"].T


def main():
    arch, out, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    os.makedirs(out, exist_ok=True)
    cfg, W, dtype, prefix = build(arch, seed)
    W = {k: rounded(v, dtype) for k, v in W.items()}  # the reference sees exactly the stored values
    stored = {prefix + k: v for k, v in W.items()}
    if arch == "gpt2":  # legacy buffers a real checkpoint carries; the loader must ignore them
        for l in range(cfg["n_layer"]):
            stored[f"h.{l}.attn.bias"] = torch.tril(torch.ones(64, 64)).view(1, 1, 64, 64)
    if arch == "gpt_neox":
        for l in range(cfg["num_hidden_layers"]):
            stored[f"gpt_neox.layers.{l}.attention.rotary_emb.inv_freq"] = torch.ones(2)
    if arch == "llama":  # two shards and an index, as large checkpoints are stored
        names = sorted(stored)
        half = len(names) // 2
        shards = {"model-00001-of-00002.safetensors": names[:half], "model-00002-of-00002.safetensors": names[half:]}
        for fn, keys in shards.items():
            save_safetensors(os.path.join(out, fn), {k: stored[k] for k in keys}, dtype)
        index = {"metadata": {}, "weight_map": {k: fn for fn, keys in shards.items() for k in keys}}
        with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
            json.dump(index, f)
    else:
        save_safetensors(os.path.join(out, "model.safetensors"), stored, dtype)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f)
    g = torch.Generator().manual_seed(seed + 1)
    ids = torch.randint(0, cfg["vocab_size"], (3, 40), generator=g)
    logits = forward(arch, cfg, W, ids)
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump({"tokens": ids.tolist(), "logits": logits.flatten().tolist(), "shape": list(logits.shape)}, f)


if __name__ == "__main__":
    main()
