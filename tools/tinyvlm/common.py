"""Shared pieces of the tiny LLaVA-style VLM: vocabulary + tokenizer, prompt template,
procedural scene rendering and question generation, image preprocessing, and the model.

Everything here is deterministic given a seed. Used by gen_data.py, train.py and export.py.
Run with Debian's /usr/bin/python3 (torch 1.13).
"""
import math
import random
import re

import numpy as np
from PIL import Image, ImageDraw

# ----------------------------------------------------------------------------- task space
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (50, 90, 235),
    "yellow": (235, 210, 40),
}
COLOUR_NAMES = list(COLOURS)
SHAPES = ["circle", "square", "triangle", "diamond"]
PLURAL = {"circle": "circles", "square": "squares", "triangle": "triangles", "diamond": "diamonds"}
POSITIONS = ["top left", "top right", "bottom left", "bottom right"]  # 2x2 grid, cell index 0..3
NUMBERS = ["one", "two", "three", "four"]
LETTERS = ["A", "B", "C", "D"]
FAMILIES = ["pope", "mcq", "count", "attr"]

IMAGE_SIZE = 64
PATCH = 8
N_PATCHES = (IMAGE_SIZE // PATCH) ** 2  # 64 image tokens (CLS dropped)
BACKGROUND = (25, 25, 25)
IMAGE_MEAN = [0.48145466, 0.4578275, 0.40821073]
IMAGE_STD = [0.26862954, 0.26130258, 0.27577711]

# ----------------------------------------------------------------------------- tokenizer
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>", "<image>"]
UNK_ID, BOS_ID, EOS_ID, PAD_ID, IMAGE_ID = range(5)
SYSTEM_LINE = "Answer in one word."

WORDS = (
    "Answer the question about image with one word . USER : ASSISTANT ? "
    "Is there a an in What colour shape is How many are objects object of A B C D "
    "yes no top bottom left right"
).split()
WORDS += COLOUR_NAMES + SHAPES + list(PLURAL.values()) + NUMBERS


def build_vocab():
    vocab = {}
    for t in SPECIAL_TOKENS:
        vocab[t] = len(vocab)
    for w in WORDS:
        if w not in vocab:
            vocab[w] = len(vocab)
    return vocab


VOCAB = build_vocab()
ID_TO_TOKEN = {i: t for t, i in VOCAB.items()}
_SPECIAL_RE = re.compile("(" + "|".join(re.escape(t) for t in SPECIAL_TOKENS) + ")")
_WORD_RE = re.compile(r"\w+|[^\w\s]+", re.ASCII)  # == HF "Whitespace" pre-tokenizer


def tokenize(text, add_bos=True):
    """Same algorithm as the tokenizer.json written by export.py (added tokens split first,
    then the Whitespace pre-tokenizer, then a WordLevel lookup; <s> prepended)."""
    ids = [BOS_ID] if add_bos else []
    for part in _SPECIAL_RE.split(text):
        if not part:
            continue
        if part in VOCAB and part in SPECIAL_TOKENS:
            ids.append(VOCAB[part])
            continue
        for w in _WORD_RE.findall(part):
            ids.append(VOCAB.get(w, UNK_ID))
    return ids


def decode(ids, skip_special=True):
    toks = [ID_TO_TOKEN.get(int(i), "<unk>") for i in ids]
    if skip_special:
        toks = [t for t in toks if t not in SPECIAL_TOKENS]
    s = " ".join(toks)
    for p in [".", "?", "!", ","]:
        s = s.replace(" " + p, p)
    return s


def prompt_text(question):
    """What the chat template renders for one user turn (image first) + generation prompt."""
    return SYSTEM_LINE + "\nUSER: <image>\n" + question + " ASSISTANT:"


def expand_image_token(text, n=N_PATCHES):
    return text.replace("<image>", "<image>" * n)


CHAT_TEMPLATE = (
    "{{- '" + SYSTEM_LINE + "\\n' -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}"
    "{{- 'USER: ' -}}"
    "{%- if message['content'] is string -%}"
    "{{- message['content'] -}}"
    "{%- else -%}"
    "{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}{{- '<image>\\n' -}}"
    "{%- elif item['type'] == 'text' -%}{{- item['text'] -}}{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{- ' ' -}}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{- 'ASSISTANT: ' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for item in message['content'] -%}{%- if item['type'] == 'text' -%}{{- item['text'] -}}{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{{- '</s>' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- 'ASSISTANT:' -}}{%- endif -%}"
)

# ----------------------------------------------------------------------------- scenes


def random_scene(rng, n_objects=None, forced=None):
    """A scene: list of 4 cells, each None or (shape, colour). `forced` is a list of
    (shape, colour) placed first at random cells."""
    cells = [None] * 4
    order = list(range(4))
    rng.shuffle(order)
    forced = list(forced or [])
    if n_objects is None:
        n_objects = rng.randint(max(1, len(forced)), 4)
    for k in range(n_objects):
        if k < len(forced):
            cells[order[k]] = forced[k]
        else:
            cells[order[k]] = (rng.choice(SHAPES), rng.choice(COLOUR_NAMES))
    return cells


def render(cells, rng):
    img = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), BACKGROUND)
    d = ImageDraw.Draw(img)
    half = IMAGE_SIZE // 2
    for idx, obj in enumerate(cells):
        if obj is None:
            continue
        shape, colour = obj
        rgb = COLOURS[colour]
        size = rng.randint(18, 26)
        cx = (idx % 2) * half + half // 2 + rng.randint(-2, 2)
        cy = (idx // 2) * half + half // 2 + rng.randint(-2, 2)
        r = size / 2
        x0, y0, x1, y1 = cx - r, cy - r, cx + r, cy + r
        if shape == "circle":
            d.ellipse([x0, y0, x1, y1], fill=rgb)
        elif shape == "square":
            rr = r * 0.85
            d.rectangle([cx - rr, cy - rr, cx + rr, cy + rr], fill=rgb)
        elif shape == "triangle":
            d.polygon([(cx, y0), (x1, y1), (x0, y1)], fill=rgb)
        elif shape == "diamond":
            d.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=rgb)
    return img


