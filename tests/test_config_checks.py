"""A training config is checked when it is parsed: wrong choices by their Literal, and what one
field cannot know alone (types, channels, spheres and periods against the store; windows and
counts) before any data is read or model built, each error naming the key and the value."""

import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from earthgraph.models import ForecasterConfig
from earthgraph.training.cli import main as train_cli
from earthgraph.training.config_checks import ConfigError
from test_training import _resume_config

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("override, match", [
    (["--model.type_weights", "{seaice: 2.0}"],
     r"model\.type_weights: observation type\(s\) \['seaice'\] are not in the store, which holds \['synop'"),
    (["--model.sphere_weights", "{oceans: 2.0}"], r"model\.sphere_weights: sphere\(s\) \['oceans'\]"),
    (["--model.forecaster.budgets", "{water: {atmosphere: [mw_sounder.tcvw], soil: []}}"],
     r"model\.forecaster\.budgets\.water\.atmosphere: 'mw_sounder\.tcvw': type 'mw_sounder' has no channel 'tcvw'"),
    (["--model.forecaster.ensemble_members", "0"], r"model\.forecaster\.ensemble_members must be >= 1, got 0"),
    (["--model.forecaster.latent_noise", "-0.1"], r"model\.forecaster\.latent_noise must be >= 0, got -0\.1"),
    (["--data.history_windows", "{soil: 4}"], r"data\.history_windows: observation type\(s\) \['soil'\]"),
    (["--data.dropout", "{synopp: 0.5}"], r"data\.dropout: observation type\(s\) \['synopp'\]"),
    (["--data.val_period", "[2021-01-01, 2021-02-01]"],
     r"data\.val_period: \['2021-01-01', '2021-02-01'\] is not inside the store's observations, 2020-03-01"),
    (["--data.stride_hours", "0"], r"data\.stride_hours: 0\.0 must be a positive number of hours"),
    (["--data.rollout", "0"], r"data\.rollout: 0 must be at least 1"),
])
def test_cross_field_mistakes_are_named_before_anything_is_built(small_osse, tmp_path, override, match):
    out, _ = small_osse
    with pytest.raises(ConfigError, match=match):
        train_cli(["fit", "--config", str(_resume_config(tmp_path, out, "run")), *override])
    assert not (tmp_path / "run").exists(), "nothing was written: no trainer ran"


@pytest.mark.parametrize("option, value, choices", [
    ("model.forecaster.mesh", "healpx", "Literal['healpix', 'icosahedral']"),
    ("model.forecaster.kernel_backend", "trition", "Literal['auto', 'torch', 'triton', 'cuda', 'torch_scatter']"),
    ("model.forecaster.processor", "interacton", "Literal['interaction', 'transformer']"),
])
def test_a_wrong_choice_is_refused_when_parsed_naming_the_choices(option, value, choices):
    proc = subprocess.run([sys.executable, "train.py", "fit", "--config", "configs/quickstart.yaml",
                           f"--{option}", value, "--print_config"], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode != 0
    assert f'Parser key "{option}"' in proc.stderr and choices in proc.stderr
    assert value in proc.stderr


def test_print_config_shows_each_option_once():
    """The forecaster's options live in model.forecaster alone: none is repeated on the module,
    and window_hours is the data's (linked into the forecaster, not an option of its own)."""
    proc = subprocess.run([sys.executable, "train.py", "fit", "--config", "configs/quickstart.yaml", "--print_config"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    config = yaml.safe_load(proc.stdout)
    model, forecaster = config["model"], config["model"]["forecaster"]
    options = [*model, *forecaster, *config["data"]]
    assert len(options) == len(set(options)), sorted(o for o in options if options.count(o) > 1)
    assert forecaster["nside"] == 8 and forecaster["processor_statics"] is True and model["lr"] == 0.002
    assert "window_hours" in config["data"] and "window_hours" not in forecaster
    assert {f.name for f in fields(ForecasterConfig)} - set(forecaster) == {"window_hours"}


def test_a_weight_on_a_type_unobserved_in_the_training_period_is_warned_of():
    import warnings

    from earthgraph.data.store import ObservationStore
    from earthgraph.training.config_checks import check_weighted_types_observed

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fixture is a schema-1 store, read through its migration
        store = ObservationStore(REPO / "tests" / "fixtures" / "store-schema-1")
    # synop reports 2020-03-01T00:00 .. 03-04T02:30, amv 2020-03-01T00:00 .. 03-03T18:20
    weights = {"synop": 2.0, "amv": 0.0}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_weighted_types_observed(weights, {"train_period": ["2020-03-04", "2020-03-05"]}, store)
    with pytest.warns(UserWarning, match=r"model\.type_weights\.synop: 2\.0, but the store has no 'synop' observation "
                                         r"in data\.train_period \['2020-03-04T03:00', '2020-03-05'\] \(it has "
                                         r"2020-03-01T00:00:00 \.\. 2020-03-04T02:30:00\)") as caught:
        check_weighted_types_observed(weights, {"train_period": ["2020-03-04T03:00", "2020-03-05"]}, store)
    assert len(caught) == 1, "a zero weight is no mistake"
