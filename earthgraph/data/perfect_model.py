"""The perfect-model bound: forecasts of the nature run by its own model.

In an OSSE the forecast model that made the truth is known, so the error left
to a *perfect* model is the growth of its initial-state error alone. A
perfect-model forecast starts, at each initialisation time, from the true
state plus a small seeded perturbation and runs the nature run's own
equations (:func:`earthgraph.data.nature_physics.step`); its error against the
truth at each lead is the bound no learned model should be expected to beat
with initial states that uncertain.

The unperturbed trajectory is integrated exactly as
:func:`~earthgraph.data.nature_run.run_nature` does it (the same spin-up, the
same steps, the same clock), so with ``perturbation=0`` every forecast equals
the truth bit for bit.

What is perturbed (:func:`perturb_state`), with ``p = perturbation``:

- vorticity, only where it is prognostic (``atmosphere="vorticity"``): plus
  seeded noise, white on the dynamics' Gaussian grid, of grid RMS ``p`` times
  the vorticity's own grid RMS (as ``NatureRunConfig.perturbation`` does for
  twin runs). With ``atmosphere="waves"`` the flow is prescribed and the
  vorticity is left alone;
- air temperature (everywhere), sea-surface temperature (ocean cells only,
  then kept at or above the sea's freezing point, 271.35 K) and land-surface
  temperature (land cells only): plus independent Gaussian noise per cell of
  standard deviation ``p * TEMPERATURE_SCALE_K`` (10 K, about the spatial
  standard deviation of these fields in the nature run; the default
  ``p = 0.01`` gives 0.1 K);
- column water vapour (everywhere): multiplied by ``1 + p * N(0, 1)`` per cell
  and kept non-negative (a relative error of ``p``).

Nothing else is perturbed: thermocline temperature, soil water, snow, sea-ice
volume and concentration and the ocean freshwater keep their true values, so
they stay physically valid (non-negative water, ice concentration in [0, 1]).
The vapour perturbation changes the global water of the closed budget by a
relative ``~p / sqrt(cells)``; each forecast conserves its own total.

The noise for an initialisation time is drawn from
``numpy.random.default_rng([seed, seconds from the run's start])``: the same
seed and init time give the same numbers whatever other init times are asked
for.

This module is part of the data layer and imports no model, training or
scoring code.
"""

from __future__ import annotations

import ast
from dataclasses import asdict, fields, replace

import numpy as np
import xarray as xr

from earthgraph.data.nature_physics import T_FREEZE_SEA, NatureState, Planet
from earthgraph.data.nature_run import (
    VARIABLES,
    NatureRunConfig,
    diagnose,
    integrate,
    make_planet,
    output_times,
    spun_up_state,
    steps_per_output,
)
from earthgraph.data.vorticity import grid_rms, scaled_to_grid_rms

# Standard deviation, per unit ``perturbation``, of the noise added to the air,
# sea-surface and land-surface temperatures (K).
TEMPERATURE_SCALE_K = 10.0
DEFAULT_PERTURBATION = 0.01

_NS_PER_HOUR = 3_600_000_000_000


