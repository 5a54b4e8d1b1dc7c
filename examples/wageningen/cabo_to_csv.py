"""Wageningen's daily weather (1976-1999) from the pcse wheel's CABO files, as one CSV.

The ``pcse`` package on PyPI ships the station record of Wageningen (Haarweg),
the Netherlands, 51.97 N 5.67 E, 7 m, in the CABO weather format used by crop
models: one file a year (``pcse/tests/test_data/NL1.976`` .. ``NL1.999``),
comment lines starting with ``*``, a line with longitude, latitude and altitude,
then a row a day: station, year, day of year, irradiation (kJ m-2 d-1),
minimum and maximum temperature (degC), early-morning vapour pressure (kPa),
mean wind speed at 2 m (m s-1) and precipitation (mm d-1); -99 marks a missing
value; rows starting with -999, and the first of two rows for one day, are
flags, not data. Read in place from the
wheel (EUPL licence); nothing of it is copied into this repository.

    python -m pip download --no-deps pcse==6.0.13 -d data/wageningen
    python examples/wageningen/cabo_to_csv.py data/wageningen/pcse-6.0.13-py3-none-any.whl \\
        data/wageningen/wageningen.csv

Each day's values are stamped 12:00 UTC of that day, so a 24 h window starting
at 00 UTC holds exactly one report.
"""

from __future__ import annotations

import argparse
import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = ["station", "year", "day", "irradiation", "tmin", "tmax", "vapour_pressure", "wind", "rain"]
MISSING = -99.0
STATION_ID = "NL-Wageningen"


def read_cabo(text: str) -> pd.DataFrame:
    """One CABO weather file as a DataFrame with ``time``, ``lat``, ``lon``, ``elevation`` and
    the daily values (missing ones NaN)."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("*")]
    lon, lat, elevation = (float(x) for x in lines[0].split()[:3])
    rows = pd.read_csv(io.StringIO("\n".join(lines[1:])), sep=r"\s+", header=None, names=COLUMNS)
    rows = rows[rows["station"] != -999].astype(float)  # -999 rows are quality flags
    # Some years (1989) flag a day in a row of source codes just before its data, under the
    # station's own number: of two rows for one day, the data are the last.
    rows = rows.drop_duplicates(["year", "day"], keep="last")
    rows = rows.mask(rows <= MISSING)
    day = pd.to_datetime(rows["year"].astype(int).astype(str), format="%Y") + pd.to_timedelta(rows["day"] - 1, "D")
    return pd.DataFrame({"station": STATION_ID, "time": (day + pd.Timedelta(hours=12)).dt.strftime("%Y-%m-%dT%H:%MZ"),
                         "lat": lat, "lon": lon, "elevation": elevation,
                         **{c: rows[c].to_numpy() for c in COLUMNS[3:]}})


def wheel_record(wheel: str | Path) -> pd.DataFrame:
    """Every year of NL1 in the pcse wheel, in time order."""
    with zipfile.ZipFile(wheel) as z:
        names = sorted(n for n in z.namelist() if re.search(r"test_data/NL1\.\d{3}$", n))
        if not names:
            raise SystemExit(f"{wheel}: no pcse/tests/test_data/NL1.* files; is this the pcse wheel?")
        return pd.concat([read_cabo(z.read(n).decode("latin-1")) for n in names], ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("wheel", help="the pcse wheel (pip download --no-deps pcse==6.0.13)")
    parser.add_argument("out", help="CSV to write")
    args = parser.parse_args()
    table = wheel_record(args.wheel)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    print(f"{args.out}: {len(table)} days, {table['time'].iloc[0][:10]} .. {table['time'].iloc[-1][:10]}, "
          f"missing values: {int(np.isnan(table[COLUMNS[3:]].to_numpy()).sum())}")


if __name__ == "__main__":
    main()