def _present(cells):
    return [c for c in cells if c is not None]


def make_item(rng, family):
    """Returns (cells, question, answer, choices or None)."""
    if family == "pope":
        want_yes = rng.random() < 0.5
        form = rng.random()
        if form < 0.75:  # colour + shape
            if want_yes:
                target = (rng.choice(SHAPES), rng.choice(COLOUR_NAMES))
                cells = random_scene(rng, forced=[target])
            else:
                cells = random_scene(rng)
                present = set(_present(cells))
                absent = [(s, c) for s in SHAPES for c in COLOUR_NAMES if (s, c) not in present]
                # POPE "adversarial": prefer a combination sharing shape or colour with the scene
                adv = [a for a in absent if any(a[0] == p[0] or a[1] == p[1] for p in present)]
                target = rng.choice(adv if adv and rng.random() < 0.7 else absent)
            q = f"Is there a {target[1]} {target[0]} in the image?"
        else:  # shape only
            if want_yes:
                s = rng.choice(SHAPES)
                cells = random_scene(rng, forced=[(s, rng.choice(COLOUR_NAMES))])
            else:
                s = rng.choice(SHAPES)
                others = [x for x in SHAPES if x != s]
                n = rng.randint(1, 4)
                cells = random_scene(rng, n_objects=n,
                                     forced=[(rng.choice(others), rng.choice(COLOUR_NAMES)) for _ in range(n)])
            target = (s, None)
            q = f"Is there a {s} in the image?"
        return cells, q, ("yes" if want_yes else "no"), None

    if family == "count":
        k = rng.randint(1, 4)
        form = rng.random()
        if form < 0.4:  # shape count
            s = rng.choice(SHAPES)
            others = [x for x in SHAPES if x != s]
            n = rng.randint(k, 4)
            forced = [(s, rng.choice(COLOUR_NAMES)) for _ in range(k)]
            forced += [(rng.choice(others), rng.choice(COLOUR_NAMES)) for _ in range(n - k)]
            cells = random_scene(rng, n_objects=n, forced=forced)
            q = f"How many {PLURAL[s]} are there?"
        elif form < 0.7:  # colour count
            c = rng.choice(COLOUR_NAMES)
            others = [x for x in COLOUR_NAMES if x != c]
            n = rng.randint(k, 4)
            forced = [(rng.choice(SHAPES), c) for _ in range(k)]
            forced += [(rng.choice(SHAPES), rng.choice(others)) for _ in range(n - k)]
            cells = random_scene(rng, n_objects=n, forced=forced)
            q = f"How many {c} objects are there?"
        else:  # all objects
            cells = random_scene(rng, n_objects=k)
            q = "How many objects are there?"
        return cells, q, NUMBERS[k - 1], None

    # attr / mcq share the underlying questions
    form = rng.randint(0, 2)
    if form == 0:  # colour of a unique shape
        s = rng.choice(SHAPES)
        c = rng.choice(COLOUR_NAMES)
        others = [x for x in SHAPES if x != s]
        n = rng.randint(1, 4)
        forced = [(s, c)] + [(rng.choice(others), rng.choice(COLOUR_NAMES)) for _ in range(n - 1)]
        cells = random_scene(rng, n_objects=n, forced=forced)
        q, ans, pool = f"What colour is the {s}?", c, COLOUR_NAMES
    elif form == 1:  # shape at a position
        cells = random_scene(rng)
        idx = rng.choice([i for i, x in enumerate(cells) if x is not None])
        q, ans, pool = f"What shape is in the {POSITIONS[idx]}?", cells[idx][0], SHAPES
    else:  # colour at a position
        cells = random_scene(rng)
        idx = rng.choice([i for i, x in enumerate(cells) if x is not None])
        q, ans, pool = f"What colour is the object in the {POSITIONS[idx]}?", cells[idx][1], COLOUR_NAMES
    if family == "attr":
        return cells, q, ans, None
    choices = mcq_choices(pool, rng)
    q = q + " " + " ".join(f"{L}. {w}" for L, w in zip(LETTERS, choices))
    return cells, q, LETTERS[choices.index(ans)], choices


