"""The message-passing primitives, on whichever backend is selected.

Public functions take ordinary tensors with the row dimension at ``dim`` (0 for
``(E, ...)``, 1 for ``(B, E, ...)``) and a :class:`Segments` or :class:`HalfEdges`
describing the grouping:

* :func:`segment_sum`: rows summed into their segments (the aggregation of every layer);
* :func:`gather`: ``x[index]``, whose backward is a segment-sum over the same grouping;
* :func:`flux_scatter`: one flux per undirected pair, ``+F`` at ``j`` and ``-F`` at ``i``;
  its backward is :func:`pair_difference`, ``x[j] - x[i]``, and the other way round;
* :func:`edge_layer`: ``act(edges @ W.T + b + src_terms[src] + dst_terms[dst])``, the
  first layer of an edge MLP over ``[edge, sender, receiver]`` without the concatenation.

On the ``torch`` backend they are plain differentiable torch code (``index_add_``,
``index_select`` on the rows of every batch member numbered as one table), exactly the
model's arithmetic before the kernels existed. On the others they are ``torch.library``
custom ops (``earthgraph::...``) with fake implementations, so ``torch.compile`` traces through them, and autograd formulas
built from the same ops, so backward passes are deterministic too: the gradient of a
segment-sum is a gather, and the gradient of a gather a segment-sum in CSR order.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Optional

import torch
from torch import Tensor

from earthgraph.kernels import backends
from earthgraph.kernels.segments import HalfEdges, Segments

ACTIVATIONS = ("none", "silu")


# --- backend implementations on (B, R, F) tensors -------------------------------------

def _sum_rows(values: Tensor, ptr: Tensor, order: Optional[Tensor], sign: Optional[Tensor], backend: str) -> Tensor:
    if backend == "cuda" and sign is None:
        from earthgraph.kernels import cuda_extension

        return cuda_extension.segment_sum(values, ptr, order)
    if backend == "torch_scatter":
        import torch_scatter

        rows = values if order is None else values.index_select(1, order)
        if sign is not None:
            rows = rows * sign.to(rows.dtype).view(1, -1, 1)
        return torch_scatter.segment_csr(rows, ptr.expand(values.shape[0], -1), reduce="sum")
    from earthgraph.kernels import triton_kernels

    return triton_kernels.segment_sum(values, ptr, order, sign)


def _gather_rows(x: Tensor, index: Tensor, neg_index: Optional[Tensor], backend: str) -> Tensor:
    if backend == "torch_scatter":  # a gather has no atomics: torch's own is deterministic
        out = x.index_select(1, index)
        return out - x.index_select(1, neg_index) if neg_index is not None else out
    from earthgraph.kernels import triton_kernels

    return triton_kernels.gather(x, index, neg_index)


# --- the torch backend: rows of every batch member in one flat table ---------------------
# index_add_ and index_select along dim 1 of a (B, R, F) tensor take a slow strided path
# on the CPU (3.5x slower for the processor's edges than along dim 0). Numbering the
# rows b * R + r makes them dim-0 ops on a (B * R, F) view, with the same additions in
# the same order: the same numbers, bit for bit.

def _flat_index(index: Tensor, batch: int, rows: int) -> Tensor:
    """(E,) row indices into a (rows,) table -> (batch * E,) into the flat (batch * rows,) table."""
    if batch == 1:
        return index
    return (torch.arange(batch, device=index.device)[:, None] * rows + index).reshape(-1)


def _torch_sum_rows(values: Tensor, index: Tensor, num_segments: int) -> Tensor:
    """(B, R, F) rows summed into (B, num_segments, F) by ``index`` (R,)."""
    b, r, f = values.shape
    flat = values.reshape(b * r, f)
    out = flat.new_zeros((b * num_segments, f)).index_add_(0, _flat_index(index, b, num_segments), flat)
    return out.view(b, num_segments, f)


def _torch_select_rows(x: Tensor, index: Tensor) -> Tensor:
    """``x.index_select(-2, index)`` for (S, F) or (B, S, F) ``x``, as a dim-0 gather (whose
    backward, an index_add_, is then the fast one too)."""
    if x.dim() == 2:
        return x.index_select(0, index)
    b, s, f = x.shape
    return x.reshape(b * s, f).index_select(0, _flat_index(index, b, s)).view(b, len(index), f)


def _torch_edge_layer(edges: Tensor, weight: Tensor, bias: Optional[Tensor], src_terms: Tensor, src_index: Tensor,
                      dst_terms: Optional[Tensor], dst_index: Optional[Tensor], activation: str,
                      out_dtype: torch.dtype | None = None) -> Tensor:
    """The edge layer in plain torch (node tables with their rows at dim -2)."""
    z = torch.nn.functional.linear(edges, weight, bias) + _torch_select_rows(src_terms, src_index)
    if dst_terms is not None:
        z = z + _torch_select_rows(dst_terms, dst_index)
    z = z if out_dtype is None else z.to(out_dtype)
    return torch.nn.functional.silu(z) if activation == "silu" else z


def _edge_rows(edges: Tensor, weight: Tensor, bias: Optional[Tensor], src_terms: Tensor, src_index: Tensor,
               dst_terms: Optional[Tensor], dst_index: Optional[Tensor], activation: str, backend: str,
               out_dtype: torch.dtype | None = None) -> Tensor:
    if backend == "torch_scatter":
        return _torch_edge_layer(edges, weight, bias, src_terms, src_index, dst_terms, dst_index, activation, out_dtype)
    from earthgraph.kernels import triton_kernels

    return triton_kernels.edge_layer(edges, weight, bias, src_terms, src_index, dst_terms, dst_index, activation,
                                     out_dtype)


# --- custom ops ------------------------------------------------------------------------

@torch.library.custom_op("earthgraph::segment_sum", mutates_args=())
def _segment_sum_op(values: Tensor, index: Tensor, ptr: Tensor, order: Optional[Tensor], backend: str) -> Tensor:
    return _sum_rows(values, ptr, order, None, backend)


@torch.library.custom_op("earthgraph::gather", mutates_args=())
def _gather_op(x: Tensor, index: Tensor, ptr: Tensor, order: Optional[Tensor], backend: str) -> Tensor:
    return _gather_rows(x, index, None, backend)


@torch.library.custom_op("earthgraph::flux_scatter", mutates_args=())
def _flux_scatter_op(flux: Tensor, pair_i: Tensor, pair_j: Tensor, ptr: Tensor, pair: Tensor, sign: Tensor,
                     backend: str) -> Tensor:
    return _sum_rows(flux, ptr, pair, sign, "triton" if backend == "cuda" else backend)


@torch.library.custom_op("earthgraph::pair_difference", mutates_args=())
def _pair_difference_op(x: Tensor, pair_i: Tensor, pair_j: Tensor, ptr: Tensor, pair: Tensor, sign: Tensor,
                        backend: str) -> Tensor:
    return _gather_rows(x, pair_j, pair_i, backend)


@torch.library.custom_op("earthgraph::edge_layer", mutates_args=())
def _edge_layer_op(edges: Tensor, weight: Tensor, bias: Optional[Tensor], src_terms: Tensor, src_index: Tensor,
                   src_ptr: Tensor, src_order: Optional[Tensor], dst_terms: Optional[Tensor],
                   dst_index: Optional[Tensor], dst_ptr: Optional[Tensor], dst_order: Optional[Tensor],
                   activation: str, backend: str) -> Tensor:
    return _edge_rows(edges, weight, bias, src_terms, src_index, dst_terms, dst_index, activation, backend)


@_segment_sum_op.register_fake
def _(values, index, ptr, order, backend):
    return values.new_empty((values.shape[0], ptr.shape[0] - 1, values.shape[2]))


@_gather_op.register_fake
def _(x, index, ptr, order, backend):
    return x.new_empty((x.shape[0], index.shape[0], x.shape[2]))


@_flux_scatter_op.register_fake
def _(flux, pair_i, pair_j, ptr, pair, sign, backend):
    return flux.new_empty((flux.shape[0], ptr.shape[0] - 1, flux.shape[2]))


@_pair_difference_op.register_fake
def _(x, pair_i, pair_j, ptr, pair, sign, backend):
    return x.new_empty((x.shape[0], pair_i.shape[0], x.shape[2]))


@_edge_layer_op.register_fake
def _(edges, weight, bias, src_terms, src_index, src_ptr, src_order, dst_terms, dst_index, dst_ptr, dst_order,
      activation, backend):
    return src_terms.new_empty((src_terms.shape[0], edges.shape[1], weight.shape[0]))


def _save_grouping(ctx, inputs, output):
    ctx.save_for_backward(*inputs[1:-1])
    ctx.backend = inputs[-1]


def _segment_sum_backward(ctx, grad):
    index, ptr, order = ctx.saved_tensors
    return _gather_op(grad.contiguous(), index, ptr, order, ctx.backend), None, None, None, None


def _gather_backward(ctx, grad):
    index, ptr, order = ctx.saved_tensors
    return _segment_sum_op(grad.contiguous(), index, ptr, order, ctx.backend), None, None, None, None


def _flux_scatter_backward(ctx, grad):
    return (_pair_difference_op(grad.contiguous(), *ctx.saved_tensors, ctx.backend),) + (None,) * 6


def _pair_difference_backward(ctx, grad):
    return (_flux_scatter_op(grad.contiguous(), *ctx.saved_tensors, ctx.backend),) + (None,) * 6


def _edge_layer_setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs[:11])
    ctx.activation, ctx.backend = inputs[11], inputs[12]


def _edge_layer_backward(ctx, grad):
    if torch.is_grad_enabled():
        raise RuntimeError("edge_layer: higher-order gradients are not implemented (create_graph=True)")
    (edges, weight, bias, src_terms, src_index, src_ptr, src_order,
     dst_terms, dst_index, dst_ptr, dst_order) = ctx.saved_tensors
    acc = torch.float64 if grad.dtype == torch.float64 else torch.float32
    g = grad.to(acc)
    if ctx.activation == "silu":
        # The pre-activation is recomputed rather than stored: one E x H tensor less to keep.
        z = _edge_rows(edges, weight, bias, src_terms, src_index, dst_terms, dst_index, "none", ctx.backend, acc)
        s = torch.sigmoid(z)
        g = g * s * (1 + z * (1 - s))
    dz = g.to(grad.dtype).contiguous()
    need = ctx.needs_input_grad
    grad_edges = grad_weight = grad_bias = grad_src = grad_dst = None
    broadcast = edges.shape[0] == 1 and dz.shape[0] > 1
    if need[0]:
        grad_edges = dz @ weight
        if broadcast:
            grad_edges = grad_edges.sum(0, keepdim=True)
    if need[1]:
        if broadcast or dz.shape[0] == 1:  # the same edges for every batch member
            grad_weight = dz.sum(0).T @ edges[0]
        else:
            grad_weight = dz.flatten(0, 1).T @ edges.flatten(0, 1)
    if need[2] and bias is not None:
        grad_bias = dz.sum((0, 1))
    if need[3]:
        grad_src = _segment_sum_op(dz, src_index, src_ptr, src_order, ctx.backend)
    if need[7] and dst_terms is not None:
        grad_dst = _segment_sum_op(dz, dst_index, dst_ptr, dst_order, ctx.backend)
    return grad_edges, grad_weight, grad_bias, grad_src, None, None, None, grad_dst, None, None, None, None, None


_segment_sum_op.register_autograd(_segment_sum_backward, setup_context=_save_grouping)
_gather_op.register_autograd(_gather_backward, setup_context=_save_grouping)
_flux_scatter_op.register_autograd(_flux_scatter_backward, setup_context=_save_grouping)
_pair_difference_op.register_autograd(_pair_difference_backward, setup_context=_save_grouping)
_edge_layer_op.register_autograd(_edge_layer_backward, setup_context=_edge_layer_setup)


# --- public functions ------------------------------------------------------------------

def _rows_view(t: Tensor, dim: int) -> tuple[Tensor, Callable[[Tensor, int], Tensor]]:
    """``t`` as (B, R, F) with R = ``t.shape[dim]``, and the inverse for a result with R' rows."""
    if dim < 0:
        dim += t.dim()
    if dim not in (0, 1) or dim >= t.dim():
        raise ValueError(f"kernel ops take rows at dim 0 or 1, got dim {dim} for shape {tuple(t.shape)}")
    lead, trail = t.shape[:dim], t.shape[dim + 1:]
    view = t.reshape(math.prod(lead), t.shape[dim], math.prod(trail))

    def restore(out: Tensor, rows: int) -> Tensor:
        return out.reshape(*lead, rows, *trail)

    return view, restore


