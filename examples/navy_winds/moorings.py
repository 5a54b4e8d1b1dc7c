"""Point observations at the TAO/TRITON mooring sites, from a gridded wind file.

The moored buoys of the tropical Pacific array (8 S to 8 N, 137 E to 95 W) report
surface winds once a day here: the file's winds interpolated to each mooring and
to 12 UTC of each day (bilinear in space, linear in time, as the observing systems
sample it), plus a 0.5 m/s Gaussian report error, seeded. A station table in the
long layout that ``evaluate.py --stations-obs`` reads:
``station, time, variable, value, lat, lon``.

    python examples/navy_winds/moorings.py monthly_navy_winds.cdf moorings.parquet \\
        --rename UWND=u_component_of_wind --rename VWND=v_component_of_wind
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from earthgraph.data.gridded import open_gridded
from earthgraph.data.sampler import TruthSampler

LATITUDES = (-8.0, -5.0, -2.0, 0.0, 2.0, 5.0, 8.0)
LONGITUDES = (137.0, 147.0, 156.0, 165.0, 180.0, -170.0, -155.0, -140.0, -125.0, -110.0, -95.0)
VARIABLES = ("u_component_of_wind", "v_component_of_wind")
REPORT_ERROR = 0.5  # m s-1


def mooring_table(path: str, rename: dict[str, str], seed: int = 0) -> pd.DataFrame:
    """Daily 12 UTC winds at every mooring, from the first to the last whole day of the file."""
    truth = open_gridded(path, variables=list(VARIABLES), rename=rename)
    truth["land_sea_mask"] = truth[VARIABLES[0]].isel(time=0) * 0.0  # the sampler asks for one; moorings are at sea
    sampler = TruthSampler(truth.load())
    lat, lon = (a.ravel() for a in np.meshgrid(LATITUDES, LONGITUDES, indexing="ij"))
    first, last = (pd.Timestamp(t).ceil("D") for t in truth.time.values[[0, -1]])
    days = pd.date_range(first, last - pd.Timedelta(days=1), freq="D") + pd.Timedelta(hours=12)
    seconds = days.values.astype("datetime64[s]").astype(np.int64).astype(np.float64)
    rng = np.random.default_rng(seed)
    t, la, lo = (np.repeat(seconds, len(lat)), np.tile(lat, len(days)), np.tile(lon, len(days)))
    rows = []
    for name in VARIABLES:
        value = sampler.sample(name, t, la, lo) + rng.normal(0.0, REPORT_ERROR, len(t))
        rows.append(pd.DataFrame({"station": [f"{a:+.0f}N{b:+.0f}E" for a, b in zip(la, lo)],
                                  "time": pd.to_datetime(t, unit="s"), "variable": name, "value": value,
                                  "lat": la, "lon": lo}))
    return pd.concat(rows, ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("gridded", help="the wind file (ferret's monthly_navy_winds.cdf)")
    parser.add_argument("out", help="parquet table to write")
    parser.add_argument("--rename", action="append", default=[], metavar="FILE_NAME=EARTHGRAPH_NAME")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    table = mooring_table(args.gridded, dict(r.split("=", 1) for r in args.rename), args.seed)
    table.to_parquet(args.out, index=False)
    print(f"{args.out}: {table.station.nunique()} moorings, {table.time.nunique()} days, {len(table)} reports")


if __name__ == "__main__":
    main()
