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

    @property
    def head_dim(self):
        return self.hidden_size // self.num_attention_heads

    def to_hf(self):
        """The config.json dictionary (LlamaForCausalLM layout, plus "uls" when fine-tuned)."""
        d = asdict(self)
        ratios = d.pop("uls_ratios")
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
        keys = {f for f in cls.__dataclass_fields__ if f != "uls_ratios"}
        cfg = cls(**{k: v for k, v in d.items() if k in keys})
        cfg.uls_ratios = list(d.get("uls", {}).get("ratios", []))
        return cfg


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


def rope_cos_sin(positions, head_dim, theta, dtype):
    """cos/sin of shape [..., S, head_dim] for integer positions [..., S]."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=positions.device) / head_dim))
    freqs = positions.float()[..., None] * inv_freq
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        hd = cfg.head_dim
        self.q_proj = nn.Linear(cfg.hidden_size, cfg.num_attention_heads * hd, bias=False)
        self.k_proj = nn.Linear(cfg.hidden_size, cfg.num_key_value_heads * hd, bias=False)
        self.v_proj = nn.Linear(cfg.hidden_size, cfg.num_key_value_heads * hd, bias=False)
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
        cos, sin = rope_cos_sin(pos, self.cfg.head_dim, self.cfg.rope_theta, self.model.embed_tokens.weight.dtype)
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
        cos, sin = rope_cos_sin(torch.arange(n, device=dev)[None], cfg.head_dim, cfg.rope_theta, dtype)
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
            cos, sin = rope_cos_sin(torch.tensor([[p]], device=dev), cfg.head_dim, cfg.rope_theta, dtype)
            h = self.model.embed_tokens(torch.tensor([[tok]], device=dev))
            for i in layers:
                h, cache[i] = self.model.layers[i](h, cos, sin, None, cache[i])
            tok = int(self.lm_head(self.model.norm(h[:, -1])).argmax(-1))
        return out


# ---- safetensors (written and read here directly: JSON header + raw little-endian bytes)

_DTYPES = {"F16": "<f2", "F32": "<f4"}


def save_safetensors(path, tensors, dtype="F16"):
    """Writes {name: torch.Tensor} as a safetensors file in F16 or F32."""
    np_dtype = _DTYPES[dtype]
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name].detach().cpu().float().numpy().astype(np_dtype))
        raw = arr.tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    header["__metadata__"] = {"format": "pt"}
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * (-len(hjson) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for raw in blobs:
            f.write(raw)


def load_safetensors(path):
    """Reads an F16/F32 safetensors file into {name: float32 torch.Tensor}."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        np_dtype = _DTYPES.get(info["dtype"])
        if np_dtype is None:
            raise ValueError("%s: unsupported dtype %s" % (name, info["dtype"]))
        start, end = info["data_offsets"]
        arr = np.frombuffer(data[base + start : base + end], dtype=np_dtype)
        out[name] = torch.from_numpy(arr.astype(np.float32).reshape(info["shape"]))
    return out


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