def _check_rows(t: Tensor, dim: int, rows: int, what: str) -> None:
    if t.shape[dim] != rows:
        raise ValueError(f"{what}: tensor has {t.shape[dim]} rows at dim {dim}, the grouping expects {rows}")


def segment_sum(values: Tensor, segments: Segments, dim: int = 0) -> Tensor:
    """Sum the rows of ``values`` (E at ``dim``) into ``segments.num_segments`` segments
    (zeros where a segment is empty). Returns ``values``' shape with E replaced by S."""
    _check_rows(values, dim, segments.num_rows, "segment_sum")
    backend = backends.resolve(values.device)
    view, restore = _rows_view(values, dim)
    if backend == "torch":
        return restore(_torch_sum_rows(view, segments.index, segments.num_segments), segments.num_segments)
    return restore(_segment_sum_op(view, segments.index, segments.ptr, segments.order, backend), segments.num_segments)


def gather(x: Tensor, segments: Segments, dim: int = 0) -> Tensor:
    """``x.index_select(dim, segments.index)``: x has ``segments.num_segments`` rows at ``dim``;
    the backward pass sums into them in CSR order."""
    _check_rows(x, dim, segments.num_segments, "gather")
    backend = backends.resolve(x.device)
    view, restore = _rows_view(x, dim)
    if backend == "torch":
        return restore(_torch_select_rows(view, segments.index), segments.num_rows)
    return restore(_gather_op(view, segments.index, segments.ptr, segments.order, backend), segments.num_rows)


