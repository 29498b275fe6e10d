"""The compiled inner loops of Fast WaveNet generation (numba), imported on first use.

``_step`` feeds one code through every layer (ring buffers of past layer inputs, two taps of
each dilated convolution as one matrix) and the head; ``_feed`` teacher-forces a sequence;
``_generate`` samples, inverting the tempered softmax's CDF with one uniform number per sample
(with a floor: LPCNet's cut of unlikely codes, only while the output is sounding).
The gate avoids libm (a rational tanh that LLVM vectorises) and the matrix-vector products run
32 outputs at a time with their sums in registers (docs/wavenet.md).
"""
from __future__ import annotations

import numpy as np

import numba

# LLVM's SLP vectoriser (off in numba by default) packs the tiles' written-out sums into vector
# FMAs; read by numba at each compilation, so it holds for the kernels below
numba.config.SLP_VECTORIZE = 1

# fastmath without reassociation or reciprocal tricks: every output is its bias plus its inputs
# in order, one fused multiply-add each, whatever the vector width LLVM picks
_FLAGS = {"nnan", "ninf", "nsz", "contract", "afn"}


def _jit(fn):
    return numba.njit(cache=True, fastmath=_FLAGS, nogil=True)(fn)


_F = np.float32
_ZERO, _HALF = _F(0.0), _F(0.5)
_TANH_CLIP = _F(7.90531110763549805)
_TANH_P = (_F(4.89352455891786e-03), _F(6.37261928875436e-04), _F(1.48572235717979e-05),
           _F(5.12229709037114e-08), _F(-8.60467152213735e-11), _F(2.00018790482477e-13),
           _F(-2.76076847742355e-16))
_TANH_Q = (_F(4.89352518554385e-03), _F(2.26843463243900e-03), _F(1.18534705686654e-04),
           _F(1.19825839466702e-06))


@numba.njit(inline="always", fastmath=_FLAGS)
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


@numba.njit(inline="always", fastmath=_FLAGS)
def _gate(a, b):
    """The gated unit tanh(a) * sigmoid(b), with sigmoid(b) = (1 + tanh(b / 2)) / 2."""
    return _tanh(a) * (_HALF + _HALF * _tanh(_HALF * b))


def _unrolled_tile(outputs: int):
    """A compiled tile: out[o + p] += sum over i of wt[i, o + p] * x[i] for p < outputs, the
    sums held in registers through the loop over i and added in order of i. Unsigned indices
    (no negative wrap-around) let LLVM's SLP vectoriser turn the written-out sums into vector
    FMAs."""
    src = ["def tile(x, wt, out, o, n):"]
    src += [f"    a{p} = out[o + U({p})]" for p in range(outputs)]
    src += ["    for i in range(U(0), n):", "        xi = x[i]"]
    src += [f"        a{p} += wt[i, o + U({p})] * xi" for p in range(outputs)]
    src += [f"    out[o + U({p})] = a{p}" for p in range(outputs)]
    scope = {"U": np.uint64}
    exec("\n".join(src), scope)
    return numba.njit(inline="always", fastmath=_FLAGS)(scope["tile"])


_U = np.uint64
_vec32, _vec8, _vec1 = _unrolled_tile(32), _unrolled_tile(8), _unrolled_tile(1)


@numba.njit(inline="always", fastmath=_FLAGS)
def _add_vecmat(x, wt, out):
    """out += x @ wt for a row-major (n, m) matrix (a layer's weight transposed): 32, then 8,
    then 1 outputs at a time, each the sum of its inputs in order."""
    n, m = wt.shape
    n, m, o = _U(n), _U(m), _U(0)
    while o + _U(32) <= m:
        _vec32(x, wt, out, o, n)
        o += _U(32)
    while o + _U(8) <= m:
        _vec8(x, wt, out, o, n)
        o += _U(8)
    while o < m:
        _vec1(x, wt, out, o, n)
        o += _U(1)


@_jit
def _step(code, prev, t, emb0, emb1, wd, bd, wr, br, ws, bs, wh1, bh1, wh2, bh2, dil, hist,
          x2, z, g, skip, hid, logits, cb, t0, hop, wsrc, src, s0):
    """Feed code x[t] (prev = x[t-1], -1 before the start); write the logits for x[t+1].
    cb[k] is every layer's gate bias for the k-th frame from sample t0 on (row 0 also for any
    sample before; the last for any after); an unconditioned model has one row of zeros.
    src[k] is the source of sample s0 + k (zero outside), added through wsrc at x[t+1]."""
    L, twoR, twoG = wd.shape              # every matrix transposed: (inputs, outputs)
    R = twoR // 2
    G = twoG // 2
    S = ws.shape[2]
    H = wh1.shape[1]
    Q = wh2.shape[1]
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
        _add_vecmat(src[srow], wsrc, residual)
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
        _add_vecmat(x2, wd[layer], z)
        for o in range(G):
            g[o] = _gate(z[o], z[G + o])
        _add_vecmat(g, ws[layer], skip)
        if layer < L - 1:
            for o in range(R):
                residual[o] += br[layer, o]
            _add_vecmat(g, wr[layer], residual)
    for i in range(S):
        skip[i] = max(skip[i], _ZERO)
    for o in range(H):
        hid[o] = bh1[o]
    _add_vecmat(skip, wh1, hid)
    for o in range(H):
        hid[o] = max(hid[o], _ZERO)
    for o in range(Q):
        logits[o] = bh2[o]
    _add_vecmat(hid, wh2, logits)


# the floor applies while the output's mean distance from silence (codes, a moving average
# over about 50 samples) is over this: from silence, a note starts from the unlikely codes
SOUNDING, SOUND_DECAY = 10.0, 0.98


@_jit
def _draw(logits, temperature, floor, u, weights):
    """Invert the CDF of softmax(logits / temperature) at u (the arg max at temperature 0),
    each probability first lowered by ``floor`` (none below zero; Valin and Skoglund 2019).
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
    if floor > 0.0:
        cut, total = floor * total, 0.0
        for i in range(Q):
            weights[i] = max(weights[i] - cut, 0.0)
            total += weights[i]
        if total <= 0.0:
            return best
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
def _generate(n, u, temperature, floor, sound, state, emb0, emb1, wd, bd, wr, br, ws, bs, wh1,
              bh1, wh2, bh2, dil, hist, x2, z, g, skip, hid, logits, cb, wsrc, src, out):
    """Sample n codes; state as for _feed; sound[0]: the output's moving distance from silence."""
    weights = np.empty(logits.shape[0], np.float64)
    for i in range(n):
        code = state[2]
        _step(code, state[1], state[0], emb0, emb1, wd, bd, wr, br, ws, bs, wh1, bh1, wh2, bh2,
              dil, hist, x2, z, g, skip, hid, logits, cb, state[3], state[4], wsrc, src,
              state[5])
        state[1] = code
        state[0] += 1
        nxt = _draw(logits, temperature, floor if sound[0] > SOUNDING else 0.0, u[i], weights)
        sound[0] = SOUND_DECAY * sound[0] + (1.0 - SOUND_DECAY) * abs(nxt - 127.5)
        out[i] = nxt
        state[2] = nxt
