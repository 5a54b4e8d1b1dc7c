"""Score WB2-layout forecasts against a truth: checks, alignment, results files.

A forecast is any dataset with dims ``(time, prediction_timedelta, [level,]
[realization,] <spatial dims>)``, ``time`` the initialisation time; the truth
has ``(time, [level,] <spatial dims>)`` on the same grid. Results follow WB2:
one dataset per forecast with, for each variable, dims ``(metric, region,
lead_time[, level])``, written as netCDF, plus one long CSV table of all.

The inputs are checked and aligned first (:mod:`earthgraph.scoring.layout`). Scoring
is two steps: :func:`forecast_terms`, the per-forecast area means (one value
per initialisation, lead[, level] and region), then :func:`finish_scores`, WB2's time
means, roots and ratios. :func:`score_forecast` does both in memory;
``earthgraph.scoring.chunked`` computes the terms chunk by chunk of initialisations
(:func:`concat_terms`) for forecasts of any size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

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


Kind = Literal["deterministic", "ensemble", "wind"]


@dataclass
class RegionTerms:
    """The per-forecast terms of one variable, before the time mean: each a DataArray with
    dims ``(time, prediction_timedelta[, level])`` (plus ``region`` when all regions are
    scored at once), in the variable's units squared, units, or dimensionless.

    ``terms`` holds one dict for all regions at once (``regions`` None), or one dict per
    region, in the order of ``regions`` (a truth whose gaps move). ``kind`` says which
    scores they finish into; ``attrs``, the truth's units and sphere, go on the scores."""

    kind: Kind
    terms: list[dict[str, xr.DataArray]]
    regions: pd.Index | None
    attrs: dict
    counts: dict[str, int] = field(default_factory=dict)  # value_counts: what was left out or not finite


def _deterministic_terms(f: xr.DataArray, o: xr.DataArray, w: xr.DataArray,
                         clim: xr.DataArray | None) -> dict[str, xr.DataArray]:
    """Per-forecast area means (the metrics' definitions, :mod:`metrics`, before their time mean)."""
    d = f - o
    terms = {"squared_error": metrics.spatial_average(d ** 2, w), "error": metrics.spatial_average(d, w),
             "absolute_error": metrics.spatial_average(abs(d), w),
             "forecast_variance": metrics.spatial_variance(f, w), "truth_variance": metrics.spatial_variance(o, w)}
    if clim is not None:
        terms["acc"] = metrics.anomaly_correlation(f, o, clim, w)
    return terms


def _ensemble_terms(f: xr.DataArray, o: xr.DataArray, w: xr.DataArray, member: str) -> dict[str, xr.DataArray]:
    """Per-forecast area means of the fair CRPS and of the members' unbiased variance
    (:func:`ensemble.crps` and :func:`ensemble.ensemble_spread` before their time mean)."""
    if f.sizes[member] < 2:  # one member: no spread, NaN where the member is
        var = xr.zeros_like(f.isel({member: 0}, drop=True)).where(f.notnull().all(member))
    else:
        var = f.var(member, ddof=1, skipna=False)
    return {"crps": metrics.spatial_average(ensemble.crps_pointwise(f, o, member), w),
            "member_variance": metrics.spatial_average(var, w)}


def _scores(terms: dict[str, xr.DataArray], kind: Kind, scored: xr.DataArray | None) -> dict[str, xr.DataArray]:
    """WB2's scores from the per-forecast terms: time means over the verified pairs, roots
    after the mean (rmse, spread), ratios of means (variance_ratio, spread_skill_ratio)."""
    def mean(name: str) -> xr.DataArray:
        return metrics.time_mean(terms[name], False, scored)

    out = {"mse": mean("squared_error")}
    out["rmse"] = np.sqrt(out["mse"])  # the root of the mse just scored, not a second pass
    if kind == "wind":
        return out
    out["bias"], out["mae"] = mean("error"), mean("absolute_error")
    out["variance_ratio"] = mean("forecast_variance") / mean("truth_variance")
    if "acc" in terms:
        out["acc"] = mean("acc")
    if kind == "ensemble":
        spread = np.sqrt(mean("member_variance"))
        out.update(crps=mean("crps"), ensemble_mean_rmse=out["rmse"], spread=spread,
                   spread_skill_ratio=spread / out["rmse"])
    return out


def _labels(names, dim: str) -> pd.Index:
    # object dtype: pandas' string dtype does not align when variables have different metrics
    return pd.Index(list(names), dtype=object, name=dim)


def region_weights(regions: dict[str, Region], like: xr.Dataset | xr.DataArray) -> list[xr.DataArray]:
    """Each region's weights over the spatial dims of ``like`` (the truth: every variable
    is on its grid), computed once for all the variables scored, in memory (a mask
    computed lazily from the truth, such as sea ice, is computed here once)."""
    return [metrics.region_weights(like, region).compute() for region in regions.values()]


