"""Aggregation kernels: every op against a float64 reference on every backend that runs
here, gradients by finite differences, bitwise repeatability, and the awkward graphs
(empty segments, no edges, one node with 10^4 edges).

On a CPU-only machine the Triton kernels run in Triton's interpreter (conftest sets
TRITON_INTERPRET=1 before triton is imported); tests marked ``gpu`` run where CUDA is.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from earthgraph.kernels import (HalfEdges, Segments, edge_layer, flux_scatter, gather, pair_difference, segment_mean,
                                segment_softmax, segment_sum, use_backend)
from earthgraph.kernels.backends import resolve, triton_interpreting

CPU_BACKENDS = ["torch", "triton"]
# bfloat16 results of the kernels are float32 sums rounded once: at most one ulp,
# 2^-7 relative (Triton's interpreter truncates where a GPU rounds to nearest);
# torch's own CPU index_add_ accumulates in bfloat16, hence looser.
TOLERANCE = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.bfloat16: dict(rtol=2 ** -7, atol=1e-5),
             torch.float64: dict(rtol=1e-12, atol=1e-12)}


def tolerance(dtype: torch.dtype, backend: str = "triton") -> dict:
    if backend == "torch" and dtype == torch.bfloat16:
        return dict(rtol=2e-2, atol=1e-1)
    return TOLERANCE[dtype]
gpu = pytest.mark.gpu


@pytest.fixture(autouse=True)
def _kernels_can_run(request):
    if request.node.get_closest_marker("gpu"):
        if not torch.cuda.is_available():
            pytest.skip("needs a CUDA GPU")
    elif importlib.util.find_spec("triton") is None:
        pytest.skip("triton is not installed: it has Linux wheels only (pyproject's test extra installs it there), so "
                    "the kernel tests run on Linux")
    elif not triton_interpreting():
        pytest.skip("the CPU tests run the Triton kernels in Triton's interpreter: TRITON_INTERPRET=1 before triton "
                    "is imported (tests/conftest.py sets it where there is no GPU)")


def random_grouping(rows: int, segments: int, seed: int = 0, sort: bool = False, device="cpu") -> Segments:
    g = torch.Generator().manual_seed(seed)
    index = torch.randint(0, segments, (rows,), generator=g)
    if sort:
        index = index.sort().values
    return Segments(index.to(device), segments, is_sorted=sort)


def random_half_edges(nodes: int, pairs: int, seed: int = 0) -> HalfEdges:
    """Random distinct pairs i < j and their receiver-sorted half-edges."""
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randint(0, nodes, (2, 4 * pairs), generator=g)
    keep = a != b
    p = torch.unique(torch.stack([torch.minimum(a, b), torch.maximum(a, b)], 1)[keep], dim=0)[:pairs]
    i, j = p[:, 0].contiguous(), p[:, 1].contiguous()
    receiver = torch.cat([j, i])
    order = torch.sort(receiver, stable=True).indices
    pair = torch.cat([torch.arange(len(p)), torch.arange(len(p))])[order]
    sign = torch.cat([torch.ones(len(p)), -torch.ones(len(p))])[order]
    ptr = Segments(receiver, nodes).ptr
    return HalfEdges(i, j, nodes, ptr, pair, sign)


def ref_segment_sum(values: torch.Tensor, seg: Segments, dim: int) -> torch.Tensor:
    shape = list(values.shape)
    shape[dim] = seg.num_segments
    return torch.zeros(shape, dtype=torch.float64).index_add_(dim, seg.index, values.double())


# --- each op against float64 -------------------------------------------------------------

@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("sort", [True, False])
def test_segment_sum_matches_float64(backend, dtype, sort):
    seg = random_grouping(700, 90, sort=sort)
    values = torch.randn(2, 700, 5, 3).to(dtype)
    with use_backend(backend):
        out = segment_sum(values, seg, dim=1)
    assert out.shape == (2, 90, 5, 3) and out.dtype == dtype
    torch.testing.assert_close(out.double(), ref_segment_sum(values, seg, 1), **tolerance(dtype, backend))


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gather_matches_indexing(backend, dtype):
    seg = random_grouping(500, 40, seed=1)
    x = torch.randn(3, 40, 7).to(dtype)
    with use_backend(backend):
        out = gather(x, seg, dim=1)
    assert torch.equal(out, x[:, seg.index])  # a gather moves values, it rounds nothing


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_flux_scatter_adds_at_j_and_takes_from_i(backend, dtype):
    half = random_half_edges(60, 200)
    flux = torch.randn(2, half.num_pairs, 4).to(dtype)
    with use_backend(backend):
        out = flux_scatter(flux, half, dim=1)
    ref = torch.zeros(2, 60, 4, dtype=torch.float64)
    ref.index_add_(1, half.pair_j, flux.double()).index_add_(1, half.pair_i, -flux.double())
    torch.testing.assert_close(out.double(), ref, **tolerance(dtype, backend))
    x = torch.randn(2, 60, 4).to(dtype)
    with use_backend(backend):
        diff = pair_difference(x, half, dim=1)
    torch.testing.assert_close(diff.double(), x.double()[:, half.pair_j] - x.double()[:, half.pair_i],
                               **tolerance(dtype, backend))


def test_flux_scatter_conserves_the_total_to_rounding():
    half = random_half_edges(80, 300, seed=3)
    flux = torch.randn(1, half.num_pairs, 2, dtype=torch.float64) * 1e3
    with use_backend("triton"):
        out = flux_scatter(flux, half, dim=1)
    assert out.sum(dim=1).abs().max() < 1e-9  # every flux is added once and subtracted once


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("with_dst", [True, False])
def test_edge_layer_matches_the_concatenated_mlp(backend, dtype, with_dst):
    # The fused first layer is Linear([edge, x_src, x_dst]) followed by SiLU.
    torch.manual_seed(0)
    b, n, e, k, h = 2, 30, 400, 12, 20
    src, dst = random_grouping(e, n, seed=2), random_grouping(e, n, seed=3, sort=True)
    edges, x = torch.randn(b, e, k, dtype=torch.float64), torch.randn(b, n, k, dtype=torch.float64)
    weight, bias = torch.randn(h, 3 * k, dtype=torch.float64) / k, torch.randn(h, dtype=torch.float64)
    w_e, w_s, w_d = weight.split(k, dim=1)
    # The op's inputs in ``dtype``; the reference is computed in float64 from exactly these.
    e_in, w_in, b_in, s_in, d_in = (t.to(dtype) for t in (edges, w_e, bias, x @ w_s.T, x @ w_d.T))
    with use_backend(backend):
        out = edge_layer(e_in, w_in, b_in, s_in, src, d_in if with_dst else None, dst if with_dst else None)
    assert out.shape == (b, e, h) and out.dtype == dtype
    z = e_in.double() @ w_in.double().T + b_in.double() + s_in.double()[:, src.index]
    if with_dst:
        z = z + d_in.double()[:, dst.index]
    torch.testing.assert_close(out.double(), torch.nn.functional.silu(z), **tolerance(dtype, backend))
    if dtype == torch.float32:
        parts = [edges, x[:, src.index]] + ([x[:, dst.index]] if with_dst else [])
        concat = torch.nn.functional.silu(torch.cat(parts, -1) @ weight[:, :k * len(parts)].T + bias)
        torch.testing.assert_close(out.double(), concat, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_edge_layer_with_shared_edges_and_unbatched_nodes(backend):
    # Edge features the same for every batch member (a stride-0 view) and an
    # unbatched (N, H) node table (the encoder's case) give the broadcast result.
    torch.manual_seed(1)
    seg = random_grouping(300, 25, seed=4)
    edges, w, terms = torch.randn(300, 3), torch.randn(16, 3), torch.randn(25, 16)
    with use_backend(backend):
        flat = edge_layer(edges, w, None, terms, seg)
        shared = edge_layer(edges.unsqueeze(0).expand(2, -1, -1), w, None, terms.expand(2, -1, -1), seg)
    ref = torch.nn.functional.silu(edges.double() @ w.double().T + terms.double()[seg.index])
    torch.testing.assert_close(flat.double(), ref, **TOLERANCE[torch.float32])
    torch.testing.assert_close(shared, flat.expand(2, -1, -1))


def test_segment_mean_and_softmax_on_the_triton_backend():
    seg = random_grouping(400, 50, seed=5)
    values, scores = torch.randn(400, 3), 50 * torch.randn(2, 400, 4)
    with use_backend("torch"):
        mean_ref, soft_ref = segment_mean(values, seg), segment_softmax(scores, seg, dim=1)
    with use_backend("triton"):
        torch.testing.assert_close(segment_mean(values, seg), mean_ref)
        torch.testing.assert_close(segment_softmax(scores, seg, dim=1), soft_ref)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_segment_softmax_normalises_each_segment_and_survives_large_scores(backend):
    seg = Segments(torch.tensor([0, 0, 1, 1, 1, 3]), 4)
    scores = torch.tensor([[1.0, 1000.0], [2.0, 1001.0], [0.0, -5.0], [0.0, 3.0], [1.0, 2.0], [7.0, 7.0]])
    with use_backend(backend):
        w = segment_softmax(scores, seg)
    torch.testing.assert_close(w[:2, 0], torch.softmax(scores[:2, 0], 0))
    torch.testing.assert_close(w[:2, 1], torch.softmax(scores[:2, 1], 0))
    torch.testing.assert_close(w[2:5, 1], torch.softmax(scores[2:5, 1], 0))
    assert torch.isfinite(w).all() and torch.allclose(w[5], torch.ones(2))


def test_bfloat16_sums_accumulate_in_float32():
    # 4096 ones: a bfloat16 accumulator stalls at 256 (256 + 1 rounds back to 256);
    # a float32 accumulator reaches 4096, which bfloat16 stores exactly.
    seg = Segments(torch.zeros(4096, dtype=torch.long), 1, is_sorted=True)
    with use_backend("triton"):
        out = segment_sum(torch.ones(4096, 8, dtype=torch.bfloat16), seg)
    assert torch.all(out == 4096.0)


# --- gradients ---------------------------------------------------------------------------

def _gradcheck(fn, *inputs):
    # fast_mode checks random projections of the Jacobian (vJu) against finite differences:
    # far fewer interpreted kernel launches than the full Jacobian, the same verdict on a wrong formula.
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-7, rtol=1e-6, fast_mode=True)


def test_gradients_of_segment_sum_and_gather_by_finite_differences():
    seg = random_grouping(40, 9, seed=6)
    values = torch.randn(2, 40, 3, dtype=torch.float64, requires_grad=True)
    x = torch.randn(2, 9, 3, dtype=torch.float64, requires_grad=True)
    with use_backend("triton"):
        _gradcheck(lambda v: segment_sum(v, seg, dim=1), values)
        _gradcheck(lambda t: gather(t, seg, dim=1), x)


def test_gradients_of_flux_scatter_and_pair_difference_by_finite_differences():
    half = random_half_edges(12, 25, seed=7)
    flux = torch.randn(2, half.num_pairs, 2, dtype=torch.float64, requires_grad=True)
    x = torch.randn(2, 12, 2, dtype=torch.float64, requires_grad=True)
    with use_backend("triton"):
        _gradcheck(lambda f: flux_scatter(f, half, dim=1), flux)
        _gradcheck(lambda t: pair_difference(t, half, dim=1), x)


@pytest.mark.parametrize("shared_edges", [False, True])
def test_gradients_of_the_fused_edge_layer_by_finite_differences(shared_edges):
    src, dst = random_grouping(30, 7, seed=8), random_grouping(30, 7, seed=9, sort=True)
    d = dict(dtype=torch.float64, requires_grad=True)
    edges = torch.randn(1 if shared_edges else 2, 30, 4, **d)
    weight, bias = torch.randn(5, 4, **d), torch.randn(5, **d)
    s_terms, d_terms = torch.randn(2, 7, 5, **d), torch.randn(2, 7, 5, **d)

    def fn(edges, weight, bias, s_terms, d_terms):
        e = edges.expand(2, -1, -1) if shared_edges else edges
        return edge_layer(e, weight, bias, s_terms, src, d_terms, dst)

    with use_backend("triton"):
        _gradcheck(fn, edges, weight, bias, s_terms, d_terms)


def test_backward_passes_agree_with_torch_autograd():
    seg = random_grouping(300, 30, seed=10)
    torch.manual_seed(2)
    edges, w, b, terms = torch.randn(2, 300, 6), torch.randn(8, 6), torch.randn(8), torch.randn(2, 30, 8)

    def loss_and_grads(backend):
        leaves = [t.clone().requires_grad_() for t in (edges, w, b, terms)]
        with use_backend(backend):
            out = edge_layer(*leaves[:3], leaves[3], seg, leaves[3], seg)
            loss = (segment_sum(out, seg, dim=1) ** 2).sum()
        loss.backward()
        return [loss.detach()] + [t.grad for t in leaves]

    for a, r in zip(loss_and_grads("triton"), loss_and_grads("torch")):
        torch.testing.assert_close(a, r, rtol=1e-4, atol=1e-4)


def test_torch_backend_batched_rows_equal_the_strided_ops_bit_for_bit():
    """The torch backend numbers a batch's rows as one flat table (a dim-0 index_add_, 3x
    faster on the CPU); the sums and their gradients must be those of index_add_ and
    index_select along dim 1, to the last bit (so seeded runs keep their numbers)."""
    seg = random_grouping(3000, 200, seed=13)
    half = random_half_edges(200, 700, seed=14)
    torch.manual_seed(4)
    values, x = torch.randn(3, 3000, 16), torch.randn(3, 200, 16)
    flux = torch.randn(3, half.num_pairs, 16)

    def run(strided: bool):
        leaves = [t.clone().requires_grad_() for t in (values, x, flux)]
        v, h, f = leaves
        if strided:
            summed = v.new_zeros((3, 200, 16)).index_add_(1, seg.index, v)
            gathered = h.index_select(1, seg.index)
            scattered = (f.new_zeros((3, 200, 16)).index_add_(1, half.pair_j, f)
                         - f.new_zeros((3, 200, 16)).index_add_(1, half.pair_i, f))
            diff = h.index_select(1, half.pair_j) - h.index_select(1, half.pair_i)
        else:
            with use_backend("torch"):
                summed, gathered = segment_sum(v, seg, dim=1), gather(h, seg, dim=1)
                scattered, diff = flux_scatter(f, half, dim=1), pair_difference(h, half, dim=1)
        loss = sum((t * torch.linspace(-1, 1, t.shape[1]).view(1, -1, 1)).sum() ** 2
                   for t in (summed, gathered, scattered, diff))
        loss.backward()
        return [summed, gathered, scattered, diff] + [t.grad for t in leaves]

    for fast, reference in zip(run(strided=False), run(strided=True)):
        assert torch.equal(fast, reference)


# --- determinism and awkward graphs ------------------------------------------------------

def test_results_are_bitwise_identical_from_run_to_run():
    seg = random_grouping(2000, 64, seed=11)
    half = random_half_edges(64, 300, seed=12)

    def run():
        torch.manual_seed(3)
        v = torch.randn(2, 2000, 33, requires_grad=True)
        f = torch.randn(2, half.num_pairs, 33, requires_grad=True)
        with use_backend("triton"):
            out = segment_sum(v, seg, dim=1)
            scat = flux_scatter(f, half, dim=1)
            ((out * torch.arange(33.0)).sum() + (gather(scat, seg, dim=1) ** 2).sum()).backward()
        return out.detach(), scat.detach(), v.grad, f.grad

    for a, b in zip(run(), run()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_empty_segments_and_zero_edges(backend):
    seg = Segments(torch.tensor([3, 3, 7]), 10)  # segments 0-2, 4-6, 8, 9 are empty
    none = Segments(torch.zeros(0, dtype=torch.long), 5)
    with use_backend(backend):
        out = segment_sum(torch.ones(3, 2), seg)
        assert out[3].tolist() == [2.0, 2.0] and out[7].tolist() == [1.0, 1.0]
        assert out.sum() == 6.0 and segment_mean(torch.ones(3, 2), seg)[0].tolist() == [0.0, 0.0]
        v = torch.zeros(0, 4, requires_grad=True)
        empty = segment_sum(v, none)
        assert empty.shape == (5, 4) and torch.all(empty == 0)
        empty.sum().backward()
        assert v.grad.shape == (0, 4)
        assert gather(torch.randn(5, 4), none).shape == (0, 4)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_one_node_with_ten_thousand_edges(backend):
    # Heavy degree skew (a pole of a badly built graph, a station-dense cell): one
    # segment holds 10^4 rows, the others a handful or none.
    g = torch.Generator().manual_seed(13)
    index = torch.cat([torch.full((10_000,), 17), torch.randint(0, 40, (300,), generator=g)])
    seg = Segments(index[torch.randperm(len(index), generator=g)], 40)
    values = torch.randn(len(index), 16, generator=g)
    with use_backend(backend):
        out = segment_sum(values, seg)
    torch.testing.assert_close(out.double(), ref_segment_sum(values, seg, 0), rtol=1e-5, atol=2e-4)


# --- compilation and backend choice --------------------------------------------------------

def test_torch_compile_traces_through_the_ops_without_graph_breaks():
    seg = random_grouping(200, 20, seed=14)
    half = random_half_edges(20, 50, seed=15)
    torch.manual_seed(4)
    edges, w, terms = torch.randn(2, 200, 4), torch.randn(6, 4), torch.randn(2, 20, 6)

    def step(edges, w, terms):
        msg = edge_layer(edges, w, None, terms, seg, terms, seg)
        node = segment_sum(msg, seg, dim=1)
        return flux_scatter(gather(node, Segments(half.pair_i, 20), dim=1), half, dim=1)

    with use_backend("triton"):
        eager = step(edges, w, terms)
        torch._dynamo.reset()
        compiled = torch.compile(step, fullgraph=True, backend="aot_eager")(edges, w, terms)
    torch.testing.assert_close(compiled, eager)


def test_backend_choice_is_checked():
    with pytest.raises(ValueError, match="unknown kernel backend 'cuda_graph'"):
        with use_backend("cuda_graph"):
            pass
    assert resolve(torch.device("cpu"), "auto") == "torch"
    with pytest.raises(RuntimeError, match="runs on CUDA tensors only"):
        resolve(torch.device("cpu"), "cuda")
    try:
        import torch_scatter  # noqa: F401
    except ImportError:
        with pytest.raises(RuntimeError, match="needs the torch_scatter package"):
            resolve(torch.device("cpu"), "torch_scatter")
    with pytest.raises(ValueError, match="tensor has 3 rows at dim 0, the grouping expects 2"):
        segment_sum(torch.ones(3, 2), Segments(torch.tensor([1, 2]), 10))


# --- on a GPU ------------------------------------------------------------------------------

@gpu
@pytest.mark.parametrize("backend", ["triton", "cuda"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gpu_segment_sum_matches_float64_and_repeats_bitwise(backend, dtype):
    seg = random_grouping(200_000, 5000, seed=16, device="cuda")
    values = torch.randn(2, 200_000, 96, device="cuda").to(dtype)
    with use_backend(backend):
        a, b = segment_sum(values, seg, dim=1), segment_sum(values, seg, dim=1)
    assert torch.equal(a, b)
    ref = ref_segment_sum(values.cpu(), Segments(seg.index.cpu(), 5000), 1)
    torch.testing.assert_close(a.double().cpu(), ref, **tolerance(dtype))


@gpu
def test_gpu_forecaster_step_repeats_bitwise_on_the_triton_backend():
    from earthgraph.graphs.mesh_graph import MeshGraph
    from earthgraph.processors import InteractionNetworkProcessor

    mesh = MeshGraph("healpix", 16, multiscale_levels=2, cache_dir=None).cuda()
    torch.manual_seed(5)
    proc = InteractionNetworkProcessor(32, 32, 2, forcing_dim=6).cuda()
    h, forcing = torch.randn(2, mesh.npix, 32, device="cuda"), torch.randn(2, mesh.npix, 6, device="cuda")

    def run():
        proc.zero_grad()
        with use_backend("triton"):
            out = proc(h, forcing, mesh)
        out.square().sum().backward()
        return [out.detach()] + [p.grad.clone() for p in proc.parameters()]

    for a, b in zip(run(), run()):
        assert torch.equal(a, b)


# --- the model on the kernels --------------------------------------------------------------

@pytest.mark.parametrize("processor", ["interaction", "transformer"])
def test_forecaster_on_triton_kernels_matches_the_torch_backend(processor):
    # Encoder, processor, conservative transport and decoder all run on the kernels;
    # forecasts and gradients agree with the torch backend to float32 rounding.
    from test_model import SCHEMA, _obs

    from earthgraph.models import ForecasterConfig, GraphDOPForecaster
    from earthgraph.training.loss import observation_loss

    inputs = {"synop": _obs(60, 1, 0), "mw_sounder": _obs(80, 2, 1)}
    targets = [{"synop": _obs(20, 1, 0, seed=k), "mw_sounder": _obs(25, 2, 1, seed=k)} for k in range(2)]
    init = torch.tensor([1.6e9, 1.6e9 + 43200], dtype=torch.float64)

    def run(backend):
        torch.manual_seed(0)
        water = {"water": {"atmosphere": ["mw_sounder.tcwv"], "soil": []}}
        config = ForecasterConfig(nside=2, latent_dim=8, hidden_dim=8, processor_layers=1, processor=processor,
                                  multiscale_levels=2, graph_cache_dir=None, kernel_backend=backend, budgets=water)
        model = GraphDOPForecaster(SCHEMA, config=config)
        out = model(inputs, init, targets)
        loss, _ = observation_loss(out, targets)
        loss.backward()
        state = model.step(model.encode(inputs, init), init)
        return loss.detach(), [p.grad for p in model.parameters()], model.budget_totals(state)["water"]

    loss_t, grads_t, water_t = run("triton")
    loss_r, grads_r, water_r = run("torch")
    torch.testing.assert_close(loss_t, loss_r, rtol=1e-5, atol=1e-6)
    for a, b in zip(grads_t, grads_r):  # to float32 rounding, relative to each gradient's scale
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * float(b.abs().max()))
    torch.testing.assert_close(water_t, water_r, rtol=1e-6, atol=0)
