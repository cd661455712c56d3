"""A small LLaMA-family decoder written plainly, with Unified Layer Skipping.

The maths follows Hugging Face's LlamaForCausalLM (RMSNorm computed in float32,
rotate_half RoPE with rope_theta, grouped-query attention, SwiGLU MLP, optional
tied head), so checkpoints saved by save_checkpoint load in transformers and in
strata's exporter. Works with PyTorch 1.13 (Debian) and current releases.
"""

import json
import math
import os
import struct
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# The fixed prompt template of the default model. BOS is added by the tokenizer's
# post-processor; the response is " " + Spanish text followed by EOS.
PROMPT_TEMPLATE = "English: {en}\nSpanish:"


@dataclass
class Config:
    """Model hyper-parameters, named as in a Hugging Face LLaMA config.json."""

    vocab_size: int = 4096
    hidden_size: int = 256
    intermediate_size: int = 704
    num_hidden_layers: int = 8
    num_attention_heads: int = 4
    num_key_value_heads: int = 4
    max_position_embeddings: int = 256
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    tie_word_embeddings: bool = False
    bos_token_id: int = 1
    eos_token_id: int = 2
    uls_ratios: list = field(default_factory=list)
    # Read from other checkpoints' config.json (Qwen2 has q/k/v biases; head_dim
    # may differ from hidden/heads; rope_scaling is linear or llama3).
    attention_bias: bool = False
    rope_scaling: dict = None
    explicit_head_dim: int = 0

    @property
    def head_dim(self):
        return self.explicit_head_dim or self.hidden_size // self.num_attention_heads

    def to_hf(self):
        """The config.json dictionary (LlamaForCausalLM layout, plus "uls" when fine-tuned)."""
        d = asdict(self)
        ratios = d.pop("uls_ratios")
        for k in ("attention_bias", "rope_scaling", "explicit_head_dim"):
            d.pop(k)
        d.update(
            {
                "architectures": ["LlamaForCausalLM"],
                "model_type": "llama",
                "hidden_act": "silu",
                "head_dim": self.head_dim,
                "attention_bias": False,
                "mlp_bias": False,
                "torch_dtype": "float16",
                "prompt_template": PROMPT_TEMPLATE,
            }
        )
        if ratios:
            d["uls"] = {"ratios": ratios, "default_schedule": "uls:%d" % ratios[0]}
        return d

    @classmethod
    def from_hf(cls, d):
        """Reads a LLaMA, Mistral or Qwen2 config.json with transformers' defaults
        for absent keys (the same defaults strata's exporter applies)."""
        keys = {f for f in cls.__dataclass_fields__ if f not in ("uls_ratios", "explicit_head_dim", "bos_token_id", "eos_token_id")}
        cfg = cls(**{k: v for k, v in d.items() if k in keys})
        model_type = d.get("model_type", "llama")
        cfg.num_key_value_heads = d.get("num_key_value_heads") or cfg.num_attention_heads
        cfg.rms_norm_eps = d.get("rms_norm_eps", 1e-6)
        cfg.rope_theta = d.get("rope_theta", 10000.0)
        cfg.tie_word_embeddings = d.get("tie_word_embeddings", False)
        cfg.attention_bias = True if model_type == "qwen2" else bool(d.get("attention_bias", False))
        if d.get("hidden_act", "silu") != "silu":
            raise ValueError("hidden_act %r is not supported (want silu)" % d["hidden_act"])
        if d.get("mlp_bias"):
            raise ValueError("mlp_bias = true is not supported")
        cfg.explicit_head_dim = d.get("head_dim") or 0
        cfg.bos_token_id = _first_id(d.get("bos_token_id"), -1)
        cfg.eos_token_id = _first_id(d.get("eos_token_id"), -1)
        cfg.uls_ratios = list((d.get("uls") or {}).get("ratios", []))
        return cfg