def nature_config_from_truth(truth: xr.Dataset) -> NatureRunConfig:
    """The :class:`NatureRunConfig` that made a nature-run truth.

    ``truth``: a dataset from :func:`~earthgraph.data.nature_run.run_nature` (or its
    ``truth.zarr``), whose ``attrs["config"]`` is ``repr(asdict(config))``. The string
    is parsed with :func:`ast.literal_eval` (never evaluated as code).

    Raises ``ValueError`` naming ``attrs['config']`` when it is missing (e.g. ERA5 or
    another gridded truth that is not a nature run), unparseable, or not a config.
    """
    text = truth.attrs.get("config")
    if text is None:
        title = truth.attrs.get("title") or truth.attrs.get("source_file") or "the truth"
        raise ValueError(f"{title!s} has no attrs['config']: it is not an earthgraph nature run, so no "
                         f"perfect-model forecast can be made for it")
    try:
        values = ast.literal_eval(text) if isinstance(text, str) else None
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as err:
        raise ValueError(f"truth attrs['config'] is not a parseable nature-run config: {err}") from None
    if not isinstance(values, dict):
        raise ValueError(f"truth attrs['config'] is not a nature-run config (a dict of its fields): "
                         f"{str(text)[:200]!r}")
    known = {f.name for f in fields(NatureRunConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"truth attrs['config'] has fields NatureRunConfig does not know: {unknown}")
    if isinstance(values.get("stirring_wavenumbers"), list):
        values["stirring_wavenumbers"] = tuple(values["stirring_wavenumbers"])
    try:
        return NatureRunConfig(**values)
    except (TypeError, ValueError) as err:
        raise ValueError(f"truth attrs['config'] does not make a valid NatureRunConfig: {err}") from None


def perturb_state(planet: Planet, state: NatureState, perturbation: float,
                  rng: np.random.Generator) -> NatureState:
    """``state`` perturbed (see the module docstring for what and by how much).

    ``perturbation``: the relative size ``p`` (dimensionless, >= 0); ``0`` returns
    ``state`` and draws nothing. Surface fields are ``(nlat, nlon)`` on
    ``planet.grid``; the vorticity is spectral. States are immutable: ``state`` is
    left as it was. Draws, in this order, the vorticity noise field (chaotic
    atmosphere only), then one ``(nlat, nlon)`` standard normal field each for air
    temperature, vapour, SST and LST.
    """
    if perturbation == 0:
        return state
    vorticity = state.vorticity
    if vorticity is not None:
        g = planet.atmosphere.gaussian
        noise = g.analyse(rng.standard_normal((g.nlat, g.nlon)))
        vorticity = vorticity + scaled_to_grid_rms(g, noise, perturbation * grid_rms(g, vorticity))
    s = state.surface
    shape = s.air_temperature.shape
    sigma = perturbation * TEMPERATURE_SCALE_K
    n_air, n_vap, n_sst, n_lst = (rng.standard_normal(shape) for _ in range(4))
    surface = replace(
        s, air_temperature=s.air_temperature + sigma * n_air,
        vapour=np.maximum(s.vapour * (1.0 + perturbation * n_vap), 0.0),
        sst=np.where(planet.ocean, np.maximum(s.sst + sigma * n_sst, T_FREEZE_SEA), s.sst),
        lst=np.where(planet.land, s.lst + sigma * n_lst, s.lst))
    return NatureState(surface, vorticity)


def _lead_steps(config: NatureRunConfig, leads_hours) -> tuple[np.ndarray, np.ndarray]:
    """Leads as timedelta64[ns] and as whole model steps; ValueError for a bad lead."""
    leads = list(leads_hours)
    if not leads:
        raise ValueError("perfect_model_forecast: leads_hours is empty")
    if len(set(leads)) != len(leads):
        raise ValueError(f"perfect_model_forecast: leads_hours has repeats: {leads}")
    dt_hours = config.dt_minutes / 60.0
    steps = []
    for lead in leads:
        n = round(float(lead) / dt_hours)
        if not np.isfinite(float(lead)) or lead < 0 or abs(n * dt_hours - float(lead)) > 1e-9:
            raise ValueError(f"perfect_model_forecast: lead {lead} h is not a non-negative multiple of the "
                             f"model step ({config.dt_minutes} min)")
        steps.append(n)
    deltas = np.array([round(float(lead) * _NS_PER_HOUR) for lead in leads], dtype="timedelta64[ns]")
    return deltas, np.array(steps, dtype=np.int64)


def _init_steps(config: NatureRunConfig, init_times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N,) init times as datetime64[ns] and as model steps after ``config.start``; ValueError
    for an empty list, repeats, or a time off the truth's time axis."""
    inits = np.asarray(init_times).astype("datetime64[ns]").reshape(-1)
    if inits.size == 0:
        raise ValueError("perfect_model_forecast: init_times is empty")
    if len(np.unique(inits)) != len(inits):
        raise ValueError("perfect_model_forecast: init_times has repeats")
    truth_times = output_times(config).astype("datetime64[ns]")
    position = {t: n for n, t in enumerate(truth_times.astype(np.int64).tolist())}  # ns since 1970 -> index
    every = steps_per_output(config)
    init_steps = np.empty(len(inits), dtype=np.int64)
    for i, t in enumerate(inits):
        n = None if np.isnat(t) else position.get(int(t.astype(np.int64)))
        if n is None:
            raise ValueError(f"perfect_model_forecast: init time {t} is not on the truth's time axis "
                             f"({truth_times[0]} to {truth_times[-1]} every {config.output_hours} h)")
        init_steps[i] = n * every
    return inits, init_steps


def _branch_forecasts(planet: Planet, config: NatureRunConfig, inits: np.ndarray, init_steps: np.ndarray,
                      lead_steps: np.ndarray, perturbation: float, seed: int,
                      names: list[str]) -> dict[str, np.ndarray]:
    """Each variable's (N, L, nlat, nlon) forecasts, in ``config.output_dtype``: the truth's
    trajectory integrated once, a perturbed branch run from each init to the largest lead."""
    out = {k: np.empty((len(inits), len(lead_steps), config.nlat, config.nlon), dtype=np.dtype(config.output_dtype))
           for k in names}
    max_steps = int(lead_steps.max())
    at_step = {}  # lead step count -> indices into the leads
    for j, n in enumerate(lead_steps.tolist()):
        at_step.setdefault(n, []).append(j)

    # The unperturbed trajectory, exactly as run_nature integrates it, branching at each init.
    truth_start = output_times(config).astype("datetime64[ns]")[0]
    state, seconds = spun_up_state(planet, config)
    done = 0  # steps since start
    for i in np.argsort(init_steps, kind="stable"):
        state, seconds = integrate(planet, state, seconds, int(init_steps[i]) - done, config)
        done = int(init_steps[i])
        since_start = int((inits[i] - truth_start) // np.timedelta64(1, "s"))
        rng = np.random.default_rng([int(seed), since_start])
        branch, clock = perturb_state(planet, state, perturbation, rng), seconds
        for n in range(max_steps + 1):
            if n > 0:
                branch, clock = integrate(planet, branch, clock, 1, config)
            if n in at_step:
                fields_now = diagnose(planet, branch, clock)
                for j in at_step[n]:
                    for k in names:
                        out[k][i, j] = fields_now[k]
    return out


def perfect_model_forecast(config: NatureRunConfig, init_times: np.ndarray, leads_hours: list[float],
                           perturbation: float = DEFAULT_PERTURBATION, seed: int = 0,
                           variables: list[str] | None = None) -> xr.Dataset:
    """Forecasts by the nature run's own model from perturbed true states.

    ``config``: the nature run's settings (e.g. :func:`nature_config_from_truth`).
    ``init_times``: (N,) datetime64, each a time of the truth's time axis (``start``
    and every ``output_hours`` after it), no repeats. ``leads_hours``: lead times in
    hours, non-negative multiples of ``dt_minutes``, no repeats, kept in the order
    given; ``init + lead`` may reach past the end of the run (the nature run's model
    carries on; there is no truth there to verify against). ``perturbation``: relative
    size of the initial perturbation (see the module docstring; 0 reproduces the truth
    bit for bit). ``seed``: non-negative
    integer seed of the perturbations. ``variables``: names from
    :data:`~earthgraph.data.nature_run.VARIABLES` (default all).

    Returns a WeatherBench2 forecast-layout dataset with dimensions ``(time,
    prediction_timedelta, latitude, longitude)``: ``time`` the init times (in the
    order given), ``prediction_timedelta`` the leads as timedelta64[ns], latitude and
    longitude as the truth's. Variables have the truth's names, units
    (``attrs["units"]``), dtype (``config.output_dtype``, float32 by default) and NaN
    masks (from :func:`~earthgraph.data.nature_run.diagnose`).

    Cost: one pass of the nature run up to the last init time plus ``N`` times the
    largest lead of extra integration.
    """
    if not (perturbation >= 0 and np.isfinite(perturbation)):
        raise ValueError(f"perfect_model_forecast: perturbation must be finite and >= 0, got {perturbation}")
    if int(seed) != seed or seed < 0:
        raise ValueError(f"perfect_model_forecast: seed must be a non-negative integer, got {seed}")
    names = list(VARIABLES) if variables is None else list(variables)
    unknown = [v for v in names if v not in VARIABLES]
    if unknown or not names:
        raise ValueError(f"perfect_model_forecast: unknown variables {unknown}; the nature run has {list(VARIABLES)}")
    deltas, lead_steps = _lead_steps(config, leads_hours)
    inits, init_steps = _init_steps(config, init_times)
    planet = make_planet(config)
    out = _branch_forecasts(planet, config, inits, init_steps, lead_steps, perturbation, seed, names)

    grid = planet.grid
    dims = ("time", "prediction_timedelta", "latitude", "longitude")
    ds = xr.Dataset(
        {k: (dims, out[k], {"units": VARIABLES[k][1], "sphere": VARIABLES[k][0]}) for k in names},
        coords={"time": inits, "prediction_timedelta": deltas, "latitude": grid.lat_deg,
                "longitude": grid.lon_deg},
    )
    ds.attrs.update({
        "title": "earthgraph perfect-model forecast of the nature run",
        "config": repr(asdict(config)),
        "perturbation": float(perturbation),
        "seed": int(seed),
        "perturbed": ("vorticity (chaotic atmosphere only; rms p x its rms), air temperature, SST (ocean, >= "
                      f"{T_FREEZE_SEA} K), LST (land): N(0, (p x {TEMPERATURE_SCALE_K} K)^2); vapour x (1 + p N(0,1)), "
                      ">= 0; p = perturbation"),
    })
    return ds
