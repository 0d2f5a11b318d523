"""PyTorch definitions of the miniature SmolVLM (Idefics3-style) and Gemma 3-style VLMs.

Random seeded weights; the point is the families' input logic and attention, not accuracy.
Run with Debian's /usr/bin/python3 (torch 1.13). The decoders follow Hugging Face's modelling
of each family closely enough that transformers.js' own model classes and processors run the
exported packages with their usual semantics:

- SmolVLM / Idefics3: SigLIP-style vision tower over image frames (tiles + a global image) with
  `pixel_attention_mask` masking padded patches, pixel-shuffle connector, LLaMA decoder.
- LLaVA-OneVision: any-resolution tiles (a base view + a 2x2 tile grid) through a SigLIP-style
  tower and a two-layer projector, packed on the tile grid with `image_newline` closing each row
  (inside the vision encoder: transformers.js runs this family with LLaVA's class), LLaMA decoder.
- Gemma 3: SigLIP-style vision tower, average-pooled to `mm_tokens_per_image` tokens, Gemma RMS
  norm (1 + w) and a projection; decoder with embeddings scaled by sqrt(hidden), q/k norms,
  sandwich norms around attention and MLP, GELU-tanh gated MLP, sliding-window and global layers
  with their own rotary bases, tied lm_head, positions counted from 1; attention among the
  tokens of one image block is bidirectional when `token_type_ids` is given.
"""
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tinyvlm"))
import common as C  # noqa: E402  (LLaMA decoder, rotate_half, repeat_kv)

NEG = -1e9  # additive mask value (finite: a row with every key masked stays finite)


# ----------------------------------------------------------------------------- vision
class SiglipLayer(nn.Module):
    def __init__(self, d, heads, inter, eps):
        super().__init__()
        self.heads = heads
        self.layer_norm1 = nn.LayerNorm(d, eps=eps)
        self.q_proj = nn.Linear(d, d)
        self.k_proj = nn.Linear(d, d)
        self.v_proj = nn.Linear(d, d)
        self.out_proj = nn.Linear(d, d)
        self.layer_norm2 = nn.LayerNorm(d, eps=eps)
        self.fc1 = nn.Linear(d, inter)
        self.fc2 = nn.Linear(inter, d)

    def forward(self, x, key_bias=None):
        B, N, D = x.shape
        hd = D // self.heads
        h = self.layer_norm1(x)
        q = self.q_proj(h).view(B, N, self.heads, hd).transpose(1, 2)
        k = self.k_proj(h).view(B, N, self.heads, hd).transpose(1, 2)
        v = self.v_proj(h).view(B, N, self.heads, hd).transpose(1, 2)
        s = q @ k.transpose(2, 3) / math.sqrt(hd)
        if key_bias is not None:
            s = s + key_bias[:, None, None, :]
        a = torch.softmax(s, dim=-1) @ v
        x = x + self.out_proj(a.transpose(1, 2).reshape(B, N, D))
        x = x + self.fc2(F.gelu(self.fc1(self.layer_norm2(x)), approximate="tanh"))
        return x


