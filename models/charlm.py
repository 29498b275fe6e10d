"""A character-level decoder-only transformer (nanoGPT-style) with a key/value cache, and its
sampler: temperature, top-k, top-p, greedy at temperature 0, seeded per request.

    sampler = CharSampler.from_pretrained("charlm-shakespeare")
    ids, notes = sampler.encode("ROMEO:")
    for step in sampler.stream(ids, 200, temperatures=[0.7], generator=generator(0)):
        print(sampler.decode(step.ids), end="")

Sampling draws one uniform number per step from the request's ``torch.Generator`` and inverts
each row's CDF with it, so the same seed gives the same text at a temperature whether that
temperature is sampled alone or in the batched five-temperature comparison.
"""
from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .hub import from_pretrained
from .runtime import device

# characters folded to a near equivalent before the vocabulary is consulted
FOLD = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "`": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u00ab": '"', "\u00bb": '"', "\u2033": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-",
    "\u2212": "-", "\u00a0": " ", "\u2009": " ", "\u202f": " ", "\t": " ", "\r": "",
    "\u2026": "...", "\u00d7": "x", "\u00df": "ss", "\u00e6": "ae", "\u00c6": "AE",
    "\u0153": "oe", "\u0152": "OE", "\u00f8": "o", "\u00d8": "O", "\u0142": "l", "\u0141": "L",
})


@dataclass
class CharLMConfig:
    chars: str = ""          # the vocabulary, in index order
    block_size: int = 256    # context length in characters
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 256
    dropout: float = 0.0
    corpus: str = ""         # what it was trained on, for the UI

    @property
    def vocab_size(self) -> int:
        return len(self.chars)


class KVCache:
    """Preallocated keys and values of every layer for a batch; ``length`` positions are filled."""

    def __init__(self, config: CharLMConfig, batch: int, device, dtype):
        shape = (batch, config.n_head, config.block_size, config.n_embd // config.n_head)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layer)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layer)]
        self.length = 0
        self.capacity = config.block_size


class SelfAttention(nn.Module):
    def __init__(self, c: CharLMConfig):
        super().__init__()
        self.n_head = c.n_head
        self.qkv = nn.Linear(c.n_embd, 3 * c.n_embd)
        self.proj = nn.Linear(c.n_embd, c.n_embd)
        self.dropout = c.dropout

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_head, C // self.n_head).permute(2, 0, 3, 1, 4)
        if cache is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                               dropout_p=self.dropout if self.training else 0.0)
        else:
            start = cache.length
            cache.k[layer][:, :, start:start + T] = k
            cache.v[layer][:, :, start:start + T] = v
            k, v = cache.k[layer][:, :, :start + T], cache.v[layer][:, :, :start + T]
            if T == 1:    # one new position sees every cached one: no mask
                y = F.scaled_dot_product_attention(q, k, v)
            elif start == 0:
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:         # a chunk after a filled cache: causal within the chunk
                mask = torch.ones(T, start + T, dtype=torch.bool, device=x.device).tril(start)
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    def __init__(self, c: CharLMConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(c.n_embd)
        self.attn = SelfAttention(c)
        self.ln2 = nn.LayerNorm(c.n_embd)
        self.mlp = nn.Sequential(nn.Linear(c.n_embd, 4 * c.n_embd), nn.GELU(),
                                 nn.Linear(4 * c.n_embd, c.n_embd), nn.Dropout(c.dropout))
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x, cache=None, layer=0):
        x = x + self.drop(self.attn(self.ln1(x), cache, layer))
        return x + self.mlp(self.ln2(x))


class CharGPT(nn.Module):
    """Token + learned position embeddings, pre-LayerNorm blocks, a tied output head."""

    config_class = CharLMConfig
    model_type = "char-gpt"

    def __init__(self, config: CharLMConfig):
        super().__init__()
        self.config = config
        self.tok = nn.Embedding(config.vocab_size, config.n_embd)
        self.pos = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2's scaled init of residual projections
            if name.endswith(("proj.weight", "mlp.2.weight")):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """Logits (B, T, V) for every position of ``idx`` (B, T); with a cache, ``idx`` continues
        the cached positions and the cache is extended."""
        B, T = idx.shape
        start = cache.length if cache is not None else 0
        if start + T > self.config.block_size:
            raise ValueError(f"{start + T} positions exceed the context of {self.config.block_size}")
        pos = torch.arange(start, start + T, device=idx.device)
        x = self.drop(self.tok(idx) + self.pos(pos))
        for i, block in enumerate(self.blocks):
            x = block(x, cache, i)
        if cache is not None:
            cache.length += T
        return F.linear(self.ln_f(x), self.tok.weight)

    def loss(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = self(idx)
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))