SHUFFLE_MCQ = False  # train.py --shuffle-mcq (MMBench-style; not used by the shipped model)


def mcq_choices(pool, rng):
    """Options in a fixed (canonical) order: red, green, blue, yellow / circle, square,
    triangle, diamond. Shuffled options (MMBench-style) were not learned by this 16-layer,
    96-wide model within the ~1 h CPU budget (stayed at 25 %); see README."""
    choices = list(pool)
    if SHUFFLE_MCQ:
        rng.shuffle(choices)
    return choices


# Extra-turn existence questions: the share asking about a single attribute (shape, and with
# EXISTENCE_COLOUR also colour) rather than a colour+shape pair. train.py --existence-single-p,
# --existence-colour: single-attribute existence is a stepping stone to POPE's conjunctions.
EXISTENCE_SINGLE_P = 0.25
EXISTENCE_COLOUR = False


def question_for_scene(rng, cells, family):
    """A question of `family` about an existing scene (for extra training turns).
    Returns (question, answer) or None if the scene does not allow one."""
    present = _present(cells)
    if not present:
        return None
    if family == "pope":
        if rng.random() < 1 - EXISTENCE_SINGLE_P:
            if rng.random() < 0.5:
                s, c = rng.choice(present)
            else:
                absent = [(s, c) for s in SHAPES for c in COLOUR_NAMES if (s, c) not in present]
                s, c = rng.choice(absent)
            return f"Is there a {c} {s} in the image?", ("yes" if (s, c) in present else "no")
        if EXISTENCE_COLOUR and rng.random() < 0.5:
            c = rng.choice(COLOUR_NAMES)
            return f"Is there a {c} object in the image?", ("yes" if any(p[1] == c for p in present) else "no")
        s = rng.choice(SHAPES)
        return f"Is there a {s} in the image?", ("yes" if any(p[0] == s for p in present) else "no")
    if family == "count":
        form = rng.random()
        if form < 0.4:
            s = rng.choice(present)[0]
            return f"How many {PLURAL[s]} are there?", NUMBERS[sum(p[0] == s for p in present) - 1]
        if form < 0.7:
            c = rng.choice(present)[1]
            return f"How many {c} objects are there?", NUMBERS[sum(p[1] == c for p in present) - 1]
        return "How many objects are there?", NUMBERS[len(present) - 1]
    if family == "caption":
        parts = [f"{POSITIONS[i]} {o[1]} {o[0]} ." for i, o in enumerate(cells) if o is not None]
        return "What is in the image?", " ".join(parts)
    # attr / mcq
    options = []
    unique = [s for s in SHAPES if sum(p[0] == s for p in present) == 1]
    if unique:
        s = rng.choice(unique)
        options.append((f"What colour is the {s}?", [p for p in present if p[0] == s][0][1], COLOUR_NAMES))
    idx = rng.choice([i for i, x in enumerate(cells) if x is not None])
    options.append((f"What shape is in the {POSITIONS[idx]}?", cells[idx][0], SHAPES))
    options.append((f"What colour is the object in the {POSITIONS[idx]}?", cells[idx][1], COLOUR_NAMES))
    q, ans, pool = rng.choice(options)
    if family == "attr":
        return q, ans
    choices = mcq_choices(pool, rng)
    return q + " " + " ".join(f"{L}. {w}" for L, w in zip(LETTERS, choices)), LETTERS[choices.index(ans)]


