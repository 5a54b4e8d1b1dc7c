"""Score WB2-layout forecasts against a truth: checks, alignment, results files.

A forecast is any dataset with dims ``(time, prediction_timedelta, [level,]
[realization,] <spatial dims>)``, ``time`` the initialisation time; the truth
has ``(time, [level,] <spatial dims>)`` on the same grid. Results follow WB2:
one dataset per forecast with, for each variable, dims ``(metric, region,
lead_time[, level])``, written as netCDF, plus one long CSV table of all.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from earthgraph.scoring import ensemble, metrics
from earthgraph.scoring.areas import spatial_dims
from earthgraph.scoring.regions import Region

# (u, v, name) pairs scored as one vector, as WB2's evaluate.py does.
WIND_VECTORS = (("u_component_of_wind", "v_component_of_wind", "wind_vector"),
                ("10m_u_component_of_wind", "10m_v_component_of_wind", "10m_wind_vector"))
TABLE_COLUMNS = ["forecast", "sphere", "variable", "region", "lead_hours", "level", "metric", "value"]


def check_forecast_layout(forecast: xr.Dataset, source: str) -> None:
    """Raise a ValueError naming ``source`` unless ``forecast`` is in the WB2 forecast layout."""
    for dim in ("time", "prediction_timedelta"):
        if dim not in forecast.dims:
            raise ValueError(f"{source}: a WB2 forecast needs a {dim!r} dim; it has {tuple(forecast.dims)}")
    if not np.issubdtype(forecast.prediction_timedelta.dtype, np.timedelta64):
        raise ValueError(f"{source}: prediction_timedelta must be timedelta64, got "
                         f"{forecast.prediction_timedelta.dtype}")
    try:
        spatial_dims(forecast)
    except ValueError as err:
        raise ValueError(f"{source}: {err}") from None


def normalise_grid(ds: xr.Dataset) -> xr.Dataset:
    """Longitudes in [0, 360) and both axes ascending (lat-lon grids; HEALPix as is)."""
    if spatial_dims(ds) != ("latitude", "longitude"):
        return ds
    ds = ds.assign_coords(longitude=ds.longitude % 360.0)
    return ds.sortby(["latitude", "longitude"])


def on_truth_grid(data: xr.Dataset, truth: xr.Dataset, source: str, truth_source: str) -> xr.Dataset:
    """``data`` (a forecast or climatology, grid normalised) with the truth's exact
    coordinates, after checking that it is on the truth's grid (to 1e-6 degrees;
    WB2 scores on one grid: regrid first)."""
    fdims, tdims = spatial_dims(data), spatial_dims(truth)
    if fdims != tdims:
        raise ValueError(f"{source}: spatial dims {fdims} differ from {truth_source}'s {tdims}")
    for c in ("latitude", "longitude"):
        f, t = np.asarray(data[c].values, float), np.asarray(truth[c].values, float)
        if f.shape != t.shape:
            raise ValueError(f"{source}: {f.size} {c} values, {truth_source} has {t.size}; regrid the data to "
                             "the truth's grid first")
        off = np.flatnonzero(~np.isclose(f, t, rtol=0, atol=1e-6))
        if len(off):
            i = off[0]
            raise ValueError(f"{source}: its {c} differs from {truth_source}'s at index {i} ({f[i]:g} against "
                             f"{t[i]:g}); regrid the data to the truth's grid first")
    return data.assign_coords({c: truth[c] for c in ("latitude", "longitude") if truth[c].dims == data[c].dims})


def scored_variables(forecast: xr.Dataset, truth: xr.Dataset, source: str, truth_source: str,
                     variables: list[str] | None = None) -> list[str]:
    """The variables to score: ``variables``, or every time-dependent variable both have.

    Unknown names and differing ``units`` attributes raise, naming the file."""
    both = [v for v in forecast.data_vars if v in truth.data_vars and "time" in truth[v].dims]
    if variables is not None:
        for v in variables:
            for src, ds in ((source, forecast), (truth_source, truth)):
                if v not in ds.data_vars:
                    raise ValueError(f"{src}: no variable {v!r}; it has {sorted(map(str, ds.data_vars))}")
        both = list(variables)
    if not both:
        raise ValueError(f"{source} and {truth_source} share no variable to score")
    for v in both:
        fu, tu = forecast[v].attrs.get("units"), truth[v].attrs.get("units")
        if fu is not None and tu is not None and fu != tu:
            raise ValueError(f"{source}: variable {v!r} is in {fu!r}, {truth_source} in {tu!r}; convert first")
    return both


def _deterministic(f: xr.DataArray, o: xr.DataArray, w: xr.DataArray, clim: xr.DataArray | None,
                   scored: xr.DataArray | None) -> dict[str, xr.DataArray]:
    out = {}  # rmse is the root of the mse just scored, not a second pass over the fields
    for name, fn in metrics.DETERMINISTIC.items():
        out[name] = np.sqrt(out["mse"]) if name == "rmse" and "mse" in out else fn(f, o, w, scored=scored)
    if clim is not None:
        out["acc"] = metrics.acc(f, o, clim, w, scored=scored)
    return out


def _ensemble(f: xr.DataArray, o: xr.DataArray, w: xr.DataArray, member: str, skill: xr.DataArray,
              scored: xr.DataArray | None) -> dict[str, xr.DataArray]:
    """``skill``: the ensemble mean's RMSE, already scored as the deterministic rmse."""
    spread = ensemble.ensemble_spread(f, w, member, scored=scored)
    return {"crps": ensemble.crps(f, o, w, member, scored=scored), "ensemble_mean_rmse": skill,
            "spread": spread, "spread_skill_ratio": spread / skill}


