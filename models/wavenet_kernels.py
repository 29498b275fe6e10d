"""The compiled inner loops of Fast WaveNet generation (numba), imported on first use.

``_step`` feeds one code through every layer (ring buffers of past layer inputs, two taps of
each dilated convolution as one matrix) and the head; ``_feed`` teacher-forces a sequence;
``_generate`` samples, inverting the tempered softmax's CDF with one uniform number per sample.
The gate avoids libm (a rational tanh that LLVM vectorises) and the matrix-vector products run
four rows at a time: about twice as fast on a plain AVX2 CPU (docs/wavenet.md).
"""
from __future__ import annotations

import numpy as np

import numba


def _jit(fn):
    return numba.njit(cache=True, fastmath=True, nogil=True)(fn)


_F = np.float32
_ZERO, _HALF = _F(0.0), _F(0.5)
_TANH_CLIP = _F(7.90531110763549805)
_TANH_P = (_F(4.89352455891786e-03), _F(6.37261928875436e-04), _F(1.48572235717979e-05),
           _F(5.12229709037114e-08), _F(-8.60467152213735e-11), _F(2.00018790482477e-13),
           _F(-2.76076847742355e-16))
_TANH_Q = (_F(4.89352518554385e-03), _F(2.26843463243900e-03), _F(1.18534705686654e-04),
           _F(1.19825839466702e-06))


@numba.njit(inline="always", fastmath=True)
def _tanh(x):
    """float32 tanh as p(x) / q(x) (odd degree 13 over even degree 6), branch-free."""
    x = min(max(x, -_TANH_CLIP), _TANH_CLIP)
    x2 = x * x
    p = _TANH_P[6]
    p = p * x2 + _TANH_P[5]
    p = p * x2 + _TANH_P[4]
    p = p * x2 + _TANH_P[3]
    p = p * x2 + _TANH_P[2]
    p = p * x2 + _TANH_P[1]
    p = (p * x2 + _TANH_P[0]) * x
    q = _TANH_Q[3]
    q = q * x2 + _TANH_Q[2]
    q = q * x2 + _TANH_Q[1]
    q = q * x2 + _TANH_Q[0]
    return p / q


@numba.njit(inline="always", fastmath=True)
def _gate(a, b):
    """The gated unit tanh(a) * sigmoid(b), with sigmoid(b) = (1 + tanh(b / 2)) / 2."""
    return _tanh(a) * (_HALF + _HALF * _tanh(_HALF * b))


@numba.njit(inline="always", fastmath=True)
def _add_matvec(w, x, out):
    """out += w @ x for a row-major (m, n) matrix, four rows per pass over x."""
    m, n = w.shape
    o = 0
    while o + 4 <= m:
        a0, a1, a2, a3 = out[o], out[o + 1], out[o + 2], out[o + 3]
        for i in range(n):
            xi = x[i]
            a0 += w[o, i] * xi
            a1 += w[o + 1, i] * xi
            a2 += w[o + 2, i] * xi
            a3 += w[o + 3, i] * xi
        out[o], out[o + 1], out[o + 2], out[o + 3] = a0, a1, a2, a3
        o += 4
    while o < m:
        a = out[o]
        for i in range(n):
            a += w[o, i] * x[i]
        out[o] = a
        o += 1