# ----------------------------------------------------------------------------- preprocessing


def preprocess(img):
    """PIL RGB 64x64 -> float32 [3,64,64]; == CLIPImageProcessor (rescale 1/255, normalise)."""
    a = np.asarray(img.convert("RGB"), dtype=np.float32)
    a = a * np.float32(1 / 255)
    a = (a - np.asarray(IMAGE_MEAN, dtype=np.float32)) / np.asarray(IMAGE_STD, dtype=np.float32)
    return a.transpose(2, 0, 1).copy()


# ----------------------------------------------------------------------------- model
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

DEFAULT_CFG = dict(
    vocab_size=len(VOCAB),
    hidden_size=96,
    num_hidden_layers=16,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=24,
    intermediate_size=256,
    rms_norm_eps=1e-5,
    rope_theta=10000.0,
    max_position_embeddings=256,
    vision_hidden_size=64,
    vision_layers=2,
    vision_heads=4,
    vision_intermediate_size=192,
    layer_norm_eps=1e-5,
)


class VisionLayer(nn.Module):
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

    def forward(self, x):
        B, N, D = x.shape
        hd = D // self.heads
        h = self.layer_norm1(x)
        q = self.q_proj(h).view(B, N, self.heads, hd).transpose(1, 2)
        k = self.k_proj(h).view(B, N, self.heads, hd).transpose(1, 2)
        v = self.v_proj(h).view(B, N, self.heads, hd).transpose(1, 2)
        a = torch.softmax(q @ k.transpose(2, 3) / math.sqrt(hd), dim=-1) @ v
        x = x + self.out_proj(a.transpose(1, 2).reshape(B, N, D))
        x = x + self.fc2(F.gelu(self.fc1(self.layer_norm2(x))))
        return x