def _first_id(v, default):
    if isinstance(v, list):
        return v[0] if v else default
    return default if v is None else v


def uls_schedule(num_layers, ratio):
    """Kept layers for an integer speedup ratio, exactly as the paper's code
    (docs/design.md, "The schedule"): n = L // r layers, interval = L // (n - 1), keep 0 and L-1 and
    every idx in 1..L-2 with idx % interval == 0 while fewer than n are kept."""
    if int(ratio) != ratio or ratio < 1:
        raise ValueError("uls ratio must be a positive integer, got %r" % (ratio,))
    ratio = int(ratio)
    if ratio == 1:
        return list(range(num_layers))
    n = num_layers // ratio
    if n < 2:
        raise ValueError("ratio %d keeps fewer than 2 of %d layers" % (ratio, num_layers))
    interval = num_layers // (n - 1)
    kept = [0, num_layers - 1]
    for idx in range(1, num_layers - 1):
        if idx % interval == 0 and len(kept) < n:
            kept.append(idx)
    return sorted(kept)


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rope_inv_freq(head_dim, theta, scaling=None, device=None):
    """RoPE inverse frequencies with Hugging Face's rope_scaling ("linear" or "llama3")."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / head_dim))
    if not scaling:
        return inv_freq
    kind = scaling.get("rope_type") or scaling.get("type")
    if kind == "default":
        return inv_freq
    factor = float(scaling["factor"])
    if kind == "linear":
        return inv_freq / factor
    if kind == "llama3":
        low, high = float(scaling["low_freq_factor"]), float(scaling["high_freq_factor"])
        old = float(scaling["original_max_position_embeddings"])
        wavelen = 2 * math.pi / inv_freq
        scaled = torch.where(wavelen > old / low, inv_freq / factor, inv_freq)
        smooth = (old / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < old / high) & ~(wavelen > old / low)
        return torch.where(medium, smoothed, scaled)
    raise ValueError("rope_scaling type %r is not supported (want linear or llama3)" % kind)


def rope_cos_sin(positions, head_dim, theta, dtype, scaling=None):
    """cos/sin of shape [..., S, head_dim] for integer positions [..., S]."""
    inv_freq = rope_inv_freq(head_dim, theta, scaling, positions.device)
    freqs = positions.float()[..., None] * inv_freq
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        hd = cfg.head_dim
        bias = cfg.attention_bias
        self.q_proj = nn.Linear(cfg.hidden_size, cfg.num_attention_heads * hd, bias=bias)
        self.k_proj = nn.Linear(cfg.hidden_size, cfg.num_key_value_heads * hd, bias=bias)
        self.v_proj = nn.Linear(cfg.hidden_size, cfg.num_key_value_heads * hd, bias=bias)
        self.o_proj = nn.Linear(cfg.num_attention_heads * hd, cfg.hidden_size, bias=False)

    def forward(self, x, cos, sin, mask, past=None):
        """x [B,S,D]; cos/sin [B,S,hd]; mask additive [B,1,S,T] or None;
        past (k, v) [B,Hkv,P,hd] or None. Returns output and the new (k, v)."""
        cfg = self.cfg
        b, s, _ = x.shape
        hd = cfg.head_dim
        q = self.q_proj(x).view(b, s, cfg.num_attention_heads, hd).transpose(1, 2)
        k = self.k_proj(x).view(b, s, cfg.num_key_value_heads, hd).transpose(1, 2)
        v = self.v_proj(x).view(b, s, cfg.num_key_value_heads, hd).transpose(1, 2)
        cos, sin = cos[:, None], sin[:, None]
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if past is not None:
            k = torch.cat((past[0], k), dim=2)
            v = torch.cat((past[1], v), dim=2)
        present = (k, v)
        groups = cfg.num_attention_heads // cfg.num_key_value_heads
        if groups > 1:
            k = k.repeat_interleave(groups, dim=1)
            v = v.repeat_interleave(groups, dim=1)
        scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(hd)
        if mask is not None:
            scores = scores + mask
        probs = F.softmax(scores.float(), dim=-1).to(q.dtype)
        out = torch.matmul(probs, v).transpose(1, 2).reshape(b, s, -1)
        return self.o_proj(out), present


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.self_attn = Attention(cfg)
        self.mlp = MLP(cfg)
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(self, x, cos, sin, mask, past=None):
        a, present = self.self_attn(self.input_layernorm(x), cos, sin, mask, past)
        h = x + a
        return h + self.mlp(self.post_attention_layernorm(h)), present


class LlamaModel(nn.Module):
    """Holds the decoder stack under HF parameter names (model.*, lm_head)."""

    def __init__(self, cfg):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList([DecoderLayer(cfg) for _ in range(cfg.num_hidden_layers)])
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


class LlamaForCausalLM(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.model = LlamaModel(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        if cfg.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        self.apply(self._init)

    @property
    def word_embeddings(self):
        return self.model.embed_tokens

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)

    def forward(self, ids, skip_from=None, kept=None, select=None):
        """Logits [B,S,V] for token ids [B,S] (right padding is harmless: attention
        is causal and padded positions are never targets).

        With kept (a list of layer indices) and skip_from (a [B] tensor of the first
        response position of each row), this is the ULS training pass: at a skipped
        layer, prompt positions (< skip_from) run the layer and response positions keep
        their hidden state; at a kept layer every position runs, attending causally to
        everything at that layer. This equals inference: full-depth prefill of the
        prompt, then each response token through the kept layers over the prompt's
        full-depth KV and the earlier response tokens' KV of that layer.

        select (a [B,S] bool tensor) returns logits [N,V] for the selected positions
        only, which saves the head's work on prompt positions during training.
        """
        b, s = ids.shape
        pos = torch.arange(s, device=ids.device).expand(b, s)
        cos, sin = rope_cos_sin(pos, self.cfg.head_dim, self.cfg.rope_theta, self.model.embed_tokens.weight.dtype, self.cfg.rope_scaling)
        mask = torch.full((s, s), float("-inf"), device=ids.device).triu(1)[None, None]
        h = self.model.embed_tokens(ids)
        skip = None
        if kept is not None:
            if skip_from is None:
                raise ValueError("kept layers need skip_from (first response position per row)")
            skip = (pos >= skip_from[:, None])[..., None]  # [B,S,1]
            kept = set(kept)
        for i, layer in enumerate(self.model.layers):
            out, _ = layer(h, cos, sin, mask)
            h = out if skip is None or i in kept else torch.where(skip, h, out)
        if select is not None:
            h = h[select]
        return self.lm_head(self.model.norm(h))

    @torch.no_grad()
    def generate(self, prompt, max_new_tokens, kept=None):
        """Greedy decoding of one prompt (a list of ids) with a KV cache, the way the
        engine runs ULS: full-depth prefill, then each new token through the kept
        layers only (all layers when kept is None). Stops at EOS; returns new ids."""
        cfg = self.cfg
        dtype = self.model.embed_tokens.weight.dtype
        dev = self.model.embed_tokens.weight.device
        ids = torch.tensor([prompt], device=dev)
        n = ids.shape[1]
        cos, sin = rope_cos_sin(torch.arange(n, device=dev)[None], cfg.head_dim, cfg.rope_theta, dtype, cfg.rope_scaling)
        mask = torch.full((n, n), float("-inf"), device=dev).triu(1)[None, None]
        h = self.model.embed_tokens(ids)
        cache = []
        for layer in self.model.layers:
            h, kv = layer(h, cos, sin, mask)
            cache.append(kv)
        layers = range(cfg.num_hidden_layers) if kept is None else sorted(kept)
        out = []
        tok = int(self.lm_head(self.model.norm(h[:, -1])).argmax(-1))
        while tok != cfg.eos_token_id and len(out) < max_new_tokens:
            out.append(tok)
            p = n + len(out) - 1
            cos, sin = rope_cos_sin(torch.tensor([[p]], device=dev), cfg.head_dim, cfg.rope_theta, dtype, cfg.rope_scaling)
            h = self.model.embed_tokens(torch.tensor([[tok]], device=dev))
            for i in layers:
                h, cache[i] = self.model.layers[i](h, cos, sin, None, cache[i])
            tok = int(self.lm_head(self.model.norm(h[:, -1])).argmax(-1))
        return out


# ---- BLOOM (Hugging Face BloomForCausalLM): ALiBi instead of RoPE, LayerNorm with
# bias, fused per-head query_key_value, GELU (tanh) MLP, embedding LayerNorm, tied head.


@dataclass
class BloomConfig:
    """BLOOM hyper-parameters as in its config.json (n_layer, n_head, hidden_size, ...)."""

    vocab_size: int = 250880
    hidden_size: int = 64
    n_layer: int = 2
    n_head: int = 8
    layer_norm_epsilon: float = 1e-5
    apply_residual_connection_post_layernorm: bool = False
    bos_token_id: int = 1
    eos_token_id: int = 2
    tie_word_embeddings: bool = True

    @property
    def num_hidden_layers(self):
        return self.n_layer

    @property
    def head_dim(self):
        return self.hidden_size // self.n_head

    @classmethod
    def from_hf(cls, d):
        return cls(
            vocab_size=d["vocab_size"],
            hidden_size=d.get("hidden_size", d.get("n_embed", 64)),
            n_layer=d.get("n_layer", d.get("num_hidden_layers", 2)),
            n_head=d.get("n_head", d.get("num_attention_heads", 8)),
            layer_norm_epsilon=d.get("layer_norm_epsilon", 1e-5),
            apply_residual_connection_post_layernorm=bool(d.get("apply_residual_connection_post_layernorm", False)),
            bos_token_id=_first_id(d.get("bos_token_id"), -1),
            eos_token_id=_first_id(d.get("eos_token_id"), -1),
            tie_word_embeddings=d.get("tie_word_embeddings", True),
        )


def alibi_slopes(n_head):
    """Per-head ALiBi slopes exactly as transformers' build_alibi_tensor."""
    closest = 2 ** math.floor(math.log2(n_head))
    base = 2.0 ** (-(2.0 ** -(math.log2(closest) - 3)))
    slopes = [base**p for p in range(1, closest + 1)]
    if closest != n_head:
        extra = 2.0 ** (-(2.0 ** -(math.log2(2 * closest) - 3)))
        remaining = min(closest, n_head - closest)
        slopes += [extra**p for p in range(1, 1 + 2 * remaining, 2)]
    return torch.tensor(slopes, dtype=torch.float32)