def _region_terms(names: list[str], weights: list[xr.DataArray], valid: xr.DataArray | None, terms_of,
                  kind: Kind, attrs: dict) -> RegionTerms:
    """``terms_of(weights)`` -> {term: DataArray} for every region (``names``, ``weights``:
    :func:`region_weights`, same order).

    ``valid``: where the truth exists; other points get weight 0 (left out, whatever
    the forecast holds there). Where the truth exists at the same points at every
    time (a land or sea mask), all regions are scored at once: the weights carry a
    ``region`` dim and every spatial average is one matrix product. A truth whose
    gaps move is scored region by region."""
    labels = _labels(names, "region")
    fixed = _fixed_mask(valid)
    if valid is None or fixed is not None:
        w = xr.concat(weights, dim=labels, coords="minimal")
        return RegionTerms(kind, [terms_of(w if fixed is None else w * fixed)], None, attrs)
    return RegionTerms(kind, [terms_of(w * valid) for w in weights], labels, attrs)


def _finish(rt: RegionTerms, scored: xr.DataArray | None) -> xr.DataArray:
    """One variable's scores, stacked on (metric, region) (region by region when so scored)."""
    def stacked(terms: dict[str, xr.DataArray]) -> xr.DataArray:
        per_metric = _scores(terms, rt.kind, scored)
        return xr.concat(list(per_metric.values()), dim=_labels(per_metric, "metric"), coords="minimal")

    if rt.regions is None:
        return stacked(rt.terms[0])
    return xr.concat([stacked(t) for t in rt.terms], dim=rt.regions, coords="minimal")


def _all_regions(rt: RegionTerms) -> dict[str, xr.DataArray]:
    """Terms with a ``region`` dim, dims ``(time, prediction_timedelta, ..., region)``."""
    terms = rt.terms[0] if rt.regions is None else {
        k: xr.concat([t[k] for t in rt.terms], dim=rt.regions, coords="minimal") for k in rt.terms[0]}
    return {k: v.transpose("time", "prediction_timedelta", ..., "region") for k, v in terms.items()}


def concat_terms(parts: list[RegionTerms]) -> RegionTerms:
    """The terms of consecutive chunks of initialisation times as one (concatenated along
    ``time``, in the given order). One part is returned as it is, so that scoring in one
    chunk is exactly :func:`score_forecast`."""
    if len(parts) == 1:
        return parts[0]
    chunks = [_all_regions(p) for p in parts]
    terms = {k: xr.concat([c[k] for c in chunks], dim="time", coords="minimal", compat="override")
             for k in chunks[0]}
    counts = {k: sum(p.counts.get(k, 0) for p in parts) for k in parts[0].counts}
    return RegionTerms(parts[0].kind, [terms], None, parts[0].attrs, counts)


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


COUNTS = ("truth_missing", "truth_infinite", "forecast_missing", "forecast_infinite", "climatology_missing",
          "too_large")
"""What :func:`value_counts` counts at the verified pairs (the attributes of each scored variable)."""


def value_counts(f: xr.DataArray, o: xr.DataArray, clim: xr.DataArray | None,
                 scored: xr.DataArray | None = None) -> dict[str, int]:
    """How many values of one variable at the verified pairs (``scored``; None: all) are
    left out of its scores or make them non-finite, so that no score becomes NaN or inf
    without saying why (see :data:`COUNTS`):

    truth_missing: NaN truth, left out (with ``skip_missing_truth``; else the score is NaN);
    truth_infinite: +-inf truth, treated as missing (not a value a truth can have);
    forecast_missing, forecast_infinite: NaN or +-inf forecast values (every member) where
        the truth exists: its scores there are NaN or inf, so a forecast that blew up never
        looks good;
    climatology_missing: a non-finite climatology where the truth exists (acc NaN);
    too_large: finite forecast, truth or climatology values where the truth exists so large
        (beyond ``sqrt(max float64 / points per field)``, 1.3e154 / sqrt(points)) that their
        squared area means may overflow to inf.

    ``f``, ``o`` and ``clim`` are in memory, aligned, ``o`` not yet cleaned of infinities."""
    npoints = int(np.prod([o.sizes[d] for d in spatial_dims(o)]))
    large = np.sqrt(np.finfo(np.float64).max / max(npoints, 1))
    verified = True if scored is None else scored.astype(bool)
    present = np.isfinite(o)
    return {"truth_missing": int((o.isnull() & verified).sum()), "truth_infinite": int(np.isinf(o).sum()),
            "forecast_missing": int((f.isnull() & present).sum()),
            "forecast_infinite": int((np.isinf(f) & present).sum()),
            "climatology_missing": 0 if clim is None else int((~np.isfinite(clim) & present).sum()),
            "too_large": sum(int(((abs(x) > large) & np.isfinite(x) & present).sum())
                             for x in (f, o, clim) if x is not None)}


def finite_truth(truth: xr.Dataset | xr.DataArray) -> xr.Dataset | xr.DataArray:
    """The truth with +-inf as missing (NaN): an infinite truth is damaged data, left out
    as a NaN truth is (:func:`value_counts` counts them)."""
    return truth.where(~np.isinf(truth))