class PackedLinear(nn.Module):
    """``nn.Linear`` with the weight kept transposed, (in, out) and contiguous: the same maths,
    but a one-position input (a decoding step) streams the weights in memory order, which on CPU
    is about twice as fast as the (out, in) layout."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.weight_t = nn.Parameter(linear.weight.detach().t().contiguous(), requires_grad=False)
        self.bias = nn.Parameter(linear.bias.detach().clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.addmm(self.bias, x.reshape(-1, x.size(-1)), self.weight_t)
        return y.view(*x.shape[:-1], y.size(-1))


def pack_for_decoding(model: CharGPT) -> CharGPT:
    """Swap every linear layer of the blocks for a :class:`PackedLinear` (in place, for inference)."""
    for block in model.blocks:
        attn, mlp = block.attn, block.mlp
        if isinstance(attn.qkv, nn.Linear):
            attn.qkv, attn.proj = PackedLinear(attn.qkv), PackedLinear(attn.proj)
            mlp[0], mlp[2] = PackedLinear(mlp[0]), PackedLinear(mlp[2])
    return model


# ---------------------------------------------------------------- sampling


def sampling_probs(logits: torch.Tensor, temperature: torch.Tensor | float, top_k: int = 0,
                   top_p: float = 1.0) -> torch.Tensor:
    """The distribution a character is drawn from: softmax(logits / T) restricted to the top-k
    and to the smallest top-p nucleus, renormalised.  T = 0 means greedy (all mass on the argmax).

    ``logits`` is (B, V); ``temperature`` a float or a (B,) tensor.
    """
    logits = logits.float()
    B, V = logits.shape
    t = torch.as_tensor(temperature, dtype=logits.dtype, device=logits.device).reshape(-1, 1)
    t = t.expand(B, 1)
    greedy = t <= 0
    scaled = logits / torch.where(greedy, torch.ones_like(t), t)
    if 0 < top_k < V:
        kth = scaled.topk(top_k, dim=-1).values[:, -1:]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    probs = scaled.softmax(-1)
    if top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        before = sorted_p.cumsum(-1) - sorted_p          # mass of strictly more likely chars
        drop_sorted = before >= top_p                    # the first char is always kept
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        probs = probs.masked_fill(drop, 0.0)
        probs = probs / probs.sum(-1, keepdim=True)
    if greedy.any():
        onehot = F.one_hot(logits.argmax(-1), V).to(probs.dtype)
        probs = torch.where(greedy, onehot, probs)
    return probs


def draw(probs: torch.Tensor, u: float) -> torch.Tensor:
    """Invert each row's CDF at the same uniform number ``u`` in [0, 1)."""
    cdf = probs.cumsum(-1)
    target = torch.full((probs.size(0), 1), u, dtype=cdf.dtype, device=cdf.device) * cdf[:, -1:]
    idx = torch.searchsorted(cdf, target, right=True).squeeze(1)
    idx = idx.clamp_max(probs.size(1) - 1)
    # never return a zero-probability character (u * total can land on a flat end of the CDF)
    bad = probs.gather(1, idx[:, None]).squeeze(1) <= 0
    if bad.any():
        idx = torch.where(bad, probs.argmax(-1), idx)
    return idx


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of each row."""
    p = probs.clamp_min(1e-30)
    return -(probs * p.log()).sum(-1)


@dataclass
class Step:
    """One sampled position for every row of the batch."""
    ids: torch.Tensor       # (B,) sampled character indices
    prob: torch.Tensor      # (B,) probability under the distribution it was drawn from
    prob_t1: torch.Tensor   # (B,) probability under the plain model (temperature 1)
    index: int              # 0-based number of this step


class CharSampler:
    """Encode prompts for a model's vocabulary and stream samples with a KV cache."""

    def __init__(self, model: CharGPT):
        self.model = pack_for_decoding(model.eval())
        self.config = model.config
        self.stoi = {ch: i for i, ch in enumerate(self.config.chars)}
        self.start = "\n" if "\n" in self.stoi else self.config.chars[0]

    @classmethod
    def from_pretrained(cls, name: str) -> "CharSampler":
        return cls(from_pretrained(CharGPT, name, device=device()))

    @property
    def device(self):
        return self.model.tok.weight.device

    def encode(self, text: str) -> tuple[list[int], list[str]]:
        """Indices of ``text``; characters outside the vocabulary are folded to a near
        equivalent (curly quotes, accents, dashes) or dropped.  Returns notes saying which."""
        ids: list[int] = []
        mapped: dict[str, str] = {}
        dropped: dict[str, int] = {}
        for ch in text:
            if ch in self.stoi:
                ids.append(self.stoi[ch])
                continue
            alt = self.fold(ch)
            if alt and all(a in self.stoi for a in alt):
                ids.extend(self.stoi[a] for a in alt)
                mapped[ch] = alt
            else:
                dropped[ch] = dropped.get(ch, 0) + 1
        notes = []
        if mapped:
            notes.append("mapped to the model's alphabet: " + ", ".join(
                f"{_show(a)} -> {_show(b)}" for a, b in list(mapped.items())[:8]))
        if dropped:
            notes.append(f"dropped {sum(dropped.values())} character(s) the model never saw: "
                         + " ".join(_show(c) for c in list(dropped)[:12]))
        return ids, notes

    def fold(self, ch: str) -> str:
        alt = ch.translate(FOLD)
        if alt != ch:
            return alt
        decomposed = unicodedata.normalize("NFKD", ch)
        alt = "".join(c for c in decomposed if not unicodedata.combining(c))
        if alt != ch and alt:
            return alt
        for other in (ch.lower(), ch.upper()):   # e.g. a lowercase-only corpus
            if other != ch and other in self.stoi:
                return other
        return ""

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        if isinstance(ids, torch.Tensor):
            ids = ids.reshape(-1).tolist()
        return "".join(self.config.chars[i] for i in ids)

    @torch.inference_mode()
    def next_distribution(self, ids: list[int]) -> torch.Tensor:
        """Logits for the character after ``ids`` (the last ``block_size`` of them)."""
        ids = ids or [self.stoi[self.start]]
        ctx = torch.tensor([ids[-self.config.block_size:]], device=self.device)
        return self.model(ctx)[0, -1].float()

    @torch.inference_mode()
    def stream(self, ids: list[int], length: int, temperatures: Sequence[float],
               top_k: int = 0, top_p: float = 1.0, generator: torch.Generator | None = None,
               use_cache: bool = True) -> Iterator[Step]:
        """Sample ``length`` characters after ``ids`` for each temperature (one row each).

        With ``use_cache=False`` every step recomputes the last ``block_size`` characters (as
        nanoGPT's ``generate`` does), for checking and for the benchmark; the samples are the same
        while the text fits the context. Past it, the cached path rebuilds its cache from the
        last half of the context (so the two paths then read slightly different contexts).
        """
        model, block = self.model, self.config.block_size
        ids = list(ids) or [self.stoi[self.start]]
        B = len(temperatures)
        temps = torch.tensor([float(t) for t in temperatures], device=self.device)
        history = torch.tensor([ids[-block:]], device=self.device).repeat(B, 1)
        cache: KVCache | None = None
        dtype = model.tok.weight.dtype
        for step in range(length):
            if not use_cache:
                logits = model(history[:, -block:])[:, -1]
            elif cache is None or cache.length >= block:
                keep = history[:, -(block // 2):] if cache is not None else history[:, -block:]
                cache = KVCache(self.config, B, self.device, dtype)
                logits = model(keep, cache)[:, -1]
            else:
                logits = model(history[:, -1:], cache)[:, -1]
            probs = sampling_probs(logits, temps, top_k, top_p)
            u = torch.rand((), generator=generator, device="cpu").item()
            nxt = draw(probs, u)
            p = probs.gather(1, nxt[:, None]).squeeze(1)
            p1 = logits.float().softmax(-1).gather(1, nxt[:, None]).squeeze(1)
            history = torch.cat([history, nxt[:, None]], dim=1)
            if history.size(1) > 2 * block:
                history = history[:, -block:]
            yield Step(nxt, p, p1, step)


def _show(ch: str) -> str:
    if ch.isprintable() and not ch.isspace():
        return ch
    return repr(ch)
