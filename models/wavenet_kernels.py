"""The compiled inner loops of Fast WaveNet generation (numba), imported on first use.

``_step`` feeds one code through every layer (ring buffers of past layer inputs, two taps of
each dilated convolution as one matrix) and the head; ``_feed`` teacher-forces a sequence;
``_generate`` samples, inverting the tempered softmax's CDF with one uniform number per sample.
"""
from __future__ import annotations

import numpy as np

import numba


def _jit(fn):
    return numba.njit(cache=True, fastmath=True, nogil=True)(fn)


@_jit
def _step(code, prev, t, emb0, emb1, wd, bd, wr, br, ws, bs, wh1, bh1, wh2, bh2, dil, hist,
          x2, z, g, skip, hid, logits):
    """Feed code x[t] (prev = x[t-1], -1 before the start); write the logits for x[t+1]."""
    L, twoG, twoR = wd.shape
    R = twoR // 2
    G = twoG // 2
    S = ws.shape[1]
    H = wh1.shape[0]
    Q = wh2.shape[0]
    mask = hist.shape[1] - 1
    # causal input convolution on the one-hot code: two table lookups (bias folded into emb1)
    for i in range(R):
        x2[R + i] = emb1[code, i]
    if prev >= 0:
        for i in range(R):
            x2[R + i] += emb0[prev, i]
    for i in range(S):
        skip[i] = bs[i]
    for layer in range(L):
        slot = t & mask
        back = (t - dil[layer]) & mask
        for i in range(R):
            hist[layer, slot, i] = x2[R + i]
            x2[i] = hist[layer, back, i] if t >= dil[layer] else 0.0
        # dilated convolution: both taps as one (2G x 2R) matrix on [past, now]
        for o in range(twoG):
            acc = bd[layer, o]
            for i in range(twoR):
                acc += wd[layer, o, i] * x2[i]
            z[o] = acc
        for o in range(G):
            g[o] = np.tanh(z[o]) / (1.0 + np.exp(-z[G + o]))
        for o in range(S):
            acc = 0.0
            for i in range(G):
                acc += ws[layer, o, i] * g[i]
            skip[o] += acc
        if layer < L - 1:
            for o in range(R):
                acc = br[layer, o]
                for i in range(G):
                    acc += wr[layer, o, i] * g[i]
                x2[R + o] += acc
    for i in range(S):
        skip[i] = max(skip[i], 0.0)
    for o in range(H):
        acc = bh1[o]
        for i in range(S):
            acc += wh1[o, i] * skip[i]
        hid[o] = max(acc, 0.0)
    for o in range(Q):
        acc = bh2[o]
        for i in range(H):
            acc += wh2[o, i] * hid[i]
        logits[o] = acc


@_jit
def _draw(logits, temperature, u):
    Q = logits.shape[0]
    best = 0
    for i in range(1, Q):
        if logits[i] > logits[best]:
            best = i
    if temperature <= 0.0:
        return best
    top = logits[best]
    total = 0.0
    for i in range(Q):
        total += np.exp((np.float64(logits[i]) - top) / temperature)
    target = u * total
    acc = 0.0
    for i in range(Q):
        acc += np.exp((np.float64(logits[i]) - top) / temperature)
        if acc >= target:
            return i
    return Q - 1


@_jit
def _feed(codes, state, emb0, emb1, wd, bd, wr, br, ws, bs, wh1, bh1, wh2, bh2, dil, hist,
          x2, z, g, skip, hid, logits, record):
    """Teacher forcing: feed codes; record[i] = logits after codes[i] (if record has rows)."""
    for i in range(codes.shape[0]):
        _step(codes[i], state[1], state[0], emb0, emb1, wd, bd, wr, br, ws, bs, wh1, bh1, wh2,
              bh2, dil, hist, x2, z, g, skip, hid, logits)
        state[1] = codes[i]
        state[0] += 1
        if record.shape[0] > 0:
            record[i, :] = logits


@_jit
def _generate(n, u, temperature, state, emb0, emb1, wd, bd, wr, br, ws, bs, wh1, bh1, wh2, bh2,
              dil, hist, x2, z, g, skip, hid, logits, out):
    """Sample n codes; state holds (t, previous code, code to feed next)."""
    for i in range(n):
        code = state[2]
        _step(code, state[1], state[0], emb0, emb1, wd, bd, wr, br, ws, bs, wh1, bh1, wh2, bh2,
              dil, hist, x2, z, g, skip, hid, logits)
        state[1] = code
        state[0] += 1
        nxt = _draw(logits, temperature, u[i])
        out[i] = nxt
        state[2] = nxt
