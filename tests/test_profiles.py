"""Device profiles load, and bad ones fail naming the file, the field and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit.errors import ConfigError
from labkit.profiles import STIMULATOR_MODELS, devices_dir, list_profiles, load_profile

SHIPPED = ["magstim-200", "magstim-bistim", "magstim-rapid2", "magventure-x100", "simulated"]


def test_every_required_profile_is_shipped():
    assert set(SHIPPED) <= set(list_profiles())


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profile_loads(name):
    profile = load_profile(name)
    assert profile.stimulator.model in STIMULATOR_MODELS
    assert profile.mep.window_ms[0] < profile.mep.window_ms[1]
    assert profile.path.name == f"{name}.toml"


def test_simulated_is_default_and_simulated():
    profile = load_profile()
    assert profile.rig.simulated
    assert profile.stimulator.port == "sim"
    assert profile.driver_name == "Rapid"  # single pulses and rTMS on one simulated unit


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rig.toml"
    path.write_text(text)
    return path


VALID = devices_dir() / "magstim-200.toml"


def test_unknown_model_names_file_field_and_choices(tmp_path):
    text = VALID.read_text().replace('model = "magstim-200"', 'model = "magstim-9000"')
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_profile(path)
    message = str(info.value)
    assert str(path) in message
    assert "stimulator.model" in message
    assert "magventure-x100" in message and "magstim-9000" in message
    assert info.value.field == "stimulator.model"


def test_window_out_of_order_is_refused(tmp_path):
    path = _write(tmp_path, VALID.read_text().replace("[15.0, 50.0]", "[50.0, 15.0]"))
    with pytest.raises(ConfigError, match=r"mep\.window_ms.*0 <= start < stop <= 500"):
        load_profile(path)


def test_typo_field_is_refused(tmp_path):
    path = _write(tmp_path, VALID.read_text().replace("timeout_s", "timout_s"))
    with pytest.raises(ConfigError, match=r"stimulator\.timout_s.*unknown field"):
        load_profile(path)


def test_not_toml(tmp_path):
    path = _write(tmp_path, "[rig\nname=")
    with pytest.raises(ConfigError, match="not valid TOML") as info:
        load_profile(path)
    assert str(path) in str(info.value)


def test_missing_profile_lists_available():
    with pytest.raises(ConfigError, match="simulated"):
        load_profile("no-such-rig")


def test_sim_port_requires_simulated_rig(tmp_path):
    path = _write(tmp_path, VALID.read_text().replace('"/dev/ttyUSB0"', '"sim"'))
    with pytest.raises(ConfigError, match="port 'sim'"):
        load_profile(path)