def flux_scatter(flux: Tensor, half_edges: HalfEdges, dim: int = 1) -> Tensor:
    """One flux per undirected pair (P at ``dim``) -> its net effect on each node (N at
    ``dim``): ``+F`` at ``pair_j``, ``-F`` at ``pair_i``."""
    _check_rows(flux, dim, half_edges.num_pairs, "flux_scatter")
    backend = backends.resolve(flux.device)
    h = half_edges
    view, restore = _rows_view(flux, dim)
    if backend == "torch":
        gain = _torch_sum_rows(view, h.pair_j, h.num_nodes)
        return restore(gain - _torch_sum_rows(view, h.pair_i, h.num_nodes), h.num_nodes)
    return restore(_flux_scatter_op(view, h.pair_i, h.pair_j, h.ptr, h.pair, h.sign, backend), h.num_nodes)


def pair_difference(x: Tensor, half_edges: HalfEdges, dim: int = 1) -> Tensor:
    """``x[pair_j] - x[pair_i]`` for every pair: the adjoint of :func:`flux_scatter`."""
    _check_rows(x, dim, half_edges.num_nodes, "pair_difference")
    backend = backends.resolve(x.device)
    h = half_edges
    view, restore = _rows_view(x, dim)
    if backend == "torch":
        return restore(_torch_select_rows(view, h.pair_j) - _torch_select_rows(view, h.pair_i), h.num_pairs)
    return restore(_pair_difference_op(view, h.pair_i, h.pair_j, h.ptr, h.pair, h.sign, backend), h.num_pairs)


