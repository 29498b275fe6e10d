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
import threading
import time
import unicodedata
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .hub import from_pretrained
from .runtime import device, handed_over, start_single_threaded

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
            y = attend(q, k, v, cache, layer)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cache: KVCache,
           layer: int) -> torch.Tensor:
    """Attention of new positions (B, H, T, D) over a layer's cache, which they extend."""
    T, start = q.size(2), cache.length
    cache.k[layer][:, :, start:start + T] = k
    cache.v[layer][:, :, start:start + T] = v
    k, v = cache.k[layer][:, :, :start + T], cache.v[layer][:, :, :start + T]
    if T == 1:    # one new position sees every cached one: no mask
        return F.scaled_dot_product_attention(q, k, v)
    if start == 0:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    # a chunk after a filled cache: causal within the chunk
    mask = torch.ones(T, start + T, dtype=torch.bool, device=q.device).tril(start)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


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

    def decode_many(self, idx: torch.Tensor, pool: KVCache, lengths: torch.Tensor) -> torch.Tensor:
        """One new position for each of the first R rows of a cache ``pool``, each row at its
        own length: ``idx`` (R,) are the rows' last characters, ``lengths`` (R,) how many
        positions each row holds. Every row attends over the longest row's positions with its own
        future masked, so rows of any lengths (several requests) go through each layer together. Writes the new
        keys and values; the caller advances ``lengths``. Returns logits (R, V)."""
        R, block, H = len(idx), self.config.block_size, self.config.n_head
        if int(lengths.max()) >= block:
            raise ValueError("a row of the cache is full")
        x = (self.tok(idx) + self.pos(lengths))[:, None]                       # (R, 1, C)
        rows = torch.arange(R, device=idx.device)
        span = int(lengths.max()) + 1             # keys beyond every row's end are not read
        mask = (torch.arange(span, device=idx.device)[None] <= lengths[:, None])[:, None, None]
        for layer, block_ in enumerate(self.blocks):
            attn = block_.attn
            C = x.size(-1)
            q, k, v = attn.qkv(block_.ln1(x)).view(R, 3, H, C // H).unbind(1)    # (R, H, D)
            keys, values = pool.k[layer], pool.v[layer]
            keys[rows, :, lengths] = k
            values[rows, :, lengths] = v
            y = F.scaled_dot_product_attention(q[:, :, None].contiguous(), keys[:R, :, :span],
                                               values[:R, :, :span], attn_mask=mask)
            x = x + attn.proj(y.reshape(R, 1, C))
            x = x + block_.mlp(block_.ln2(x))
        return F.linear(self.ln_f(x[:, 0]), self.tok.weight)

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


def draw(probs: torch.Tensor, u: float | torch.Tensor) -> torch.Tensor:
    """Invert each row's CDF at the uniform number ``u`` in [0, 1) (one for all rows, or (B,))."""
    cdf = probs.cumsum(-1)
    u = torch.as_tensor(u, dtype=cdf.dtype, device=cdf.device).reshape(-1, 1)
    target = u.expand(probs.size(0), 1) * cdf[:, -1:]
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
        self._batcher: Batcher | None = None

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
        job = Decoding(self, ids, length, temperatures, top_k, top_p, generator)
        pool = self.pool(job.rows) if use_cache else None
        while not job.done:
            if not use_cache:
                logits = self.model(job.history[:, -self.config.block_size:])[:, -1]
            elif job.needs_prefill:
                logits = job.prefill(pool, 0)
            else:
                logits = self.model.decode_many(job.last, pool, job.lengths())
                job.length += 1
            yield job.take(logits)

    def pool(self, rows: int) -> KVCache:
        """A key/value cache of ``rows`` rows that :meth:`CharGPT.decode_many` fills."""
        return KVCache(self.config, rows, self.device, self.model.tok.weight.dtype)

    def batched(self) -> "Batcher":
        """The one :class:`Batcher` of this sampler (started on first use)."""
        with _LOCK:
            if self._batcher is None:
                self._batcher = Batcher(self)
            return self._batcher


_LOCK = threading.Lock()


class Decoding:
    """One request's state while it is sampled: its rows' history, cache and random numbers."""

    def __init__(self, sampler: CharSampler, ids: list[int], length: int,
                 temperatures: Sequence[float], top_k: int, top_p: float,
                 generator: torch.Generator | None):
        self.sampler, self.length_wanted, self.top_k, self.top_p = sampler, length, top_k, top_p
        self.generator = generator
        ids = list(ids) or [sampler.stoi[sampler.start]]
        block = sampler.config.block_size
        self.rows = len(temperatures)
        self.temps = torch.tensor([float(t) for t in temperatures], device=sampler.device)
        self.history = torch.tensor([ids[-block:]], device=sampler.device).repeat(self.rows, 1)
        self.length: int | None = None    # positions cached (in a pool's rows), None before any
        self.index = 0

    @property
    def done(self) -> bool:
        return self.index >= self.length_wanted

    @property
    def needs_prefill(self) -> bool:
        return self.length is None or self.length >= self.sampler.config.block_size

    @property
    def last(self) -> torch.Tensor:
        return self.history[:, -1]

    def lengths(self) -> torch.Tensor:
        return torch.full((self.rows,), self.length, device=self.history.device)

    def context(self) -> torch.Tensor:
        """What a fresh cache is filled with: the context, or its last half once a cache was
        full (rows, positions)."""
        block = self.sampler.config.block_size
        return self.history[:, -(block // 2):] if self.length is not None else self.history[:, -block:]

    def prefill(self, pool: KVCache, slot: int) -> torch.Tensor:
        """Cache the context in rows ``slot`` ... of ``pool``; the logits after it."""
        return prefill_many([self], [slot], pool)[0]

    def take(self, logits: torch.Tensor) -> Step:
        """Draw the next character of every row from ``logits`` (rows, V)."""
        return take_many([self], logits)[0]

    def advance(self, nxt: torch.Tensor, p: torch.Tensor, p1: torch.Tensor) -> Step:
        self.history = torch.cat([self.history, nxt[:, None]], dim=1)
        if self.history.size(1) > 2 * self.sampler.config.block_size:
            self.history = self.history[:, -self.sampler.config.block_size:]
        step = Step(nxt, p, p1, self.index)
        self.index += 1
        return step


def prefill_many(jobs: Sequence[Decoding], slots: Sequence[int], pool: KVCache) -> list[torch.Tensor]:
    """Cache several requests' contexts in their rows of ``pool``, those of equal length in one
    forward pass (thirty visitors' caches fill up in the same round); each one's logits."""
    out: dict[int, torch.Tensor] = {}
    model, config = jobs[0].sampler.model, jobs[0].sampler.config
    groups: dict[int, list[int]] = {}
    contexts = [job.context() for job in jobs]
    for i, c in enumerate(contexts):
        groups.setdefault(c.size(1), []).append(i)
    for n, members in groups.items():
        keep = torch.cat([contexts[i] for i in members])
        cache = KVCache(config, len(keep), keep.device, pool.k[0].dtype)
        logits = model(keep, cache)[:, -1]
        row = 0
        for i in members:
            rows, slot = jobs[i].rows, slots[i]
            for own, shared in zip(cache.k + cache.v, pool.k + pool.v):
                shared[slot:slot + rows, :, :n] = own[row:row + rows, :, :n]
            out[i] = logits[row:row + rows]
            jobs[i].length = n
            row += rows
    return [out[i] for i in range(len(jobs))]


def take_many(jobs: Sequence[Decoding], logits: torch.Tensor) -> list[Step]:
    """Draw the next character of every row of several requests from their stacked ``logits``,
    each request with its own uniform number, temperatures and cut-offs (requests that share
    their top-k and top-p are computed together; row by row it is the same arithmetic)."""
    sizes = [job.rows for job in jobs]
    u = torch.cat([torch.rand((1,), generator=job.generator, device="cpu").expand(job.rows)
                   for job in jobs]).to(logits.device)
    temps = torch.cat([job.temps for job in jobs])
    nxt = torch.empty(len(temps), dtype=torch.long, device=logits.device)
    p = torch.empty(len(temps), device=logits.device)
    starts = [0]
    for n in sizes:
        starts.append(starts[-1] + n)
    groups: dict[tuple[int, float], list[int]] = {}
    for i, job in enumerate(jobs):
        groups.setdefault((job.top_k, job.top_p), []).append(i)
    for (top_k, top_p), members in groups.items():
        rows = torch.cat([torch.arange(starts[i], starts[i + 1]) for i in members]).to(logits.device)
        probs = sampling_probs(logits[rows], temps[rows], top_k, top_p)
        chosen = draw(probs, u[rows])
        nxt[rows] = chosen
        p[rows] = probs.gather(1, chosen[:, None]).squeeze(1)
    p1 = logits.float().softmax(-1).gather(1, nxt[:, None]).squeeze(1)
    return [job.advance(*parts) for job, parts in
            zip(jobs, zip(nxt.split(sizes), p.split(sizes), p1.split(sizes)))]


class _Job:
    """A request in the batcher: its decoding state and what it has produced so far."""

    def __init__(self, decoding: Decoding):
        self.decoding = decoding
        self.steps: list = []                 # Steps, then None at the end (or an exception)
        self.ready = threading.Event()        # set when there is something new to read
        self.gone = threading.Event()         # set when the reader stopped or left
        self.signalled = 0.0
        self.slot: int | None = None          # its first row in the batcher's cache pool


class Batcher:
    """Continuous batching: every request being sampled from one model advances one character
    per round, all of them in one forward pass (:meth:`CharGPT.decode_many`), on one worker
    thread with one intra-op thread. A new request joins at the next round; a closed stream
    leaves at the next round.

    Each request draws from its own generator and keeps its own cache, so its text is the one
    it would get alone (the tests check it); thirty requests cost a few times one, because a
    decoding step of a small model is dominated by reading the weights, not by the rows.
    Readers are woken at most every ``wake_every`` seconds (and at the first and last step), not
    once per character: thirty threads woken every few milliseconds would cost more than the
    model.
    """

    def __init__(self, sampler: CharSampler, max_rows: int = 256, wake_every: float = 0.04):
        self.sampler, self.max_rows, self.wake_every = sampler, max_rows, wake_every
        self.jobs: list[_Job] = []
        self.waiting: list[_Job] = []
        self.wake = threading.Condition()
        self.rounds = 0            # forward passes so far, for the benchmark
        start_single_threaded(self._work, "charlm-batcher")

    def stream(self, ids: list[int], length: int, temperatures: Sequence[float],
               top_k: int = 0, top_p: float = 1.0,
               generator: torch.Generator | None = None) -> Iterator[Step]:
        """As :meth:`CharSampler.stream`, sampled together with every other request."""
        if len(temperatures) > self.max_rows:
            raise ValueError(f"at most {self.max_rows} rows per request")
        job = _Job(Decoding(self.sampler, ids, length, temperatures, top_k, top_p, generator))
        with self.wake:
            self.waiting.append(job)
            self.wake.notify()

        def arrivals():
            read = 0
            while True:
                job.ready.wait()
                job.ready.clear()
                new = job.steps[read:]
                read += len(new)
                yield from new

        try:
            yield from handed_over(arrivals())
        finally:
            job.gone.set()             # the visitor stopped or left: free the row at once

    @property
    def active(self) -> int:
        """Requests being sampled or waiting to join."""
        return len(self.jobs) + len(self.waiting)

    def _admit(self) -> None:
        with self.wake:
            while not self.jobs and not self.waiting:
                self.wake.wait()
            rows = sum(j.decoding.rows for j in self.jobs)
            while self.waiting and rows + self.waiting[0].decoding.rows <= self.max_rows:
                job = self.waiting.pop(0)
                self.jobs.append(job)
                rows += job.decoding.rows

    def _place(self) -> int:
        """Give the jobs consecutive rows of the pool from row 0 (moving the cached rows of
        those that slid down when one before them left; growing the pool when it is short);
        returns the rows in use."""
        row = 0
        for job in self.jobs:
            n = job.decoding.rows
            if job.slot is not None and job.slot != row and job.decoding.length is not None:
                for t in self.pool.k + self.pool.v:
                    t[row:row + n] = t[job.slot:job.slot + n].clone()
            job.slot = row
            row += n
        if row > self.pool.k[0].size(0):
            grown = self.sampler.pool(min(self.max_rows, -(-row // 8) * 8))
            for old, new in zip(self.pool.k + self.pool.v, grown.k + grown.v):
                new[:old.size(0)] = old
            self.pool = grown
        return row

    def _publish(self, job: _Job, item, last: bool) -> None:
        job.steps.append(item)
        now = time.monotonic()
        if last or len(job.steps) == 1 or now - job.signalled >= self.wake_every:
            job.signalled = now
            job.ready.set()

    @torch.inference_mode()
    def _work(self) -> None:
        model = self.sampler.model
        self.pool = self.sampler.pool(8)
        while True:
            self._admit()
            self.jobs = [job for job in self.jobs if not job.gone.is_set()]
            if not self.jobs:
                continue
            try:
                used = self._place()
                fresh = [j for j in self.jobs if j.decoding.needs_prefill]
                logits = {}
                if fresh:
                    filled = prefill_many([j.decoding for j in fresh], [j.slot for j in fresh], self.pool)
                    logits = {id(j): part for j, part in zip(fresh, filled)}
                if len(logits) < len(self.jobs):
                    # the rows of jobs just prefilled ride along: their outputs are dropped and
                    # the position written is past their context (or refilled next round)
                    idx = torch.cat([j.decoding.last for j in self.jobs])
                    lengths = torch.cat([j.decoding.lengths() for j in self.jobs])
                    lengths.clamp_(max=self.sampler.config.block_size - 1)
                    many = model.decode_many(idx, self.pool, lengths)
                    for job, part in zip(self.jobs, many.split([j.decoding.rows for j in self.jobs])):
                        if id(job) not in logits:
                            logits[id(job)] = part
                            job.decoding.length += 1
                self.rounds += 1
                steps = take_many([j.decoding for j in self.jobs],
                                  torch.cat([logits[id(j)] for j in self.jobs]))
                for job, step in zip(self.jobs, steps):
                    self._publish(job, step, False)
                    if job.decoding.done:
                        self._publish(job, None, True)
                self.jobs = [j for j in self.jobs if not j.decoding.done]
                assert used <= self.pool.k[0].size(0)
            except Exception as exc:     # never leave a visitor waiting on a dead worker
                for job in self.jobs:
                    self._publish(job, exc, True)
                self.jobs = []


def _show(ch: str) -> str:
    if ch.isprintable() and not ch.isspace():
        return ch
    return repr(ch)
