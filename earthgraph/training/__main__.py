"""``python -m earthgraph.training migrate CKPT [--out NEW]``: rewrite a checkpoint in the current format.

Reading a checkpoint already migrates an older format in memory
(:mod:`earthgraph.training.checkpoint_format`); this writes the migrated
checkpoint to a file, atomically: ``--out`` (default: the checkpoint itself,
replaced only once the new file is complete).
"""

from __future__ import annotations

import argparse
import sys

from earthgraph.training.checkpoint_format import FORMAT, CheckpointError, format_of, load_file, upgrade
from earthgraph.training.checkpoint_io import AtomicCheckpointIO


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m earthgraph.training", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    migrate = sub.add_parser("migrate", help=f"rewrite a checkpoint in the current format ({FORMAT})")
    migrate.add_argument("checkpoint")
    migrate.add_argument("--out", default=None, help="where to write it (default: replace the checkpoint)")
    args = parser.parse_args(argv)
    try:
        checkpoint = load_file(args.checkpoint, map_location=lambda storage, loc: storage)
        before = format_of(checkpoint, args.checkpoint)
        applied = upgrade(checkpoint, args.checkpoint)
    except CheckpointError as e:
        print(f"migrate: {e}", file=sys.stderr)
        return 2
    out = args.out or args.checkpoint
    if not applied and out == args.checkpoint:
        print(f"{args.checkpoint}: format {before}, current; nothing to do")
        return 0
    AtomicCheckpointIO().save_checkpoint(checkpoint, out)
    print(f"{args.checkpoint}: format {before} -> {FORMAT} ({len(applied)} migration(s)), written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
