"""``python -m earthgraph.evaluate``: the same command as ``earthgraph-evaluate``."""

import sys

from earthgraph.evaluate.cli import main

sys.exit(main(prog="python -m earthgraph.evaluate"))
