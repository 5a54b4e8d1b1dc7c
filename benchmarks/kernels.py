"""How fast the aggregation kernels are, against torch, PyG and torch_scatter, in one run.

For every E (edges) in ``--sizes``, F (features) in ``--features`` and dtype in
``--dtypes``, forward and forward+backward, a segment-sum over receiver-sorted edges
(``--degree`` edges per node on average, as a mesh's multi-scale edges) is timed for:

* earthgraph's backends: ``triton`` and ``cuda`` (CUDA C++, compiled on first use);
* torch's atomic ``index_add_`` and ``scatter_add_``, and ``index_add_`` under
  ``torch.use_deterministic_algorithms(True)``;
* torch_geometric's ``scatter(reduce="sum")`` and torch_scatter's ``segment_csr``,
  where those packages can be imported.

Each figure: median time (CUDA events), achieved bandwidth (bytes every candidate
must move: the edge rows read and the node rows written, plus the CSR pointers; the
backward pass writes edge rows from node rows) and its fraction of the device-to-device
copy bandwidth measured in the same run. Then the fused first edge-MLP layer against
torch's unfused one, one interaction-network layer on a HEALPix nside-64 multi-mesh, and
one whole training step of the forecaster at nside 64 on a synthetic batch, triton
backend against torch backend.

Last line: one JSON object with every figure and the headline ratios
``segment_sum_fraction_of_copy_bw_f256``, ``speedup_vs_deterministic_torch``,
``speedup_vs_atomic_scatter_add`` (largest E, F = 256, float32, forward, default GPU
backend) and ``train_step_speedup_vs_torch_backend``.

    python benchmarks/kernels.py | tee benchmarks/results/kernels-<device>-<date>.txt
    python benchmarks/kernels.py --quick        # small sizes; on a CPU only torch's candidates run
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
import json
import platform
import statistics
import time

import numpy as np
import torch

from earthgraph.data.schema import ObservationSchema
from earthgraph.kernels import Segments, backends, edge_layer, segment_sum, use_backend

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def timed(fn, device: torch.device, repeats: int) -> float:
    """Median time of ``fn()`` in ms after two warm-ups (CUDA events on a GPU)."""
    for _ in range(2):
        fn()
    if device.type != "cuda":
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1e3)
        return statistics.median(times)
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def copy_bandwidth_gbps(nbytes: int, device: torch.device, repeats: int) -> float:
    """Device-to-device copy bandwidth, GB/s counting the bytes read and written."""
    a = torch.empty(nbytes // 4, dtype=torch.float32, device=device).uniform_()
    b = torch.empty_like(a)
    ms = timed(lambda: b.copy_(a), device, repeats)
    return 2 * a.numel() * 4 / (ms * 1e-3) / 1e9


def compared_backends(device: torch.device) -> list[str]:
    """The default GPU backend against torch on a GPU; torch alone on a CPU."""
    return ([backends.DEFAULT_GPU_BACKEND] if device.type == "cuda" else []) + ["torch"]


def sorted_grouping(num_edges: int, degree: int, device: torch.device, seed: int = 0) -> Segments:
    g = torch.Generator().manual_seed(seed)
    num_nodes = max(num_edges // degree, 1)
    index = torch.randint(0, num_nodes, (num_edges,), generator=g).sort().values.to(device)
    seg = Segments(index, num_nodes, is_sorted=True)
    seg.ptr  # noqa: B018  (built once, like the mesh's static CSR views)
    return seg


@contextlib.contextmanager
def deterministic_torch():
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=False)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


def segment_sum_candidates(seg: Segments, device: torch.device) -> dict:
    """name -> f(values (E, F)) -> (S, F)."""
    s, index = seg.num_segments, seg.index
    out: dict = {}
    if device.type == "cuda" or backends.triton_interpreting():
        def ours(name):
            def run(v):
                with use_backend(name):
                    return segment_sum(v, seg)
            return run
        out["earthgraph_triton"] = ours("triton")
        if device.type == "cuda":
            try:
                from earthgraph.kernels import cuda_extension
                cuda_extension.extension()
                out["earthgraph_cuda"] = ours("cuda")
            except Exception as err:  # no nvcc, or a failed build: say so and go on
                print(f"# cuda backend unavailable: {err}")
    out["torch_index_add_atomic"] = lambda v: v.new_zeros((s, v.shape[1])).index_add(0, index, v)
    out["torch_scatter_add_atomic"] = lambda v: v.new_zeros((s, v.shape[1])).scatter_add(
        0, index.view(-1, 1).expand(-1, v.shape[1]), v)

    def deterministic(v):
        with deterministic_torch():
            return v.new_zeros((s, v.shape[1])).index_add(0, index, v)
    out["torch_deterministic"] = deterministic
    if importlib.util.find_spec("torch_geometric") is not None:
        from torch_geometric.utils import scatter
        out["pyg_scatter"] = lambda v: scatter(v, index, dim=0, dim_size=s, reduce="sum")
    if importlib.util.find_spec("torch_scatter") is not None:
        import torch_scatter
        out["torch_scatter_segment_csr"] = lambda v: torch_scatter.segment_csr(v, seg.ptr, reduce="sum")
    return out


def bench_segment_sum(args, device: torch.device, copy_gbps: float, results: dict) -> None:
    print(f"\nsegment-sum, {args.degree} edges per node on average (receiver-sorted); ms, GB/s, fraction of copy")
    print(f"{'E':>9} {'F':>4} {'dtype':>5} {'pass':>7} {'candidate':>28} {'ms':>9} {'GB/s':>8} {'of copy':>8}")
    for e in args.sizes:
        seg = sorted_grouping(e, args.degree, device)
        cands = segment_sum_candidates(seg, device)
        for f in args.features:
            for dname in args.dtypes:
                dtype = DTYPES[dname]
                elt = torch.tensor([], dtype=dtype).element_size()
                need = 4 * e * f * elt
                if device.type == "cuda" and need > 0.6 * torch.cuda.mem_get_info()[0]:
                    print(f"{e:>9} {f:>4} {dname:>5} skipped: needs about {need / 2**30:.1f} GiB")
                    continue
                values = torch.randn(e, f, device=device).to(dtype)
                grad_out = torch.randn(seg.num_segments, f, device=device).to(dtype)
                fwd_bytes = (e + seg.num_segments) * f * elt + (seg.num_segments + 1) * 8
                bwd_bytes = (e + seg.num_segments) * f * elt + e * 8
                for name, fn in cands.items():
                    leaf = values.detach().requires_grad_()

                    def fwd_bwd(fn=fn, leaf=leaf):
                        leaf.grad = None
                        fn(leaf).backward(grad_out)

                    for mode, run, nbytes in (("fwd", lambda fn=fn: fn(values), fwd_bytes),
                                              ("fwd+bwd", fwd_bwd, fwd_bytes + bwd_bytes)):
                        try:
                            ms = timed(run, device, args.repeats)
                        except Exception as err:  # a baseline that cannot run this case (dtype, memory)
                            print(f"{e:>9} {f:>4} {dname:>5} {mode:>7} {name:>28} failed: {str(err)[:60]}")
                            continue
                        gbps = nbytes / (ms * 1e-3) / 1e9
                        key = f"segment_sum_{mode.replace('+', '_')}_{name}_e{e:.0e}_f{f}_{dname}".replace("+0", "")
                        results[key] = {"ms": ms, "gbps": gbps, "fraction_of_copy": gbps / copy_gbps}
                        print(f"{e:>9} {f:>4} {dname:>5} {mode:>7} {name:>28} {ms:9.3f} {gbps:8.1f} "
                              f"{gbps / copy_gbps:8.3f}")
                del values, grad_out
                if device.type == "cuda":
                    torch.cuda.empty_cache()


def bench_edge_layer(args, device: torch.device, results: dict) -> None:
    print("\nfused first edge-MLP layer act(W e + (W_s x)[src] + (W_d x)[dst] + b) against torch's unfused one; ms")
    for e in args.edge_sizes:
        src, dst = sorted_grouping(e, args.degree, device, 1), sorted_grouping(e, args.degree, device, 2)
        for f in args.edge_features:
            torch.manual_seed(0)
            edges = torch.randn(1, e, f, device=device)
            weight, bias = torch.randn(f, f, device=device) / f**0.5, torch.randn(f, device=device)
            nodes = torch.randn(1, src.num_segments, f, device=device)
            for backend in compared_backends(device):
                leaves = [t.detach().requires_grad_() for t in (edges, weight, bias, nodes)]

                def fwd(backend=backend, leaves=leaves):
                    with use_backend(backend):
                        return edge_layer(leaves[0], leaves[1], leaves[2], leaves[3], src, leaves[3], dst)

                def fwd_bwd(fwd=fwd):
                    fwd().sum().backward()

                for mode, run in (("fwd", fwd), ("fwd+bwd", fwd_bwd)):
                    ms = timed(run, device, args.repeats)
                    results[f"edge_layer_{mode.replace('+', '_')}_{backend}_e{e:.0e}_f{f}".replace("+0", "")] = ms
                    print(f"  E {e:>9}  F {f:>4}  {backend:>7}  {mode:>7}  {ms:9.3f} ms")


def bench_processor_layer(args, device: torch.device, results: dict) -> None:
    from earthgraph.graphs.mesh_graph import MeshGraph
    from earthgraph.processors.interaction import InteractionLayer

    mesh = MeshGraph("healpix", args.nside, multiscale_levels=args.multiscale_levels, cache_dir="default").to(device)
    torch.manual_seed(0)
    layer = InteractionLayer(args.latent, args.latent).to(device)
    h = torch.randn(1, mesh.npix, args.latent, device=device)
    e = torch.randn(1, mesh.senders.numel(), args.latent, device=device)
    print(f"\none interaction layer, HEALPix nside {args.nside} ({args.multiscale_levels} levels: {mesh.npix} nodes, "
          f"{mesh.senders.numel()} directed edges), latent {args.latent}, forward+backward; ms")
    times = {}
    for backend in compared_backends(device):
        def step(backend=backend):
            layer.zero_grad(set_to_none=True)
            with use_backend(backend):
                out_h, out_e = layer(h, e, mesh)
            (out_h.square().mean() + out_e.square().mean()).backward()
        times[backend] = timed(step, device, args.repeats)
        results[f"processor_layer_ms_{backend}_nside{args.nside}"] = times[backend]
        print(f"  {backend:>7}  {times[backend]:9.3f} ms")
    if len(times) > 1:
        results["processor_layer_speedup_vs_torch_backend"] = times["torch"] / times[backends.DEFAULT_GPU_BACKEND]


def synthetic_batch(schema: ObservationSchema, n_obs: int, n_targets: int, device: torch.device, seed: int = 0):
    from earthgraph.data.batch import ObsSet

    g = torch.Generator().manual_seed(seed)

    def obs(n, c, m):
        return ObsSet(values=torch.randn(n, c, generator=g), error=torch.full((n, c), 0.5),
                      lat=torch.asin(torch.rand(n, generator=g) * 2 - 1),
                      lon=(torch.rand(n, generator=g) * 2 - 1) * np.pi,
                      time=torch.rand(n, generator=g), meta=torch.randn(n, m, generator=g),
                      sample=torch.zeros(n, dtype=torch.long)).to(device)

    dims = {k: (len(s.channels), len(s.metadata)) for k, s in schema.items()}
    inputs = {k: obs(n_obs // len(schema), c, m) for k, (c, m) in dims.items()}
    targets = [{k: obs(n_targets // len(schema), c, m) for k, (c, m) in dims.items()}]
    return inputs, targets


def bench_train_step(args, device: torch.device, results: dict) -> None:
    from earthgraph.models import ForecasterConfig, GraphDOPForecaster
    from earthgraph.training.loss import observation_loss

    channel = lambda names: {"channels": names, "metadata": [], "mean": [0.0] * len(names),  # noqa: E731
                             "std": [1.0] * len(names), "units": ["1"] * len(names),
                             "valid_min": [-1e9] * len(names), "valid_max": [1e9] * len(names)}
    schema = ObservationSchema.from_dict({name: {"sphere": sphere, **channel(chs)} for name, sphere, chs in
                                          (("synop", "atmosphere", ["t2m", "tcwv"]), ("mw_imager", "ocean", ["sst", "lst"]),
                                           ("seaice_conc", "cryosphere", ["sic"]))})
    inputs, targets = synthetic_batch(schema, args.train_obs, args.train_obs // 4, device)
    init = torch.tensor([1.6e9], dtype=torch.float64, device=device)
    print(f"\none training step (forward, loss, backward, AdamW), HEALPix nside {args.nside}, latent {args.latent}, "
          f"{args.processor_layers} layers, {args.train_obs} observations in, {args.train_obs // 4} targets; ms")
    times = {}
    for backend in compared_backends(device):
        torch.manual_seed(0)
        config = ForecasterConfig(nside=args.nside, latent_dim=args.latent, hidden_dim=args.latent,
                                  processor_layers=args.processor_layers, multiscale_levels=args.multiscale_levels,
                                  kernel_backend=backend)
        model = GraphDOPForecaster(schema, config=config).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step(model=model, opt=opt):
            opt.zero_grad(set_to_none=True)
            loss, _ = observation_loss(model(inputs, init, targets), targets)
            loss.backward()
            opt.step()

        times[backend] = timed(step, device, args.repeats)
        results[f"train_step_ms_{backend}_nside{args.nside}"] = times[backend]
        if device.type == "cuda":
            results[f"train_step_peak_memory_gib_{backend}"] = torch.cuda.max_memory_allocated() / 2**30
            torch.cuda.reset_peak_memory_stats()
        print(f"  {backend:>7}  {times[backend]:9.2f} ms")
        del model, opt
    if len(times) > 1:
        results["train_step_speedup_vs_torch_backend"] = times["torch"] / times[backends.DEFAULT_GPU_BACKEND]


def headline(results: dict, args) -> dict:
    """The issue's ratios at the largest E with F = 256 (float32, forward)."""
    out = {}
    if 256 not in args.features or "fp32" not in args.dtypes:
        return out
    e = max(args.sizes)
    key = lambda name: f"segment_sum_fwd_{name}_e{e:.0e}_f256_fp32".replace("+0", "")  # noqa: E731
    ours = results.get(key(f"earthgraph_{backends.DEFAULT_GPU_BACKEND}"))
    if ours is None:
        return out
    out["segment_sum_fraction_of_copy_bw_f256"] = ours["fraction_of_copy"]
    for name, label in (("torch_deterministic", "speedup_vs_deterministic_torch"),
                        ("torch_scatter_add_atomic", "speedup_vs_atomic_scatter_add"),
                        ("torch_index_add_atomic", "speedup_vs_atomic_index_add"),
                        ("pyg_scatter", "speedup_vs_pyg_scatter"),
                        ("torch_scatter_segment_csr", "speedup_vs_torch_scatter_segment_csr")):
        if key(name) in results:
            out[label] = results[key(name)]["ms"] / ours["ms"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--sizes", type=lambda s: int(float(s)), nargs="+", default=[10**5, 10**6, 10**7])
    ap.add_argument("--features", type=int, nargs="+", default=[64, 256, 512])
    ap.add_argument("--dtypes", nargs="+", choices=sorted(DTYPES), default=["fp32", "bf16"])
    ap.add_argument("--degree", type=int, default=16, help="mean edges per node")
    ap.add_argument("--edge-sizes", type=lambda s: int(float(s)), nargs="+", default=[10**6])
    ap.add_argument("--edge-features", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--nside", type=int, default=64)
    ap.add_argument("--multiscale-levels", type=int, default=4)
    ap.add_argument("--latent", type=int, default=256)
    ap.add_argument("--processor-layers", type=int, default=8)
    ap.add_argument("--train-obs", type=int, default=200_000, help="observations in the synthetic input window")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--quick", action="store_true", help="small sizes (a CPU check that everything runs)")
    ap.add_argument("--skip", nargs="*", default=[], choices=["segment_sum", "edge_layer", "processor", "train_step"])
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.features, args.dtypes = [10**4, 10**5], [64, 256], ["fp32"]
        args.edge_sizes, args.edge_features = [10**4], [64]
        args.nside, args.multiscale_levels, args.latent, args.processor_layers, args.train_obs = 8, 2, 32, 2, 5000
        args.repeats = min(args.repeats, 5)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"# {name}, torch {torch.__version__}, {datetime.date.today()}, default GPU backend "
          f"{backends.DEFAULT_GPU_BACKEND}")
    results: dict = {"device": name, "torch": torch.__version__, "date": str(datetime.date.today())}
    copy_gbps = copy_bandwidth_gbps(min(2**30, 4 * max(args.sizes) * 64), device, args.repeats)
    results["copy_bandwidth_gbps"] = copy_gbps
    print(f"device-to-device copy: {copy_gbps:.1f} GB/s (read + write)")
    if "segment_sum" not in args.skip:
        bench_segment_sum(args, device, copy_gbps, results)
    if "edge_layer" not in args.skip:
        bench_edge_layer(args, device, results)
    if "processor" not in args.skip:
        bench_processor_layer(args, device, results)
    if "train_step" not in args.skip:
        bench_train_step(args, device, results)
    results.update(headline(results, args))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