class VisionTower(nn.Module):
    """ViT: conv patch embedding, CLS + learned positions, pre-LN, transformer layers.
    Then the LLaVA projector (Linear-GELU-Linear) on the patch tokens (CLS dropped)."""

    def __init__(self, cfg):
        super().__init__()
        d = cfg["vision_hidden_size"]
        self.patch_embedding = nn.Conv2d(3, d, PATCH, PATCH, bias=False)
        self.class_embedding = nn.Parameter(torch.randn(d) * 0.02)
        self.position_embedding = nn.Parameter(torch.randn(N_PATCHES + 1, d) * 0.02)
        self.pre_layrnorm = nn.LayerNorm(d, eps=cfg["layer_norm_eps"])
        self.layers = nn.ModuleList(
            [VisionLayer(d, cfg["vision_heads"], cfg["vision_intermediate_size"], cfg["layer_norm_eps"])
             for _ in range(cfg["vision_layers"])])
        self.linear_1 = nn.Linear(d, cfg["hidden_size"])
        self.linear_2 = nn.Linear(cfg["hidden_size"], cfg["hidden_size"])

    def forward(self, pixel_values):
        x = self.patch_embedding(pixel_values)  # [B,d,8,8]
        B = x.shape[0]
        x = x.flatten(2).transpose(1, 2)  # [B,64,d]
        cls = self.class_embedding.view(1, 1, -1).expand(B, 1, -1)
        x = torch.cat([cls, x], dim=1) + self.position_embedding.unsqueeze(0)
        x = self.pre_layrnorm(x)
        for layer in self.layers:
            x = layer(x)
        x = x[:, 1:]  # vision_feature_select_strategy "default": drop CLS
        return self.linear_2(F.gelu(self.linear_1(x)))


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        var = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(var + self.eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def repeat_kv(x, n_rep):
    """HF Llama's repeat_kv (expand + reshape; repeat_interleave exports a broken graph)."""
    if n_rep == 1:
        return x
    b, kvh, s, d = x.shape
    return x[:, :, None, :, :].expand(b, kvh, n_rep, s, d).reshape(b, kvh * n_rep, s, d)


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        H, nh, nkv, hd = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
        self.nh, self.nkv, self.hd = nh, nkv, hd
        self.q_proj = nn.Linear(H, nh * hd, bias=False)
        self.k_proj = nn.Linear(H, nkv * hd, bias=False)
        self.v_proj = nn.Linear(H, nkv * hd, bias=False)
        self.o_proj = nn.Linear(nh * hd, H, bias=False)

    def forward(self, x, cos, sin, mask, past_k=None, past_v=None):
        B, S, _ = x.shape
        q = self.q_proj(x).view(B, S, self.nh, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(B, S, self.nkv, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(B, S, self.nkv, self.hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if past_k is not None:
            k = torch.cat([past_k, k], dim=2)
            v = torch.cat([past_v, v], dim=2)
        present = (k, v)
        rep = self.nh // self.nkv
        kk, vv = repeat_kv(k, rep), repeat_kv(v, rep)
        scores = torch.matmul(q, kk.transpose(2, 3)) / math.sqrt(self.hd) + mask
        probs = torch.softmax(scores, dim=-1)
        out = torch.matmul(probs, vv).transpose(1, 2).reshape(B, S, self.nh * self.hd)
        return self.o_proj(out), present, probs


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        H, I = cfg["hidden_size"], cfg["intermediate_size"]
        self.gate_proj = nn.Linear(H, I, bias=False)
        self.up_proj = nn.Linear(H, I, bias=False)
        self.down_proj = nn.Linear(I, H, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin, mask, past_k=None, past_v=None):
        a, present, probs = self.self_attn(self.input_layernorm(x), cos, sin, mask, past_k, past_v)
        x = x + a
        x = x + self.mlp(self.post_attention_layernorm(x))
        return x, present, probs


class LlamaModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg["vocab_size"], cfg["hidden_size"])
        self.layers = nn.ModuleList([DecoderLayer(cfg) for _ in range(cfg["num_hidden_layers"])])
        self.norm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])
        hd = cfg["head_dim"]
        inv_freq = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, inputs_embeds, attention_mask, position_ids, past=None, skip=(), hooks=None):
        """past: list of (k, v) per layer or None. Returns hidden, presents.
        attention_mask [B, P+S] (1 keep, 0 pad). skip: layer indices bypassed (identity)."""
        B, S, _ = inputs_embeds.shape
        total = attention_mask.shape[1]
        past_len = total - S
        freqs = position_ids[:, :, None].float() * self.inv_freq[None, None, :]
        emb = torch.cat([freqs, freqs], dim=-1)
        cos = emb.cos()[:, None, :, :]
        sin = emb.sin()[:, None, :, :]
        q_idx = torch.arange(S, device=inputs_embeds.device) + past_len
        k_idx = torch.arange(total, device=inputs_embeds.device)
        causal = k_idx[None, :] <= q_idx[:, None]  # [S, total]
        allowed = causal[None, None, :, :] & (attention_mask[:, None, None, :] > 0)
        mask = (~allowed).to(inputs_embeds.dtype) * -1e9
        x = inputs_embeds
        presents = []
        for i, layer in enumerate(self.layers):
            pk, pv = (past[i] if past is not None else (None, None))
            if i in skip:
                presents.append(None)
                continue
            x_in = x
            x, present, probs = layer(x, cos, sin, mask, pk, pv)
            if hooks is not None:
                hooks(i, x_in, x, probs)
            presents.append(present)
        return self.norm(x), presents