class SiglipVision(nn.Module):
    """Patch embedding (conv with bias), learned positions, pre-LN layers, post LayerNorm."""

    def __init__(self, d, heads, inter, layers, image, patch, eps=1e-6):
        super().__init__()
        self.patch = patch
        self.patch_embedding = nn.Conv2d(3, d, patch, patch)
        self.position_embedding = nn.Parameter(torch.randn((image // patch) ** 2, d) * 0.02)
        self.layers = nn.ModuleList([SiglipLayer(d, heads, inter, eps) for _ in range(layers)])
        self.post_layernorm = nn.LayerNorm(d, eps=eps)

    def forward(self, pixel_values, patch_valid=None):
        x = self.patch_embedding(pixel_values).flatten(2).transpose(1, 2) + self.position_embedding
        key_bias = None if patch_valid is None else (1.0 - patch_valid.to(x.dtype)) * NEG
        for layer in self.layers:
            x = layer(x, key_bias)
        return self.post_layernorm(x)


def gemma_rms(x, w, eps):
    """Gemma's RMS norm: scale by (1 + w)."""
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * (1.0 + w)


# ----------------------------------------------------------------------------- SmolVLM
class SmolVlmVision(nn.Module):
    """pixel_values [B, N, 3, h, w] + pixel_attention_mask [B, N, h, w] -> [B*N, seq, hidden].
    A patch is valid if any of its pixels is; padded patches are masked as attention keys."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        v = cfg["vision"]
        self.tower = SiglipVision(v["hidden_size"], v["heads"], v["intermediate_size"], v["layers"],
                                  v["image_size"], v["patch_size"])
        s = cfg["scale_factor"]
        self.proj = nn.Linear(v["hidden_size"] * s * s, cfg["text"]["hidden_size"], bias=False)

    def pixel_shuffle(self, x):
        # [F, side*side, d] -> [F, (side/s)^2, d*s*s]: each output token concatenates an s x s
        # block of neighbouring patches (the Idefics3 connector's space-to-depth).
        s = self.cfg["scale_factor"]
        Fr, n, d = x.shape
        side = int(round(math.sqrt(n)))
        x = x.reshape(Fr, side, side // s, d * s)
        x = x.permute(0, 2, 1, 3).reshape(Fr, side // s, side // s, d * s * s)
        x = x.permute(0, 2, 1, 3).reshape(Fr, n // (s * s), d * s * s)
        return x

    def forward(self, pixel_values, pixel_attention_mask):
        p = self.cfg["vision"]["patch_size"]
        pv = pixel_values.flatten(0, 1)
        pm = pixel_attention_mask.flatten(0, 1).to(pv.dtype)[:, None]
        valid = F.max_pool2d(pm, p, p).flatten(1) > 0  # [F, patches]
        x = self.tower(pv, valid)
        return self.proj(self.pixel_shuffle(x))


class TinySmolVlm(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.vision = SmolVlmVision(cfg)
        t = dict(cfg["text"])
        self.model = C.LlamaModel(t)
        self.lm_head = nn.Linear(t["hidden_size"], t["vocab_size"], bias=False)

    def embed(self, input_ids, pixel_values, pixel_attention_mask):
        emb = self.model.embed_tokens(input_ids).clone()
        feats = self.vision(pixel_values, pixel_attention_mask)
        m = input_ids == self.cfg["image_token_id"]
        emb[m] = feats.reshape(-1, feats.shape[-1]).to(emb.dtype)
        return emb

    def forward(self, input_ids, pixel_values, pixel_attention_mask, skip=()):
        emb = self.embed(input_ids, pixel_values, pixel_attention_mask)
        B, S = input_ids.shape
        am = torch.ones(B, S, dtype=torch.long)
        pos = torch.arange(S)[None].expand(B, S)
        h, _ = self.model(emb, am, pos, skip=skip)
        return self.lm_head(h)

    def decode(self, inputs_embeds, attention_mask, position_ids, past):
        h, presents = self.model(inputs_embeds, attention_mask, position_ids, past=past)
        return self.lm_head(h), presents


# ----------------------------------------------------------------------------- Gemma 3
class Gemma3Vision(nn.Module):
    """pixel_values [B, 3, H, W] -> [B, mm_tokens_per_image, hidden]."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        v = cfg["vision"]
        self.tower = SiglipVision(v["hidden_size"], v["heads"], v["intermediate_size"], v["layers"],
                                  v["image_size"], v["patch_size"])
        self.mm_soft_emb_norm = nn.Parameter(torch.zeros(v["hidden_size"]))
        self.mm_input_projection_weight = nn.Parameter(torch.zeros(v["hidden_size"], cfg["text"]["hidden_size"]))

    def forward(self, pixel_values):
        v = self.cfg["vision"]
        x = self.tower(pixel_values)  # [B, side*side, d]
        B, n, d = x.shape
        side = v["image_size"] // v["patch_size"]
        per_side = int(round(math.sqrt(self.cfg["mm_tokens_per_image"])))
        k = side // per_side
        x = x.transpose(1, 2).reshape(B, d, side, side)
        x = F.avg_pool2d(x, k, k).flatten(2).transpose(1, 2)  # [B, tokens, d]
        x = gemma_rms(x, self.mm_soft_emb_norm, v["layer_norm_eps"])
        return x @ self.mm_input_projection_weight


class Gemma3Attention(nn.Module):
    def __init__(self, t):
        super().__init__()
        H, nh, nkv, hd = t["hidden_size"], t["num_attention_heads"], t["num_key_value_heads"], t["head_dim"]
        self.nh, self.nkv, self.hd, self.eps = nh, nkv, hd, t["rms_norm_eps"]
        self.scale = t["query_pre_attn_scalar"] ** -0.5
        self.q_proj = nn.Linear(H, nh * hd, bias=False)
        self.k_proj = nn.Linear(H, nkv * hd, bias=False)
        self.v_proj = nn.Linear(H, nkv * hd, bias=False)
        self.o_proj = nn.Linear(nh * hd, H, bias=False)
        self.q_norm = nn.Parameter(torch.zeros(hd))
        self.k_norm = nn.Parameter(torch.zeros(hd))

    def forward(self, x, cos, sin, mask, past_k=None, past_v=None):
        B, S, _ = x.shape
        q = self.q_proj(x).view(B, S, self.nh, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(B, S, self.nkv, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(B, S, self.nkv, self.hd).transpose(1, 2)
        q = gemma_rms(q, self.q_norm, self.eps)
        k = gemma_rms(k, self.k_norm, self.eps)
        q = q * cos + C.rotate_half(q) * sin
        k = k * cos + C.rotate_half(k) * sin
        if past_k is not None:
            k = torch.cat([past_k, k], dim=2)
            v = torch.cat([past_v, v], dim=2)
        present = (k, v)
        rep = self.nh // self.nkv
        kk, vv = C.repeat_kv(k, rep), C.repeat_kv(v, rep)
        probs = torch.softmax(torch.matmul(q, kk.transpose(2, 3)) * self.scale + mask, dim=-1)
        out = torch.matmul(probs, vv).transpose(1, 2).reshape(B, S, self.nh * self.hd)
        return self.o_proj(out), present, probs


class Gemma3Layer(nn.Module):
    def __init__(self, t):
        super().__init__()
        H, I = t["hidden_size"], t["intermediate_size"]
        self.eps = t["rms_norm_eps"]
        self.self_attn = Gemma3Attention(t)
        self.gate_proj = nn.Linear(H, I, bias=False)
        self.up_proj = nn.Linear(H, I, bias=False)
        self.down_proj = nn.Linear(I, H, bias=False)
        for n in ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                  "post_feedforward_layernorm"):
            setattr(self, n, nn.Parameter(torch.zeros(H)))

    def forward(self, x, cos, sin, mask, past_k=None, past_v=None):
        a, present, probs = self.self_attn(gemma_rms(x, self.input_layernorm, self.eps), cos, sin, mask, past_k, past_v)
        x = x + gemma_rms(a, self.post_attention_layernorm, self.eps)
        h = gemma_rms(x, self.pre_feedforward_layernorm, self.eps)
        m = self.down_proj(F.gelu(self.gate_proj(h), approximate="tanh") * self.up_proj(h))
        x = x + gemma_rms(m, self.post_feedforward_layernorm, self.eps)
        return x, present, probs


def image_blocks(token_type_ids):
    """[B, S] -> [B, S, S] bool: query and key are in the same run of image tokens (type 1)."""
    is_img = token_type_ids == 1
    prev = F.pad(is_img, (1, 0))[:, :-1]
    start = is_img & ~prev
    group = torch.cumsum(start.long(), dim=1)
    group = torch.where(is_img, group, torch.zeros_like(group))
    return (group[:, :, None] == group[:, None, :]) & is_img[:, :, None] & is_img[:, None, :]


class Gemma3Text(nn.Module):
    def __init__(self, t):
        super().__init__()
        self.t = t
        self.embed_tokens = nn.Embedding(t["vocab_size"], t["hidden_size"])
        self.layers = nn.ModuleList([Gemma3Layer(t) for _ in range(t["num_hidden_layers"])])
        self.norm = nn.Parameter(torch.zeros(t["hidden_size"]))
        hd = t["head_dim"]
        ar = torch.arange(0, hd, 2, dtype=torch.float32) / hd
        self.register_buffer("inv_freq_global", 1.0 / (t["rope_theta"] ** ar), persistent=False)
        self.register_buffer("inv_freq_local", 1.0 / (t["rope_local_base_freq"] ** ar), persistent=False)

    def scaled_embed(self, input_ids):
        return self.embed_tokens(input_ids) * torch.tensor(self.t["hidden_size"] ** 0.5, dtype=self.embed_tokens.weight.dtype)

    def forward(self, inputs_embeds, attention_mask, position_ids, past=None, skip=(), token_type_ids=None, hooks=None):
        B, S, _ = inputs_embeds.shape
        total = attention_mask.shape[1]
        past_len = total - S
        rope = {}
        for kind, inv in (("global", self.inv_freq_global), ("local", self.inv_freq_local)):
            fr = position_ids[:, :, None].to(inv.dtype) * inv[None, None, :]
            emb = torch.cat([fr, fr], dim=-1)
            rope[kind] = (emb.cos()[:, None].to(inputs_embeds.dtype), emb.sin()[:, None].to(inputs_embeds.dtype))
        q_idx = torch.arange(S) + past_len
        k_idx = torch.arange(total)
        causal = (k_idx[None, :] <= q_idx[:, None])[None, None]
        pad_ok = attention_mask[:, None, None, :] > 0
        window = (q_idx[:, None] - k_idx[None, :] < self.t["sliding_window"])[None, None]
        bidi = None
        if token_type_ids is not None:
            blk = image_blocks(token_type_ids)  # among this chunk's tokens
            bidi = F.pad(blk, (past_len, 0))[:, None]
        masks = {}
        for kind in ("global", "local"):
            allowed = causal & window if kind == "local" else causal
            if bidi is not None:
                allowed = allowed | bidi
            masks[kind] = (~(allowed & pad_ok)).to(inputs_embeds.dtype) * NEG
        x = inputs_embeds
        presents = []
        for i, layer in enumerate(self.layers):
            kind = "local" if self.t["layer_types"][i] == "sliding_attention" else "global"
            pk, pv = past[i] if past is not None else (None, None)
            if i in skip:
                presents.append(None)
                continue
            x_in = x
            x, present, probs = layer(x, *rope[kind], masks[kind], pk, pv)
            if hooks is not None:
                hooks(i, x_in, x, probs)
            presents.append(present)
        return gemma_rms(x, self.norm, self.t["rms_norm_eps"]), presents


class TinyGemma3(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.vision = Gemma3Vision(cfg)
        self.model = Gemma3Text(cfg["text"])

    def lm_head(self, h):
        return h @ self.model.embed_tokens.weight.t()  # tied embeddings

    def embed(self, input_ids, pixel_values):
        emb = self.model.scaled_embed(input_ids).clone()
        feats = self.vision(pixel_values)
        m = input_ids == self.cfg["image_token_index"]
        emb[m] = feats.reshape(-1, feats.shape[-1]).to(emb.dtype)
        return emb

    def forward(self, input_ids, pixel_values, skip=(), bidirectional=False, hooks=None):
        emb = self.embed(input_ids, pixel_values)
        B, S = input_ids.shape
        am = torch.ones(B, S, dtype=torch.long)
        pos = torch.arange(1, S + 1)[None].expand(B, S)  # Gemma 3 counts positions from 1
        tt = (input_ids == self.cfg["image_token_index"]).long() if bidirectional else None
        h, _ = self.model(emb, am, pos, skip=skip, token_type_ids=tt, hooks=hooks)
        return self.lm_head(h)

    def decode(self, inputs_embeds, attention_mask, position_ids, past, token_type_ids=None):
        h, presents = self.model(inputs_embeds, attention_mask, position_ids, past=past, token_type_ids=token_type_ids)
        return self.lm_head(h), presents


# ----------------------------------------------------------------------------- LLaVA-OneVision
class OneVisionVision(nn.Module):
    """pixel_values [B, 3, 2f, 2f] -> image features [B * tokens, hidden], OneVision's
    any-resolution layout for a 2x2 tile grid: the base view (the image average-pooled to one
    f x f frame) first, then the four tiles' features placed on their spatial grid
    (2 x side rows of 2 x side tokens), each row closed by the learned `image_newline`."""

    def __init__(self, cfg):
        super().__init__()
        v, d = cfg["vision"], cfg["text"]["hidden_size"]
        self.frame, self.side = v["image_size"], v["image_size"] // v["patch_size"]
        self.tower = SiglipVision(v["hidden_size"], v["heads"], v["intermediate_size"], v["layers"],
                                  v["image_size"], v["patch_size"])
        self.linear_1 = nn.Linear(v["hidden_size"], d)
        self.linear_2 = nn.Linear(d, d)
        self.image_newline = nn.Parameter(torch.zeros(d))

    def forward(self, pixel_values):
        f, s = self.frame, self.side
        B = pixel_values.shape[0]
        base = F.avg_pool2d(pixel_values, 2)  # [B, 3, f, f]
        tiles = pixel_values.reshape(B, 3, 2, f, 2, f).permute(0, 2, 4, 1, 3, 5).reshape(B * 4, 3, f, f)
        views = torch.cat([base, tiles], 0)  # base views first, then tiles row by row per image
        x = self.linear_2(F.gelu(self.linear_1(self.tower(views))))  # [5B, s*s, d]
        d = x.shape[-1]
        base_f = x[:B]  # [B, s*s, d]
        grid = x[B:].reshape(B, 2, 2, s, s, d).permute(0, 1, 3, 2, 4, 5).reshape(B, 2 * s, 2 * s, d)
        nl = self.image_newline.reshape(1, 1, 1, d).expand(B, 2 * s, 1, d)
        tiled = torch.cat([grid, nl], 2).reshape(B, 2 * s * (2 * s + 1), d)
        return torch.cat([base_f, tiled], 1).reshape(-1, d)


class TinyOneVision(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.vision = OneVisionVision(cfg)
        t = dict(cfg["text"])
        self.model = C.LlamaModel(t)
        self.lm_head = nn.Linear(t["hidden_size"], t["vocab_size"], bias=False)

    def embed(self, input_ids, pixel_values):
        emb = self.model.embed_tokens(input_ids).clone()
        m = input_ids == self.cfg["image_token_id"]
        emb[m] = self.vision(pixel_values).to(emb.dtype)
        return emb

    def forward(self, input_ids, pixel_values, skip=()):
        emb = self.embed(input_ids, pixel_values)
        B, S = input_ids.shape
        h, _ = self.model(emb, torch.ones(B, S, dtype=torch.long), torch.arange(S)[None].expand(B, S), skip=skip)
        return self.lm_head(h)

    def decode(self, inputs_embeds, attention_mask, position_ids, past):
        h, presents = self.model(inputs_embeds, attention_mask, position_ids, past=past)
        return self.lm_head(h), presents


# ----------------------------------------------------------------------------- weights
def randomize(model, seed, out_std=None):
    """Seeded random weights: matrices N(0, 1/fan_in) (conv: fan_in of the kernel), norm and
    bias vectors N(0, 0.1), embeddings N(0, 1); `out_std` overrides the std of matrices whose
    name matches a key (e.g. a larger lm_head for well-separated logits)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "embed_tokens" in name:
                std = 1.0
            elif p.dim() >= 2 and "position_embedding" not in name:
                fan_in = p[0].numel() if p.dim() != 2 or "projection_weight" not in name else p.shape[0]
                std = 1.0 / math.sqrt(fan_in)
            elif "position_embedding" in name:
                std = 0.5
            else:
                std = 0.1
            for k, v in (out_std or {}).items():
                if k in name:
                    std = v
            p.copy_(torch.randn(p.shape, generator=g) * std)
        for m in model.modules():  # LayerNorm / LLaMA RMSNorm weights multiply: keep them near 1
            if isinstance(m, (nn.LayerNorm, C.RMSNorm)):
                m.weight.add_(1.0)
