"""Triton kernels for message passing: deterministic segment-sums, gathers and the
fused first layer of an edge MLP.

Shapes: every tensor is 3-D, ``(B, rows, F)``, features contiguous; index tensors
are int64 and shared by the B batch members. Sums accumulate in float32 (float64
for float64 inputs) whatever the storage type, and run over each segment's rows
in CSR order, so a result is the same bit for bit on every run: no atomics.

* :func:`segment_sum`: ``out[b, s] = sum_{k in ptr[s]:ptr[s+1]} w_k values[b, row_k]``,
  with ``row_k = order[k]`` (or ``k``) and ``w_k = sign[k]`` (or 1). With
  ``order = pair`` and ``sign`` of the half-edges it is the conservative flux scatter.
* :func:`gather`: ``out[b, e] = x[b, index[e]]`` (minus ``x[b, neg_index[e]]`` when given:
  the flux scatter's adjoint).
* :func:`edge_layer`: ``act(edges @ W.T + bias + src_terms[src] + dst_terms[dst])`` for
  each edge, without materialising the three E x H terms separately
  (GraphCast's "concat trick", done in one pass over the edges).

The kernels also run in Triton's interpreter on CPU tensors (``TRITON_INTERPRET=1``
set before triton is imported; triton reads it when kernels are defined). The
interpreter cannot multiply bfloat16 tiles (``tl.dot`` returns garbage), so there
the tiles are converted to float32 first; on a GPU the dot runs on bfloat16.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from triton.runtime.interpreter import InterpretedFunction

SEGMENT_BLOCK_ROWS = 32
GATHER_BLOCK_ROWS = 64
MAX_BLOCK_FEATURES = 128
ACTIVATIONS = {"none": 0, "silu": 1}


@triton.jit
def _segment_sum_kernel(values_ptr, order_ptr, sign_ptr, ptr_ptr, out_ptr, num_features,
                        stride_vb, stride_vr, stride_ob, stride_os,
                        HAS_ORDER: tl.constexpr, HAS_SIGN: tl.constexpr, ACC_DTYPE: tl.constexpr,
                        BLOCK_ROWS: tl.constexpr, BLOCK_F: tl.constexpr):
    seg = tl.program_id(0).to(tl.int64)
    b = tl.program_id(1).to(tl.int64)
    f = tl.program_id(2) * BLOCK_F + tl.arange(0, BLOCK_F)
    fmask = f < num_features
    start = tl.load(ptr_ptr + seg)
    end = tl.load(ptr_ptr + seg + 1)
    acc = tl.zeros((BLOCK_F,), dtype=ACC_DTYPE)
    for k in range(start, end, BLOCK_ROWS):
        pos = k + tl.arange(0, BLOCK_ROWS)
        pmask = pos < end
        if HAS_ORDER:
            rows = tl.load(order_ptr + pos, mask=pmask, other=0)
        else:
            rows = pos
        x = tl.load(values_ptr + b * stride_vb + rows[:, None] * stride_vr + f[None, :],
                    mask=pmask[:, None] & fmask[None, :], other=0.0).to(ACC_DTYPE)
        if HAS_SIGN:
            w = tl.load(sign_ptr + pos, mask=pmask, other=0).to(ACC_DTYPE)
            x = x * w[:, None]
        acc += tl.sum(x, axis=0)
    tl.store(out_ptr + b * stride_ob + seg * stride_os + f, acc.to(out_ptr.dtype.element_ty), mask=fmask)


@triton.jit
def _gather_kernel(x_ptr, index_ptr, neg_index_ptr, out_ptr, num_rows, num_features,
                   stride_xb, stride_xn, stride_ob, stride_or,
                   HAS_NEG: tl.constexpr, ACC_DTYPE: tl.constexpr, BLOCK_ROWS: tl.constexpr, BLOCK_F: tl.constexpr):
    rows = (tl.program_id(0) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)).to(tl.int64)
    b = tl.program_id(1).to(tl.int64)
    f = tl.program_id(2) * BLOCK_F + tl.arange(0, BLOCK_F)
    rmask = rows < num_rows
    mask = rmask[:, None] & (f < num_features)[None, :]
    idx = tl.load(index_ptr + rows, mask=rmask, other=0)
    x = tl.load(x_ptr + b * stride_xb + idx[:, None] * stride_xn + f[None, :], mask=mask, other=0.0)
    if HAS_NEG:
        neg = tl.load(neg_index_ptr + rows, mask=rmask, other=0)
        y = tl.load(x_ptr + b * stride_xb + neg[:, None] * stride_xn + f[None, :], mask=mask, other=0.0)
        x = x.to(ACC_DTYPE) - y.to(ACC_DTYPE)
    tl.store(out_ptr + b * stride_ob + rows[:, None] * stride_or + f[None, :], x.to(out_ptr.dtype.element_ty),
             mask=mask)


@triton.jit
def _edge_layer_kernel(edges_ptr, weight_ptr, bias_ptr, src_terms_ptr, src_ptr, dst_terms_ptr, dst_ptr, out_ptr,
                       num_edges, in_features, out_features,
                       stride_eb, stride_ee, stride_sb, stride_sn, stride_db, stride_dn, stride_ob, stride_oe,
                       HAS_BIAS: tl.constexpr, HAS_DST: tl.constexpr, ACTIVATION: tl.constexpr,
                       ACC_DTYPE: tl.constexpr, UPCAST: tl.constexpr, INPUT_PRECISION: tl.constexpr,
                       BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    rows = (tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    b = tl.program_id(2).to(tl.int64)
    rmask = rows < num_edges
    cmask = cols < out_features
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC_DTYPE)
    for k0 in range(0, in_features, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        kmask = ks < in_features
        a = tl.load(edges_ptr + b * stride_eb + rows[:, None] * stride_ee + ks[None, :],
                    mask=rmask[:, None] & kmask[None, :], other=0.0)
        w = tl.load(weight_ptr + cols[None, :] * in_features + ks[:, None], mask=kmask[:, None] & cmask[None, :],
                    other=0.0)  # (BLOCK_K, BLOCK_N) tile of W.T
        if UPCAST:
            a = a.to(ACC_DTYPE)
            w = w.to(ACC_DTYPE)
        acc += tl.dot(a, w, input_precision=INPUT_PRECISION, out_dtype=ACC_DTYPE)
    mask = rmask[:, None] & cmask[None, :]
    if HAS_BIAS:
        acc += tl.load(bias_ptr + cols, mask=cmask, other=0.0).to(ACC_DTYPE)[None, :]
    src = tl.load(src_ptr + rows, mask=rmask, other=0)
    acc += tl.load(src_terms_ptr + b * stride_sb + src[:, None] * stride_sn + cols[None, :], mask=mask,
                   other=0.0).to(ACC_DTYPE)
    if HAS_DST:
        dst = tl.load(dst_ptr + rows, mask=rmask, other=0)
        acc += tl.load(dst_terms_ptr + b * stride_db + dst[:, None] * stride_dn + cols[None, :], mask=mask,
                       other=0.0).to(ACC_DTYPE)
    if ACTIVATION == 1:
        acc = acc / (1.0 + tl.exp(-acc))
    tl.store(out_ptr + b * stride_ob + rows[:, None] * stride_oe + cols[None, :], acc.to(out_ptr.dtype.element_ty),
             mask=mask)


INTERPRETED = isinstance(_segment_sum_kernel, InterpretedFunction)


def _acc_dtype(dtype: torch.dtype):
    return tl.float64 if dtype == torch.float64 else tl.float32


def _feature_block(num_features: int) -> int:
    return min(MAX_BLOCK_FEATURES, triton.next_power_of_2(max(num_features, 1)))


def segment_sum(values: torch.Tensor, ptr: torch.Tensor, order: torch.Tensor | None = None,
                sign: torch.Tensor | None = None, out_dtype: torch.dtype | None = None) -> torch.Tensor:
    """values (B, R, F) -> (B, S, F) with S = len(ptr) - 1 (see the module docstring)."""
    b, _, f = values.shape
    s = ptr.numel() - 1
    out = values.new_empty((b, s, f), dtype=out_dtype or values.dtype)
    if out.numel() == 0:
        return out
    values = values.contiguous() if values.stride(-1) != 1 else values
    block_f = _feature_block(f)
    grid = (s, b, triton.cdiv(f, block_f))
    _segment_sum_kernel[grid](values, order if order is not None else ptr, sign if sign is not None else ptr, ptr, out,
                              f, values.stride(0), values.stride(1), out.stride(0), out.stride(1),
                              HAS_ORDER=order is not None, HAS_SIGN=sign is not None,
                              ACC_DTYPE=_acc_dtype(values.dtype), BLOCK_ROWS=SEGMENT_BLOCK_ROWS, BLOCK_F=block_f)
    return out


def gather(x: torch.Tensor, index: torch.Tensor, neg_index: torch.Tensor | None = None) -> torch.Tensor:
    """x (B, N, F) -> (B, E, F): ``x[:, index]`` (minus ``x[:, neg_index]``)."""
    b, _, f = x.shape
    e = index.numel()
    out = x.new_empty((b, e, f))
    if out.numel() == 0:
        return out
    x = x.contiguous() if x.stride(-1) != 1 else x
    block_f = _feature_block(f)
    grid = (triton.cdiv(e, GATHER_BLOCK_ROWS), b, triton.cdiv(f, block_f))
    _gather_kernel[grid](x, index, neg_index if neg_index is not None else index, out, e, f,
                         x.stride(0), x.stride(1), out.stride(0), out.stride(1),
                         HAS_NEG=neg_index is not None, ACC_DTYPE=_acc_dtype(x.dtype),
                         BLOCK_ROWS=GATHER_BLOCK_ROWS, BLOCK_F=block_f)
    return out


def edge_layer(edges: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, src_terms: torch.Tensor,
               src: torch.Tensor, dst_terms: torch.Tensor | None, dst: torch.Tensor | None,
               activation: str = "silu", out_dtype: torch.dtype | None = None) -> torch.Tensor:
    """edges (Be, E, K) with Be in {1, B}; weight (H, K); bias (H,); src_terms (B, Ns, H) and
    src (E,); dst_terms (B, Nd, H) and dst (E,) or None -> (B, E, H)."""
    be, e, k = edges.shape
    b, _, h = src_terms.shape
    out = src_terms.new_empty((b, e, h), dtype=out_dtype or src_terms.dtype)
    if out.numel() == 0:
        return out
    edges = edges.contiguous() if edges.stride(-1) != 1 else edges
    weight = weight.contiguous()
    src_terms = src_terms.contiguous() if src_terms.stride(-1) != 1 else src_terms
    if dst_terms is not None and dst_terms.stride(-1) != 1:
        dst_terms = dst_terms.contiguous()
    # float32 tiles multiply in full precision unless torch itself allows TF32 matmuls.
    tf32 = edges.is_cuda and edges.dtype == torch.float32 and torch.backends.cuda.matmul.allow_tf32
    precision = "tf32" if tf32 else "ieee"
    block_m = 64
    block_n = min(64, max(16, triton.next_power_of_2(h)))  # tl.dot needs tiles of at least 16
    block_k = min(32, max(16, triton.next_power_of_2(k)))
    grid = (triton.cdiv(e, block_m), triton.cdiv(h, block_n), b)
    _edge_layer_kernel[grid](
        edges, weight, bias if bias is not None else weight, src_terms, src,
        dst_terms if dst_terms is not None else src_terms, dst if dst is not None else src, out,
        e, k, h, edges.stride(0) if be > 1 else 0, edges.stride(1), src_terms.stride(0), src_terms.stride(1),
        dst_terms.stride(0) if dst_terms is not None else 0, dst_terms.stride(1) if dst_terms is not None else 0,
        out.stride(0), out.stride(1),
        HAS_BIAS=bias is not None, HAS_DST=dst_terms is not None, ACTIVATION=ACTIVATIONS[activation],
        ACC_DTYPE=_acc_dtype(edges.dtype), UPCAST=INTERPRETED,
        INPUT_PRECISION=precision, BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k)
    return out