def _labels(names, dim: str) -> pd.Index:
    # object dtype: pandas' string dtype does not align when variables have different metrics
    return pd.Index(list(names), dtype=object, name=dim)


def _region_weights(regions: dict[str, Region], like: xr.Dataset) -> list[xr.DataArray]:
    """Each region's weights over the spatial dims of ``like`` (the truth: every variable
    is on its grid), computed once for all the variables scored."""
    return [metrics.region_weights(like, region) for region in regions.values()]


def _per_region(regions: dict[str, Region], weights: list[xr.DataArray], valid: xr.DataArray | None,
                score) -> xr.DataArray:
    """``score(weights)`` -> {metric: DataArray}, for every region, stacked on (region, metric).
    ``weights``: the regions' own (:func:`_region_weights`), in the order of ``regions``.

    ``valid``: where the truth exists; other points get weight 0 (left out, whatever
    the forecast holds there). Where the truth exists at the same points at every
    time (a land or sea mask), all regions are scored at once: the weights carry a
    ``region`` dim and every spatial average is one matrix product. A truth whose
    gaps move is scored region by region."""
    labels = _labels(regions, "region")
    fixed = _fixed_mask(valid)
    if valid is None or fixed is not None:
        w = xr.concat(weights, dim=labels, coords="minimal")
        per_metric = score(w if fixed is None else w * fixed)
        return xr.concat(list(per_metric.values()), dim=_labels(per_metric, "metric"), coords="minimal")
    per_region = []
    for w in weights:
        per_metric = score(w * valid)
        per_region.append(xr.concat(list(per_metric.values()), dim=_labels(per_metric, "metric"), coords="minimal"))
    return xr.concat(per_region, dim=labels, coords="minimal")


def _fixed_mask(valid: xr.DataArray | None) -> xr.DataArray | None:
    """``valid`` over its spatial dims alone if it is the same in every field that has
    any truth (a field with none, an unverified time, scores NaN either way), else None."""
    if valid is None:
        return None
    dims = spatial_dims(valid)
    other = [d for d in valid.dims if d not in dims]
    fields = valid.transpose(*other, *dims).values.reshape(-1, int(np.prod([valid.sizes[d] for d in dims])))
    fields = fields[fields.any(axis=1)]
    if len(fields) == 0 or not (fields == fields[0]).all():
        return None
    return xr.DataArray(fields[0].reshape([valid.sizes[d] for d in dims]).astype(np.float64), dims=dims,
                        coords={k: c for k, c in valid.coords.items() if c.dims and set(c.dims) <= set(dims)})


