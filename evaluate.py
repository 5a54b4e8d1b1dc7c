"""Score forecasts: ``python evaluate.py --checkpoint outputs/quickstart/checkpoints/last.ckpt``.

The same command as the installed ``earthgraph-evaluate`` (``earthgraph.evaluate.cli``):
a checkpoint's forecasts, or any WB2-layout forecast zarr (``--forecast``), scored the
WeatherBench2 way against the gridded truth, the observations and stations
(``python evaluate.py --help``). Bad input ends it with a message naming the input, its
path and the field, and exit status 1.
"""

import sys

from earthgraph.evaluate.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="evaluate.py"))