class TinyLlava(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.vision = VisionTower(cfg)
        self.model = LlamaModel(cfg)
        self.lm_head = nn.Linear(cfg["hidden_size"], cfg["vocab_size"], bias=False)

    def embed(self, input_ids, pixel_values):
        emb = self.model.embed_tokens(input_ids)
        feats = self.vision(pixel_values)  # [B,64,H]
        m = (input_ids == IMAGE_ID)
        emb = emb.clone()
        emb[m] = feats.reshape(-1, feats.shape[-1]).to(emb.dtype)
        return emb

    def forward(self, input_ids, pixel_values, attention_mask=None, skip=(), hooks=None):
        emb = self.embed(input_ids, pixel_values)
        B, S = input_ids.shape
        if attention_mask is None:
            attention_mask = torch.ones(B, S, dtype=torch.long)
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        h, _ = self.model(emb, attention_mask, position_ids, skip=skip, hooks=hooks)
        return self.lm_head(h)


def init_weights(model, seed, scheme="scaled"):
    """"gpt2": every matrix N(0, 0.02) (o_proj/down_proj 0.02/sqrt(2L)). "scaled": decoder and
    projector matrices N(0, 1/fan_in) (o_proj/down_proj divided by sqrt(2L)), token embeddings
    N(0, 1), lm_head N(0, 0.02), vision tower as gpt2. With hidden 96, N(0, 0.02) leaves the
    attention logits ~0 for hundreds of steps (measured: no visual learning in 400 steps)."""
    g = torch.Generator().manual_seed(seed)
    n_layers = model.cfg["num_hidden_layers"]
    for name, p in model.named_parameters():
        if p.dim() >= 2 and "position_embedding" not in name:
            std = 0.02
            if scheme == "scaled" and not name.startswith("vision.layers") and "patch_embedding" not in name:
                if name.startswith("lm_head"):
                    std = 0.02
                elif "embed_tokens" in name:
                    std = 1.0
                else:
                    std = 1.0 / math.sqrt(p.shape[1])
            if name.endswith("o_proj.weight") or name.endswith("down_proj.weight"):
                std = std / math.sqrt(2 * n_layers)
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=g) * std)
        elif name.endswith(".bias"):
            with torch.no_grad():
                p.zero_()


def collate(items, images):
    """items: list of (ids, answer_ids) or of (ids, target_mask) sequences; images: float32
    [B,3,64,64]. Right-padded batch; labels -100 except answer tokens (answer + </s>)."""
    seqs = []
    for p, a in items:
        if a and isinstance(a[0], bool):
            seqs.append((p, a))
        else:
            seqs.append((p + a, [False] * len(p) + [True] * len(a)))
    L = max(len(s) for s, _ in seqs)
    B = len(items)
    ids = torch.full((B, L), PAD_ID, dtype=torch.long)
    labels = torch.full((B, L), -100, dtype=torch.long)
    am = torch.zeros((B, L), dtype=torch.long)
    for b, (seq, tgt) in enumerate(seqs):
        ids[b, : len(seq)] = torch.tensor(seq)
        am[b, : len(seq)] = 1
        # predict token t from position t-1
        for t in range(1, len(seq)):
            if tgt[t]:
                labels[b, t - 1] = seq[t]
    return ids, am, labels, torch.from_numpy(np.stack(images))


def multiturn_ids(turns):
    """turns: [(question, answer), ...] for one image -> (ids, target mask). The text is what
    the chat template renders for that conversation; targets are answer tokens and </s>."""
    ids, tgt = [], []
    for k, (q, a) in enumerate(turns):
        text = (SYSTEM_LINE + "\nUSER: <image>\n" if k == 0 else "USER: ") + q + " ASSISTANT:"
        p = tokenize(expand_image_token(text), add_bos=(k == 0))
        ans = tokenize(a, add_bos=False) + [EOS_ID]
        ids += p + ans
        tgt += [False] * len(p) + [True] * len(ans)
    return ids, tgt


def prompt_ids(question):
    return tokenize(expand_image_token(prompt_text(question)))


def answer_ids(answer):
    return tokenize(answer, add_bos=False) + [EOS_ID]