def _compute_dtype(*tensors: Tensor | None) -> torch.dtype:
    device = tensors[0].device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        if t is not None:
            dtype = torch.promote_types(dtype, t.dtype)
    return dtype


def edge_layer(edges: Tensor, weight: Tensor, bias: Tensor | None, src_terms: Tensor, src: Segments,
               dst_terms: Tensor | None = None, dst: Segments | None = None, activation: str = "silu") -> Tensor:
    """``act(edges @ weight.T + bias + src_terms[src.index] + dst_terms[dst.index])`` per edge.

    edges: (E, K), or (B, E, K) (a batch-broadcast view, stride 0, is read once);
    weight: (H, K); bias: (H,) or None; src_terms, dst_terms: (Ns, H) / (Nd, H), or
    (B, Ns, H) / (B, Nd, H), node terms already projected (GraphCast's trick: a
    linear map of the concatenation is a sum of linear maps of its parts, and the
    node parts cost N rows instead of E). Returns (E, H) or (B, E, H).
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"edge_layer: unknown activation {activation!r}; expected one of {ACTIVATIONS}")
    if (dst_terms is None) != (dst is None):
        raise ValueError("edge_layer: give dst_terms and dst together")
    _check_rows(src_terms, -2, src.num_segments, "edge_layer src_terms")
    if dst is not None:
        _check_rows(dst_terms, -2, dst.num_segments, "edge_layer dst_terms")
    backend = backends.resolve(edges.device)
    if backend == "torch":
        return _torch_edge_layer(edges, weight, bias, src_terms, src.index, dst_terms,
                                 None if dst is None else dst.index, activation)
    dtype = _compute_dtype(edges, weight, bias, src_terms, dst_terms)
    batched = src_terms.dim() == 3
    e3 = edges if edges.dim() == 3 else edges.unsqueeze(0)
    if e3.shape[0] > 1 and e3.stride(0) == 0:
        e3 = e3[:1]  # the same edges for every batch member: read them once
    s3 = src_terms if batched else src_terms.unsqueeze(0)
    d3 = None if dst_terms is None else (dst_terms if batched else dst_terms.unsqueeze(0)).to(dtype)
    cast = lambda t: None if t is None else t.to(dtype)  # noqa: E731
    out = _edge_layer_op(cast(e3), cast(weight), cast(bias), cast(s3), src.index, src.ptr, src.order,
                         d3, None if dst is None else dst.index, None if dst is None else dst.ptr,
                         None if dst is None else dst.order, activation, backend)
    return out if batched else out[0]
