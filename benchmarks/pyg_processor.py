"""Milliseconds per processor step (forward and backward): a PyG GATConv stack against ours.

Times the processor alone, as the forecaster calls it once per window: (B, N, F)
latents and forcings on a HEALPix mesh, the loss a sum of the output, backward
through every weight. Candidates, built with the same sizes through
``build_processor`` and timed alternately, step by step, in one process:

- ``transformer``: our graph transformer (earthgraph's kernels, torch backend);
- ``interaction``: our interaction network (the default);
- ``pyg_gat``: :class:`earthgraph.processors.pyg.PyGProcessor` with ``GATConv``
  (``heads`` concatenated heads, edge features), PyG's own scatter ops.

The figures are medians over ``--steps`` steps after ``--warmup`` untimed ones.
Last line: one JSON object with every figure.

    python benchmarks/pyg_processor.py [--nside 8] [--latent 64] [--layers 4] [--batch 2] [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import torch

from earthgraph.graphs.mesh_graph import MeshGraph
from earthgraph.processors.registry import CustomProcessor, build_processor

FORCING_DIM = 6


def candidates(heads: int) -> dict[str, object]:
    gat = CustomProcessor("earthgraph.processors.pyg.PyGProcessor", {"conv": "GATConv", "conv_args": {"heads": heads}})
    return {"transformer": "transformer", "interaction": "interaction", "pyg_gat": gat}


def step_ms(processor: torch.nn.Module, h: torch.Tensor, forcing: torch.Tensor, mesh: MeshGraph) -> float:
    start = time.perf_counter()
    processor(h, forcing, mesh).sum().backward()
    processor.zero_grad(set_to_none=True)
    return 1e3 * (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nside", type=int, default=8)
    parser.add_argument("--latent", type=int, default=64)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as cache:
        mesh = MeshGraph("healpix", args.nside, cache_dir=cache)
    h = torch.randn(args.batch, mesh.npix, args.latent)
    forcing = torch.randn(args.batch, mesh.npix, FORCING_DIM)
    processors = {name: build_processor(choice, args.latent, args.latent, args.layers, FORCING_DIM,
                                        attention_heads=args.heads)
                  for name, choice in candidates(args.heads).items()}
    times: dict[str, list[float]] = {name: [] for name in processors}
    for step in range(args.warmup + args.steps):
        for name, processor in processors.items():  # alternating: a slow spell of the machine hits all alike
            ms = step_ms(processor, h, forcing, mesh)
            if step >= args.warmup:
                times[name].append(ms)
    result = {"nodes": mesh.npix, "edges": int(mesh.senders.numel()), "batch": args.batch, "latent": args.latent,
              "layers": args.layers, "heads": args.heads, "threads": torch.get_num_threads(), "steps": args.steps}
    for name, ms in times.items():
        params = sum(p.numel() for p in processors[name].parameters())
        result[f"{name}_ms"] = round(statistics.median(ms), 2)
        result[f"{name}_parameters"] = params
        print(f"{name:12s} {statistics.median(ms):8.2f} ms/step (median of {len(ms)}), {params} parameters")
    result["pyg_gat_over_transformer"] = round(result["pyg_gat_ms"] / result["transformer_ms"], 3)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