def score_forecast(forecast: xr.Dataset, truth: xr.Dataset, regions: dict[str, Region],
                   climatology: xr.Dataset | None = None, variables: list[str] | None = None,
                   skip_missing_truth: bool = True, scored: xr.DataArray | None = None) -> xr.Dataset:
    """WB2 scores of one forecast against the truth aligned to it (same layout).

    Deterministic metrics (mse, rmse, bias, mae, and acc given a climatology in
    the same layout) score the ensemble mean of an ensemble, which also gets
    crps, ensemble_mean_rmse, spread and spread_skill_ratio. A wind-vector
    variable is added for each (u, v) pair present.

    skip_missing_truth: points where the truth is NaN (SST over land) are left
    out; a NaN *forecast* where the truth exists still makes the score NaN, so a
    forecast that blew up never looks good. False: WB2's default, any NaN in a
    region makes its score NaN.

    scored: optional (time, prediction_timedelta) bool, the (initialisation, lead)
    pairs verified (:func:`~earthgraph.scoring.baselines.verification_pairs`); each
    lead's time mean is then over its own verified initialisations. Without it every
    pair is scored.

    Returns a dataset with, per variable, dims (metric, region, lead_time[, level]).
    """
    member = ensemble.ensemble_dim(forecast)
    names = variables or list(forecast.data_vars)
    weights = _region_weights(regions, truth)  # the same grid for every variable
    out = {}
    for var in names:
        f, o = forecast[var].astype(np.float64).load(), truth[var].astype(np.float64).load()
        f_det = f.mean(member, skipna=False) if member else f
        clim = climatology[var].astype(np.float64).load() if climatology is not None and var in climatology else None
        valid = o.notnull() if skip_missing_truth else None

        def score(w, f=f, f_det=f_det, o=o, clim=clim):
            result = _deterministic(f_det, o, w, clim, scored)
            if member:
                result.update(_ensemble(f, o, w, member, result["rmse"], scored))
            return result

        out[var] = _per_region(regions, weights, valid, score)
        out[var].attrs = {k: truth[var].attrs[k] for k in ("units", "sphere") if k in truth[var].attrs}
    for u, v, name in WIND_VECTORS:
        if u in names and v in names:
            fu, fv = forecast[u].astype(np.float64), forecast[v].astype(np.float64)
            tu, tv = truth[u].astype(np.float64), truth[v].astype(np.float64)
            if member:
                fu, fv = fu.mean(member, skipna=False), fv.mean(member, skipna=False)
            valid = (tu.notnull() & tv.notnull()) if skip_missing_truth else None

            def wind(w, fu=fu, fv=fv, tu=tu, tv=tv):
                m = metrics.wind_vector_mse(fu, fv, tu, tv, w, scored=scored)
                return {"mse": m, "rmse": np.sqrt(m)}

            out[name] = _per_region(regions, weights, valid, wind)
            out[name].attrs = {"units": truth[u].attrs.get("units", ""), "sphere": truth[u].attrs.get("sphere", "")}
    ds = xr.Dataset(out).rename(prediction_timedelta="lead_time")
    ds = ds.drop_vars([c for c in ds.coords if c not in ds.dims])
    return ds.transpose("metric", "region", "lead_time", ...)


def results_table(results: dict[str, xr.Dataset]) -> pd.DataFrame:
    """All forecasts' results as one long table (:data:`TABLE_COLUMNS`); ``level`` is
    NaN for single-level variables."""
    frames = []
    for name, ds in results.items():
        for var, da in ds.data_vars.items():
            df = da.to_dataframe(name="value").reset_index()
            df["lead_hours"] = df.pop("lead_time") / pd.Timedelta(hours=1)
            if "level" not in df:
                df["level"] = np.nan
            df["forecast"], df["variable"], df["sphere"] = name, var, da.attrs.get("sphere", "")
            frames.append(df[TABLE_COLUMNS])
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=TABLE_COLUMNS)


def write_results(results: dict[str, xr.Dataset], out_dir: str | Path) -> dict[str, Path]:
    """Write ``scores/<forecast>.nc`` (WB2 results layout) per forecast and
    ``scores.csv`` (all of them); returns the paths written."""
    out_dir = Path(out_dir)
    (out_dir / "scores").mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, ds in results.items():
        path = out_dir / "scores" / f"{name}.nc"
        tmp = path.with_suffix(".nc.tmp")
        ds.assign_attrs(forecast=name, conventions="WeatherBench2 results layout: (metric, region, lead_time[, level])"
                        ).to_netcdf(tmp, engine="netcdf4")
        tmp.replace(path)  # atomic: an old results file is never left half-written
        paths[name] = path
    table = results_table(results)
    table.to_csv(out_dir / "scores.csv", index=False)
    paths["csv"] = out_dir / "scores.csv"
    return paths
