"""A miniature Qwen2-VL: word-level tokenizer with Qwen's special tokens and chat template,
Qwen2-VL image preprocessing (flattened temporal patches in merge-window order, grid_thw),
a vision encoder on flattened patches (2-D rotary from the grid, spatial patch merger), and
a Qwen2 decoder with 3-D multimodal rotary positions (M-RoPE) and grouped-query attention.
The position ids follow Qwen2-VL's get_rope_index. Written from the published architecture;
shapes and names match what transformers.js' Qwen2VLForConditionalGeneration loads.

Run with Debian's /usr/bin/python3 (torch 1.13). Reuses the tiny-vqa task (tools/tinyvlm).
"""
import math
import os
import re
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tinyvlm"))
import common as V  # noqa: E402  (tiny-vqa scenes, questions, words)

# ----------------------------------------------------------------------------- tokenizer
SPECIAL_TOKENS = ["<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>",
                  "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
UNK_ID, PAD_ID, IM_START_ID, IM_END_ID, VISION_START_ID, VISION_END_ID, IMAGE_PAD_ID, VIDEO_PAD_ID = range(8)
SYSTEM_LINE = "Answer in one word."
WORDS = V.WORDS + ["system", "user", "assistant"]


def build_vocab():
    vocab = {}
    for t in SPECIAL_TOKENS + WORDS:
        vocab.setdefault(t, len(vocab))
    return vocab


VOCAB = build_vocab()
ID_TO_TOKEN = {i: t for t, i in VOCAB.items()}
_SPECIAL_RE = re.compile("(" + "|".join(re.escape(t) for t in SPECIAL_TOKENS) + ")")
_WORD_RE = re.compile(r"\w+|[^\w\s]+", re.ASCII)  # == the "Whitespace" pre-tokenizer

CHAT_TEMPLATE = (
    "{{- '<|im_start|>system\\n" + SYSTEM_LINE + "<|im_end|>\\n' -}}"
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for content in message['content'] -%}"
    "{%- if content['type'] == 'image' -%}{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
    "{%- elif content['type'] == 'text' -%}{{- content['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)


def tokenize(text):
    """Added tokens split first, then the Whitespace pre-tokenizer, then a WordLevel lookup."""
    ids = []
    for part in _SPECIAL_RE.split(text):
        if not part:
            continue
        if part in SPECIAL_TOKENS:
            ids.append(VOCAB[part])
            continue
        ids += [VOCAB.get(w, UNK_ID) for w in _WORD_RE.findall(part)]
    return ids


def prompt_text(question):
    """What the chat template renders for one user turn (image first) + generation prompt."""
    return ("<|im_start|>system\n" + SYSTEM_LINE + "<|im_end|>\n<|im_start|>user\n"
            "<|vision_start|><|image_pad|><|vision_end|>" + question + "<|im_end|>\n<|im_start|>assistant\n")


def tokenizer_json():
    added = [{"id": VOCAB[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for t in SPECIAL_TOKENS]
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": None, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": None,
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordLevel", "vocab": VOCAB, "unk_token": "<unk>"},
    }


# ----------------------------------------------------------------------------- images
IMAGE_MEAN = [0.48145466, 0.4578275, 0.40821073]
IMAGE_STD = [0.26862954, 0.26130258, 0.27577711]
PATCH, TEMPORAL, MERGE = 4, 2, 2


def preprocess(img):
    """PIL RGB -> (flattened patches [t*h*w, 3*T*p*p] float32, grid (t, h, w)), as Qwen2-VL's
    image processor: rescale, normalise, tile to the temporal patch size, and order patches by
    merge window (t, h/m, w/m, m, m) with each patch flattened as (C, T, p, p)."""
    a = np.asarray(img.convert("RGB"), dtype=np.float32) * np.float32(1 / 255)
    a = ((a - np.asarray(IMAGE_MEAN, np.float32)) / np.asarray(IMAGE_STD, np.float32)).transpose(2, 0, 1)
    C, H, W = a.shape
    assert H % (PATCH * MERGE) == 0 and W % (PATCH * MERGE) == 0, "images are used at their size"
    x = np.stack([a] * TEMPORAL)  # [T, C, H, W]
    gt, gh, gw = 1, H // PATCH, W // PATCH
    x = x.reshape(gt, TEMPORAL, C, gh // MERGE, MERGE, PATCH, gw // MERGE, MERGE, PATCH)
    x = x.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return x.reshape(gt * gh * gw, C * TEMPORAL * PATCH * PATCH).copy(), (gt, gh, gw)


def prompt_ids(question, grid):
    n = grid[0] * grid[1] * grid[2] // (MERGE * MERGE)
    return tokenize(prompt_text(question).replace("<|image_pad|>", "<|image_pad|>" * n))


def rope_index(ids, grid):
    """Qwen2-VL's 3-D positions for one sequence with one image: text positions count up in
    all three rows; the image's tokens get (t, row, column) offset by the text before them;
    text after the image continues from the largest position + 1. Returns [3, S] and the
    delta (max + 1 - S) that decoding adds to the cache length."""
    S = len(ids)
    pos = np.zeros((3, S), dtype=np.int64)
    first = ids.index(IMAGE_PAD_ID)
    gt, gh, gw = grid[0], grid[1] // MERGE, grid[2] // MERGE
    n = gt * gh * gw
    for i in range(first):
        pos[:, i] = i
    for k in range(n):
        pos[0, first + k] = first + k // (gh * gw)
        pos[1, first + k] = first + (k // gw) % gh
        pos[2, first + k] = first + k % gw
    nxt = pos[:, first:first + n].max() + 1
    for j, i in enumerate(range(first + n, S)):
        pos[:, i] = nxt + j
    return pos, int(pos.max()) + 1 - S


# ----------------------------------------------------------------------------- model
DEFAULT_CFG = dict(
    vocab_size=len(VOCAB), hidden_size=64, intermediate_size=160, num_hidden_layers=8,
    num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-6, rope_theta=10000.0,
    mrope_section=[2, 3, 3], max_position_embeddings=512,
    vision_embed_dim=32, vision_depth=2, vision_heads=2, vision_mlp_ratio=2,
)


rotate_half = V.rotate_half
RMSNorm = V.RMSNorm


class VisionBlock(nn.Module):
    def __init__(self, d, heads, ratio):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(d, eps=1e-6)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d, eps=1e-6)
        self.fc1 = nn.Linear(d, ratio * d)
        self.fc2 = nn.Linear(ratio * d, d)

    def forward(self, x, cos, sin):
        N, D = x.shape
        hd = D // self.heads
        q, k, v = self.qkv(self.norm1(x)).view(N, 3, self.heads, hd).permute(1, 2, 0, 3)  # each [h, N, hd]
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(hd), dim=-1) @ v  # one image: full attention
        x = x + self.proj(a.transpose(0, 1).reshape(N, D))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class VisionEncoder(nn.Module):
    """Flattened patches [N, 3*T*p*p] + grid_thw [1, 3] -> merged features [N/m^2, hidden]."""

    def __init__(self, cfg):
        super().__init__()
        d = cfg["vision_embed_dim"]
        self.patch_embed = nn.Linear(3 * TEMPORAL * PATCH * PATCH, d, bias=False)  # == Conv3d, stride = kernel
        self.blocks = nn.ModuleList([VisionBlock(d, cfg["vision_heads"], cfg["vision_mlp_ratio"]) for _ in range(cfg["vision_depth"])])
        hd = d // cfg["vision_heads"]
        self.register_buffer("inv_freq", 1.0 / (10000 ** (torch.arange(0, hd // 2, 2, dtype=torch.float32) / (hd // 2))), persistent=False)
        self.ln_q = nn.LayerNorm(d, eps=1e-6)
        self.mlp0 = nn.Linear(d * MERGE * MERGE, d * MERGE * MERGE)
        self.mlp2 = nn.Linear(d * MERGE * MERGE, cfg["hidden_size"])

    def forward(self, pixel_values, grid_thw):
        x = self.patch_embed(pixel_values)
        # Each patch's (row, column) from its index: patches come in merge-window order.
        n = torch.arange(x.shape[0], dtype=torch.long)
        wm = torch.div(grid_thw[0, 2], MERGE, rounding_mode="floor")
        hm = torch.div(grid_thw[0, 1], MERGE, rounding_mode="floor")
        win = torch.div(n, MERGE * MERGE, rounding_mode="floor")
        r = n - win * (MERGE * MERGE)
        hpos = (torch.div(win, wm, rounding_mode="floor") % hm) * MERGE + torch.div(r, MERGE, rounding_mode="floor")
        wpos = (win % wm) * MERGE + r % MERGE
        f = torch.cat([hpos[:, None].float() * self.inv_freq[None], wpos[:, None].float() * self.inv_freq[None]], dim=-1)
        emb = torch.cat([f, f], dim=-1)
        cos, sin = emb.cos()[None], emb.sin()[None]
        for b in self.blocks:
            x = b(x, cos, sin)
        x = self.ln_q(x).reshape(-1, x.shape[-1] * MERGE * MERGE)
        return self.mlp2(F.gelu(self.mlp0(x)))


class Attention(V.Attention):
    """Qwen2 attention: LLaMA's (GQA, rotate-half rotary) with biases on q, k and v."""

    def __init__(self, cfg):
        super().__init__(dict(cfg, head_dim=cfg["hidden_size"] // cfg["num_attention_heads"]))
        for n in ("q_proj", "k_proj", "v_proj"):
            lin = getattr(self, n)
            setattr(self, n, nn.Linear(lin.in_features, lin.out_features))


class DecoderLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        H, I = cfg["hidden_size"], cfg["intermediate_size"]
        self.input_layernorm = RMSNorm(H, cfg["rms_norm_eps"])
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(H, cfg["rms_norm_eps"])
        self.gate_proj = nn.Linear(H, I, bias=False)
        self.up_proj = nn.Linear(H, I, bias=False)
        self.down_proj = nn.Linear(I, H, bias=False)

    def forward(self, x, cos, sin, mask, pk=None, pv=None):
        a, present, _ = self.self_attn(self.input_layernorm(x), cos, sin, mask, pk, pv)
        x = x + a
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h)), present


class Decoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.layers = nn.ModuleList([DecoderLayer(cfg) for _ in range(cfg["num_hidden_layers"])])
        self.norm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])
        self.lm_head = nn.Linear(cfg["hidden_size"], cfg["vocab_size"], bias=False)
        hd = cfg["hidden_size"] // cfg["num_attention_heads"]
        assert sum(cfg["mrope_section"]) * 2 == hd
        self.register_buffer("inv_freq", 1.0 / (cfg["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd)), persistent=False)

    def mrope(self, position_ids):
        """[3, B, S] -> cos, sin [B, 1, S, hd]: frequency sections taken from the t, h, w rows in turn."""
        f = position_ids[..., None].float() * self.inv_freq  # [3, B, S, hd/2]
        emb = torch.cat([f, f], dim=-1)
        sec = self.cfg["mrope_section"] * 2

        def pick(t):
            return torch.cat([c[i % 3] for i, c in enumerate(t.split(sec, dim=-1))], dim=-1)[:, None]

        return pick(emb.cos()), pick(emb.sin())

    def forward(self, inputs_embeds, attention_mask, position_ids, past=None, skip=()):
        B, S, _ = inputs_embeds.shape
        total = attention_mask.shape[1]
        cos, sin = self.mrope(position_ids)
        q_idx = torch.arange(S) + (total - S)
        k_idx = torch.arange(total)
        allowed = (k_idx[None, :] <= q_idx[:, None])[None, None] & (attention_mask[:, None, None, :] > 0)
        mask = (~allowed).to(inputs_embeds.dtype) * -1e9
        x = inputs_embeds
        presents = []
        for i, layer in enumerate(self.layers):
            if i in skip:
                presents.append(None)
                continue
            pk, pv = past[i] if past is not None else (None, None)
            x, present = layer(x, cos, sin, mask, pk, pv)
            presents.append(present)
        return self.lm_head(self.norm(x)), presents


class TinyQwen2VL(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.visual = VisionEncoder(cfg)
        self.embed_tokens = nn.Embedding(cfg["vocab_size"], cfg["hidden_size"])
        self.decoder = Decoder(cfg)

    def embed(self, ids, patches, grid):
        """ids [B, S] (each row holding one image's pads), patches [B, N, P]."""
        emb = self.embed_tokens(ids).clone()
        g = torch.tensor([grid], dtype=torch.long)
        feats = torch.stack([self.visual(patches[b], g) for b in range(ids.shape[0])])
        emb[ids == IMAGE_PAD_ID] = feats.reshape(-1, feats.shape[-1])
        return emb

    def forward(self, ids, patches, grid, position_ids, attention_mask=None, skip=()):
        if attention_mask is None:
            attention_mask = torch.ones_like(ids)
        logits, _ = self.decoder(self.embed(ids, patches, grid), attention_mask, position_ids, skip=skip)
        return logits


def init_weights(model, seed):
    """Matrices N(0, 1/fan_in) (o_proj/down_proj also / sqrt(2L)), embeddings N(0, 1), lm_head N(0, 0.02)."""
    g = torch.Generator().manual_seed(seed)
    L = model.cfg["num_hidden_layers"]
    for name, p in model.named_parameters():
        with torch.no_grad():
            if p.dim() >= 2:
                std = 1.0 if "embed_tokens" in name else 0.02 if "lm_head" in name else 1.0 / math.sqrt(p.shape[1])
                if name.endswith(("o_proj.weight", "down_proj.weight")):
                    std /= math.sqrt(2 * L)
                p.copy_(torch.randn(p.shape, generator=g) * std)
            elif name.endswith(".bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)