def forecast_terms(forecast: xr.Dataset, truth: xr.Dataset, regions: dict[str, Region] | list[str],
                   climatology: xr.Dataset | None = None, variables: list[str] | None = None,
                   skip_missing_truth: bool = True, weights: list[xr.DataArray] | None = None,
                   scored: xr.DataArray | None = None) -> dict[str, RegionTerms]:
    """The per-forecast terms (:class:`RegionTerms`) of every variable of ``forecast``
    against the truth aligned to it, and of each (u, v) wind pair among ``variables``;
    the arguments as :func:`score_forecast`'s. ``regions`` may be their names alone when
    ``weights`` (:func:`region_weights`, same order) are given. Each variable's terms carry
    its :func:`value_counts` at the pairs of ``scored`` (None: every pair); an infinite
    truth is treated as missing (:func:`finite_truth`)."""
    member = ensemble.ensemble_dim(forecast)
    names = variables or list(forecast.data_vars)
    weights = weights if weights is not None else region_weights(regions, truth)
    labels = list(regions)
    out = {}
    for var in names:
        f, o = forecast[var].astype(np.float64).load(), truth[var].astype(np.float64).load()
        clim = climatology[var].astype(np.float64).load() if climatology is not None and var in climatology else None
        counts = value_counts(f, o, clim, scored)
        o = finite_truth(o)
        f_det = f.mean(member, skipna=False) if member else f
        valid = o.notnull() if skip_missing_truth else None

        def terms_of(w, f=f, f_det=f_det, o=o, clim=clim):
            terms = _deterministic_terms(f_det, o, w, clim)
            if member:
                terms.update(_ensemble_terms(f, o, w, member))
            return terms

        attrs = {k: truth[var].attrs[k] for k in ("units", "sphere") if k in truth[var].attrs}
        out[var] = _region_terms(labels, weights, valid, terms_of, "ensemble" if member else "deterministic", attrs)
        out[var].counts = counts
    for u, v, name in WIND_VECTORS:
        if u in names and v in names:
            fu, fv = forecast[u].astype(np.float64), forecast[v].astype(np.float64)
            tu, tv = finite_truth(truth[u].astype(np.float64)), finite_truth(truth[v].astype(np.float64))
            if member:
                fu, fv = fu.mean(member, skipna=False), fv.mean(member, skipna=False)
            valid = (tu.notnull() & tv.notnull()) if skip_missing_truth else None

            def wind(w, fu=fu, fv=fv, tu=tu, tv=tv):
                return {"squared_error": metrics.spatial_average((fu - tu) ** 2 + (fv - tv) ** 2, w)}

            attrs = {"units": truth[u].attrs.get("units", ""), "sphere": truth[u].attrs.get("sphere", "")}
            out[name] = _region_terms(labels, weights, valid, wind, "wind", attrs)
    return out


def finish_scores(terms: dict[str, RegionTerms], scored: xr.DataArray | None = None) -> xr.Dataset:
    """WB2 results of one forecast from its per-forecast terms (:func:`forecast_terms`, or
    :func:`concat_terms` of chunks of initialisations): per variable, dims
    (metric, region, lead_time[, level]). ``scored`` as in :func:`score_forecast`."""
    out = {}
    for var, rt in terms.items():
        out[var] = _finish(rt, scored)
        # The metrics this variable has (a wind vector only mse and rmse): the dataset's shared
        # metric axis fills the others with NaN, which results_table leaves out.
        out[var].attrs = {**rt.attrs, "metrics": [str(m) for m in out[var].metric.values], **rt.counts}
    ds = xr.Dataset(out).rename(prediction_timedelta="lead_time")
    ds = ds.drop_vars([c for c in ds.coords if c not in ds.dims])
    return ds.transpose("metric", "region", "lead_time", ...)


def score_forecast(forecast: xr.Dataset, truth: xr.Dataset, regions: dict[str, Region],
                   climatology: xr.Dataset | None = None, variables: list[str] | None = None,
                   skip_missing_truth: bool = True, scored: xr.DataArray | None = None) -> xr.Dataset:
    """WB2 scores of one forecast against the truth aligned to it (same layout), in memory.

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
    Forecasts larger than memory: :func:`earthgraph.scoring.chunked.score_forecasts`.
    """
    terms = forecast_terms(forecast, truth, regions, climatology, variables, skip_missing_truth, scored=scored)
    return finish_scores(terms, scored)


def results_table(results: dict[str, xr.Dataset]) -> pd.DataFrame:
    """All forecasts' results as one long table (:data:`TABLE_COLUMNS`); ``level`` is
    NaN for single-level variables. A variable's rows are the metrics it has (its
    ``metrics`` attribute: a wind vector's mse and rmse), not the shared axis's others."""
    frames = []
    for name, ds in results.items():
        for var, da in ds.data_vars.items():
            if "metrics" in da.attrs:  # not the metrics another variable has and this one has not
                da = da.sel(metric=[m for m in da.metric.values if m in list(da.attrs["metrics"])])
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
