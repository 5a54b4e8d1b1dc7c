"""Digests of the seeded outputs a restructuring must keep bit-identical.

Runs, in a temporary folder and from scratch:
  - the nature run + observing systems (``python -m earthgraph.data generate``), both atmospheres;
  - the static graph caches (HEALPix and icosahedral, with multi-scale edges), and the
    conservative remap cache a model with static fields builds;
  - a short seeded training on the quickstart config (its checkpoint's weights);
  - ``evaluate.py`` on that checkpoint (scores.csv, obs_space.csv, diagnostics.csv).

Prints one line per output and, last, every digest as one JSON object. Save the JSON of
a commit and compare another commit's against it with ``--compare FILE``: a refactor
that keeps behaviour prints "identical" for every output.

    python benchmarks/seeded_outputs.py > before.json   # (last line)
    python benchmarks/seeded_outputs.py --compare before.json

About 3 minutes on the 2-core CPU machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def tree_digest(folder: Path) -> str:
    """sha256 over every file's relative path and bytes, in sorted order (the folder's own
    path, which summaries name, taken out)."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode())
        h.update(path.read_bytes().replace(str(folder).encode(), b"<folder>"))
    return h.hexdigest()[:16]


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def run(args: list[str], env: dict) -> None:
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def weights_digest(checkpoint: Path) -> str:
    import torch

    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    h = hashlib.sha256()
    for name in sorted(state):
        h.update(name.encode())
        h.update(state[name].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", default=None, help="a JSON file of digests printed by an earlier run")
    parser.add_argument("--keep", default=None, help="work in this folder and keep it (default: a temporary one)")
    args = parser.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="earthgraph-seeded-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "HOME": str(work / "home"),
           "PYTHONPATH": str(ROOT)}
    digests: dict[str, str] = {}

    for atmosphere in ("waves", "vorticity"):
        out = work / f"data-{atmosphere}"
        run(["-m", "earthgraph.data", "generate", "--out", str(out), "--days", "30", "--seed", "0",
             "--obs-scale", "0.5", "--nlat", "32", "--nlon", "64", "--atmosphere", atmosphere,
             "--statics", "synthetic"], env)
        digests[f"nature_run_{atmosphere}"] = tree_digest(out)

    data = work / "data-waves"
    run_dir = work / "run"
    override = work / "seeded.yaml"
    override.write_text(json.dumps({
        "trainer": {"max_steps": 20, "val_check_interval": 10, "limit_val_batches": 2, "logger": False,
                    "default_root_dir": str(run_dir),
                    "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                                   "init_args": {"dirpath": str(run_dir / "ckpt"), "save_last": True,
                                                 "save_top_k": 0}}]},
        "data": {"store": str(data / "obs.zarr"), "train_period": ["2020-01-01", "2020-01-20"],
                 "val_period": ["2020-01-20", "2020-01-25"], "test_period": ["2020-01-25", "2020-01-30"]}}))
    run(["train.py", "fit", "--config", "configs/quickstart.yaml", "--config", str(override)], env)
    checkpoint = sorted((run_dir / "ckpt").glob("last*.ckpt"))[-1]
    digests["checkpoint_weights"] = weights_digest(checkpoint)
    graphs = work / "home" / ".cache" / "earthgraph" / "graphs"
    digests["graph_cache"] = tree_digest(graphs)

    for mesh, level in (("healpix", 4), ("icosahedral", 3)):
        code = ("from earthgraph.graphs.mesh import mesh_graph; "
                f"mesh_graph('{mesh}', {level}, 2, '{work / 'graphs-extra'}')")
        run(["-c", code], env)
    digests["graph_cache_multiscale"] = tree_digest(work / "graphs-extra")

    scores = work / "scores"
    run(["evaluate.py", "--checkpoint", str(checkpoint), "--data-dir", str(data), "--out", str(scores),
         "--period", "2020-01-25", "2020-01-29", "--diagnostic-days", "3", "--spin-up-days", "2"], env)
    for name in ("scores.csv", "obs_space.csv", "diagnostics.csv"):
        path = scores / name
        digests[name] = file_digest(path) if path.exists() else "missing"

    before = json.loads(Path(args.compare).read_text().strip().splitlines()[-1]) if args.compare else {}
    for name, value in digests.items():
        verdict = "" if not before else ("  identical" if before.get(name) == value else
                                         f"  DIFFERENT (was {before.get(name)})")
        print(f"{name:24s} {value}{verdict}")
    print(json.dumps(digests))


if __name__ == "__main__":
    main()