@_jit
def _step(code, prev, t, emb0, emb1, wd, bd, wr, br, ws, bs, wh1, bh1, wh2, bh2, dil, hist,
          x2, z, g, skip, hid, logits, cb, t0, hop, wsrc, src, s0):
    """Feed code x[t] (prev = x[t-1], -1 before the start); write the logits for x[t+1].
    cb[k] is every layer's gate bias for the k-th frame from sample t0 on (row 0 also for any
    sample before; the last for any after); an unconditioned model has one row of zeros.
    src[k] is the source of sample s0 + k (zero outside), added through wsrc at x[t+1]."""
    L, twoG, twoR = wd.shape
    R = twoR // 2
    G = twoG // 2
    S = ws.shape[1]
    H = wh1.shape[0]
    Q = wh2.shape[0]
    mask = hist.shape[1] - 1
    row = 0 if t + 1 < t0 else min((t + 1 - t0) // hop, cb.shape[0] - 1)
    bias = cb[row]
    residual = x2[R:]                      # x2 = [the input `dilation` steps ago, the input now]
    # causal input convolution on the one-hot code: two table lookups (bias folded into emb1)
    for i in range(R):
        residual[i] = emb1[code, i]
    if prev >= 0:
        for i in range(R):
            residual[i] += emb0[prev, i]
    srow = t + 1 - s0
    if 0 <= srow < src.shape[0]:
        _add_matvec(wsrc, src[srow], residual)
    for i in range(S):
        skip[i] = bs[i]
    for layer in range(L):
        slot = t & mask
        back = (t - dil[layer]) & mask
        for i in range(R):
            hist[layer, slot, i] = residual[i]
            x2[i] = hist[layer, back, i] if t >= dil[layer] else 0.0
        # dilated convolution: both taps as one (2G x 2R) matrix on [past, now]
        for o in range(twoG):
            z[o] = bd[layer, o] + bias[layer, o]
        _add_matvec(wd[layer], x2, z)
        for o in range(G):
            g[o] = _gate(z[o], z[G + o])
        _add_matvec(ws[layer], g, skip)
        if layer < L - 1:
            for o in range(R):
                residual[o] += br[layer, o]
            _add_matvec(wr[layer], g, residual)
    for i in range(S):
        skip[i] = max(skip[i], _ZERO)
    for o in range(H):
        hid[o] = bh1[o]
    _add_matvec(wh1, skip, hid)
    for o in range(H):
        hid[o] = max(hid[o], _ZERO)
    for o in range(Q):
        logits[o] = bh2[o]
    _add_matvec(wh2, hid, logits)


@_jit
def _draw(logits, temperature, u, weights):
    """Invert the CDF of softmax(logits / temperature) at u (the arg max at temperature 0).
    ``weights`` (float64, one per class) receives the unnormalised probabilities."""
    Q = logits.shape[0]
    best = 0
    for i in range(1, Q):
        if logits[i] > logits[best]:
            best = i
    if temperature <= 0.0:
        return best
    top = np.float64(logits[best])
    total = 0.0
    for i in range(Q):
        weights[i] = np.exp((np.float64(logits[i]) - top) / temperature)
        total += weights[i]
    target = u * total
    acc = 0.0
    for i in range(Q):
        acc += weights[i]
        if acc >= target:
            return i
    return Q - 1


@_jit
def _feed(codes, state, emb0, emb1, wd, bd, wr, br, ws, bs, wh1, bh1, wh2, bh2, dil, hist,
          x2, z, g, skip, hid, logits, cb, wsrc, src, record):
    """Teacher forcing: feed codes; record[i] = logits after codes[i] (if record has rows).
    state: t, previous code, code to feed next, the roll's first sample, samples per frame,
    the source's first sample."""
    for i in range(codes.shape[0]):
        _step(codes[i], state[1], state[0], emb0, emb1, wd, bd, wr, br, ws, bs, wh1, bh1, wh2,
              bh2, dil, hist, x2, z, g, skip, hid, logits, cb, state[3], state[4], wsrc, src,
              state[5])
        state[1] = codes[i]
        state[0] += 1
        if record.shape[0] > 0:
            record[i, :] = logits


@_jit
def _generate(n, u, temperature, state, emb0, emb1, wd, bd, wr, br, ws, bs, wh1, bh1, wh2, bh2,
              dil, hist, x2, z, g, skip, hid, logits, cb, wsrc, src, out):
    """Sample n codes; state as for _feed."""
    weights = np.empty(logits.shape[0], np.float64)
    for i in range(n):
        code = state[2]
        _step(code, state[1], state[0], emb0, emb1, wd, bd, wr, br, ws, bs, wh1, bh1, wh2, bh2,
              dil, hist, x2, z, g, skip, hid, logits, cb, state[3], state[4], wsrc, src,
              state[5])
        state[1] = code
        state[0] += 1
        nxt = _draw(logits, temperature, u[i], weights)
        out[i] = nxt
        state[2] = nxt