class BloomAttention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.query_key_value = nn.Linear(cfg.hidden_size, 3 * cfg.hidden_size)
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.register_buffer("slopes", alibi_slopes(cfg.n_head), persistent=False)

    def forward(self, x, mask, past=None):
        """x [B,S,D]; mask additive [B,1,S,T] or None; past (k, v) [B,H,P,hd] or None.
        ALiBi adds slope·key_position to the scores (softmax ignores the per-query
        constant, so this equals the relative form and transformers' BLOOM)."""
        cfg = self.cfg
        b, s, _ = x.shape
        hd = cfg.head_dim
        qkv = self.query_key_value(x).view(b, s, cfg.n_head, 3, hd)
        q, k, v = (qkv[..., i, :].transpose(1, 2) for i in range(3))
        if past is not None:
            k = torch.cat((past[0], k), dim=2)
            v = torch.cat((past[1], v), dim=2)
        present = (k, v)
        t = k.shape[2]
        key_pos = torch.arange(t, device=x.device, dtype=torch.float32)
        scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(hd)
        scores = scores + (self.slopes[:, None, None] * key_pos).to(scores.dtype)[None]
        if mask is not None:
            scores = scores + mask
        probs = F.softmax(scores.float(), dim=-1).to(q.dtype)
        out = torch.matmul(probs, v).transpose(1, 2).reshape(b, s, -1)
        return self.dense(out), present


class BloomMLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.dense_h_to_4h = nn.Linear(cfg.hidden_size, 4 * cfg.hidden_size)
        self.dense_4h_to_h = nn.Linear(4 * cfg.hidden_size, cfg.hidden_size)

    def forward(self, x):
        return self.dense_4h_to_h(F.gelu(self.dense_h_to_4h(x), approximate="tanh"))


class BloomBlock(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.post_ln_residual = cfg.apply_residual_connection_post_layernorm
        self.input_layernorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_epsilon)
        self.self_attention = BloomAttention(cfg)
        self.post_attention_layernorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_epsilon)
        self.mlp = BloomMLP(cfg)

    def forward(self, x, mask, past=None):
        ln = self.input_layernorm(x)
        a, present = self.self_attention(ln, mask, past)
        h = a + (ln if self.post_ln_residual else x)
        ln = self.post_attention_layernorm(h)
        return self.mlp(ln) + (ln if self.post_ln_residual else h), present


class BloomModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.word_embeddings_layernorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_epsilon)
        self.h = nn.ModuleList([BloomBlock(cfg) for _ in range(cfg.n_layer)])
        self.ln_f = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_epsilon)


class BloomForCausalLM(nn.Module):
    """BLOOM under Hugging Face parameter names (transformer.*, lm_head tied), with
    the same ULS training pass and cached decoding as LlamaForCausalLM."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.transformer = BloomModel(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.word_embeddings.weight
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

    @property
    def word_embeddings(self):
        return self.transformer.word_embeddings

    def _embed(self, ids):
        return self.transformer.word_embeddings_layernorm(self.transformer.word_embeddings(ids))

    def forward(self, ids, skip_from=None, kept=None, select=None):
        """As LlamaForCausalLM.forward."""
        b, s = ids.shape
        pos = torch.arange(s, device=ids.device).expand(b, s)
        mask = torch.full((s, s), float("-inf"), device=ids.device).triu(1)[None, None]
        h = self._embed(ids)
        skip = None
        if kept is not None:
            if skip_from is None:
                raise ValueError("kept layers need skip_from (first response position per row)")
            skip = (pos >= skip_from[:, None])[..., None]
            kept = set(kept)
        for i, layer in enumerate(self.transformer.h):
            out, _ = layer(h, mask)
            h = out if skip is None or i in kept else torch.where(skip, h, out)
        if select is not None:
            h = h[select]
        return self.lm_head(self.transformer.ln_f(h))

    @torch.no_grad()
    def generate(self, prompt, max_new_tokens, kept=None):
        """As LlamaForCausalLM.generate."""
        dev = self.transformer.word_embeddings.weight.device
        ids = torch.tensor([prompt], device=dev)
        n = ids.shape[1]
        mask = torch.full((n, n), float("-inf"), device=dev).triu(1)[None, None]
        h = self._embed(ids)
        cache = []
        for layer in self.transformer.h:
            h, kv = layer(h, mask)
            cache.append(kv)
        layers = range(self.cfg.n_layer) if kept is None else sorted(kept)
        out = []
        tok = int(self.lm_head(self.transformer.ln_f(h[:, -1])).argmax(-1))
        while tok != self.cfg.eos_token_id and len(out) < max_new_tokens:
            out.append(tok)
            h = self._embed(torch.tensor([[tok]], device=dev))
            for i in layers:
                h, cache[i] = self.transformer.h[i](h, None, cache[i])
            tok = int(self.lm_head(self.transformer.ln_f(h[:, -1])).argmax(-1))
        return out


# ---- safetensors (written and read here directly: JSON header + raw little-endian bytes)

_DTYPES = {"F16": "<f2", "F32": "<f4"}


def _to_bytes(t, dtype):
    """Little-endian bytes of a float tensor in F32, F16 or BF16 (round to nearest even)."""
    arr = np.ascontiguousarray(t.detach().cpu().float().numpy())
    if dtype == "BF16":
        u = arr.astype("<f4").view("<u4").astype(np.uint64)
        u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
        return u.astype("<u2").tobytes(), list(arr.shape)
    if dtype not in _DTYPES:
        raise ValueError("unsupported dtype %s" % dtype)
    return arr.astype(_DTYPES[dtype]).tobytes(), list(arr.shape)


def _from_bytes(raw, dtype, shape):
    if dtype == "BF16":
        u = np.frombuffer(raw, dtype="<u2").astype("<u4") << 16
        arr = u.view("<f4")
    elif dtype in _DTYPES:
        arr = np.frombuffer(raw, dtype=_DTYPES[dtype]).astype(np.float32)
    else:
        raise ValueError("unsupported dtype %s (want F32, F16 or BF16)" % dtype)
    return torch.from_numpy(arr.astype(np.float32).reshape(shape))


def save_safetensors(path, tensors, dtype="F16", metadata=None):
    """Writes {name: torch.Tensor} as a safetensors file. dtype is "F16", "F32" or
    "BF16" for every tensor, or a {name: dtype} dictionary."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        dt = dtype[name] if isinstance(dtype, dict) else dtype
        raw, shape = _to_bytes(tensors[name], dt)
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    header["__metadata__"] = metadata if metadata is not None else {"format": "pt"}
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * (-len(hjson) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for raw in blobs:
            f.write(raw)
    os.replace(tmp, path)


def read_safetensors(path):
    """Reads an F32/F16/BF16 safetensors file: ({name: float32 tensor}, {name: dtype}, metadata)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    out, dtypes = {}, {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        try:
            out[name] = _from_bytes(data[base + start : base + end], info["dtype"], info["shape"])
        except ValueError as e:
            raise ValueError("%s: %s: %s" % (path, name, e)) from None
        dtypes[name] = info["dtype"]
    return out, dtypes, header.get("__metadata__")


def load_safetensors(path):
    """Reads an F16/F32/BF16 safetensors file into {name: float32 torch.Tensor}."""
    return read_safetensors(path)[0]


def save_checkpoint(model, out_dir, tokenizer_path=None, dtype="F16"):
    """Writes config.json, generation_config.json, model.safetensors (and copies
    tokenizer.json) in Hugging Face LLaMA layout."""
    os.makedirs(out_dir, exist_ok=True)
    cfg = model.cfg
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg.to_hf(), f, indent=2)
        f.write("\n")
    gen = {
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": cfg.eos_token_id,
        "do_sample": False,
        "max_new_tokens": 128,
    }
    with open(os.path.join(out_dir, "generation_config.json"), "w") as f:
        json.dump(gen, f, indent=2)
        f.write("\n")
    state = {k: v for k, v in model.state_dict().items()}
    if cfg.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    save_safetensors(os.path.join(out_dir, "model.safetensors"), state, dtype)
    if tokenizer_path:
        with open(tokenizer_path, "rb") as src, open(os.path.join(out_dir, "tokenizer.json"), "wb") as dst:
            dst.write(src.read())


def load_checkpoint(in_dir):
    """Loads a checkpoint written by save_checkpoint (float32 weights)."""
    with open(os.path.join(in_dir, "config.json")) as f:
        cfg = Config.from_hf(json.load(f))
    model = LlamaForCausalLM(cfg)
    state = load_safetensors(os.path.join(in_dir, "model.safetensors"))
    if cfg.tie_word_embeddings:
        state["lm_head.weight"] = state["model.embed_tokens.weight"]
    model.load_state_dict(state)
    return model
