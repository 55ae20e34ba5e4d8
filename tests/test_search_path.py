"""Profiles and protocols by name: the lab's folders ($LABKIT_PATH, user folder), then labkit's."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import labkit
from labkit.errors import ConfigError
from labkit.profiles import devices_dir, list_profiles, load_profile
from labkit.protocols import list_protocols, load_protocol, protocols_dir
from labkit.search_path import SEARCH_PATH_ENV, search_dirs, user_config_dir

PACKAGE = Path(labkit.__file__).resolve().parent


@pytest.fixture(autouse=True)
def _no_lab_folders(monkeypatch, tmp_path):
    """Only the folders a test sets: no $LABKIT_PATH, an empty user folder."""
    monkeypatch.delenv(SEARCH_PATH_ENV, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


def _lab(root: Path, profiles: dict[str, str] | None = None,
         protocols: dict[str, str] | None = None) -> Path:
    for kind, named in (("devices", profiles or {}), ("protocols", protocols or {})):
        (root / kind).mkdir(parents=True, exist_ok=True)
        for name, text in named.items():
            (root / kind / f"{name}.toml").write_text(text, encoding="utf-8")
    return root


def _our_rig(port: str) -> str:
    return (devices_dir() / "magstim-200.toml").read_text("utf-8").replace(
        '"/dev/ttyUSB0"', f'"{port}"')


def test_shipped_files_are_package_resources():
    assert devices_dir().resolve().is_relative_to(PACKAGE)
    assert protocols_dir().resolve().is_relative_to(PACKAGE)
    assert load_profile("simulated").path.resolve().is_relative_to(PACKAGE)
    assert load_protocol("m1_10hz_pain_1000").path.resolve().is_relative_to(PACKAGE)


def test_lab_folder_on_labkit_path_adds_and_shadows(tmp_path, monkeypatch):
    shipped = load_protocol("m1_20hz")
    ours = (protocols_dir() / "m1_20hz.toml").read_text("utf-8").replace(
        'description = """', 'description = """Our lab\'s copy. ', 1)
    lab = _lab(tmp_path / "lab", {"our-rig": _our_rig("/dev/ttyUSB7")}, {"m1_20hz": ours})
    monkeypatch.setenv(SEARCH_PATH_ENV, str(lab))
    profile = load_profile("our-rig")
    assert profile.stimulator.port == "/dev/ttyUSB7"
    assert profile.path == lab / "devices" / "our-rig.toml"
    assert {"our-rig", "simulated", "magstim-200"} <= set(list_profiles())
    mine = load_protocol("m1_20hz")
    assert mine.path == lab / "protocols" / "m1_20hz.toml"
    assert mine.description.startswith("Our lab's copy.")
    assert not shipped.description.startswith("Our lab's copy.")
    assert list_protocols().count("m1_20hz") == 1
    assert load_profile("simulated").path.resolve().is_relative_to(PACKAGE)


def test_first_folder_on_the_path_wins(tmp_path, monkeypatch):
    first = _lab(tmp_path / "first", {"our-rig": _our_rig("/dev/ttyUSB1")})
    second = _lab(tmp_path / "second", {"our-rig": _our_rig("/dev/ttyUSB2"),
                                        "their-rig": _our_rig("/dev/ttyUSB3")})
    monkeypatch.setenv(SEARCH_PATH_ENV, os.pathsep.join([str(first), "", str(second)]))
    assert load_profile("our-rig").stimulator.port == "/dev/ttyUSB1"
    assert load_profile("their-rig").stimulator.port == "/dev/ttyUSB3"
    assert [origin for _, origin in search_dirs("devices")] == [
        SEARCH_PATH_ENV, SEARCH_PATH_ENV, "user folder", "shipped with labkit"]


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="XDG folder on Linux only")
def test_user_folder_is_searched_after_labkit_path(tmp_path, monkeypatch):
    user = user_config_dir()
    assert user == tmp_path / "xdg" / "labkit"
    _lab(user, {"our-rig": _our_rig("/dev/ttyUSB4"), "home-rig": _our_rig("/dev/ttyUSB5")})
    assert load_profile("our-rig").stimulator.port == "/dev/ttyUSB4"
    lab = _lab(tmp_path / "lab", {"our-rig": _our_rig("/dev/ttyUSB6")})
    monkeypatch.setenv(SEARCH_PATH_ENV, str(lab))
    assert load_profile("our-rig").stimulator.port == "/dev/ttyUSB6"
    assert load_profile("home-rig").stimulator.port == "/dev/ttyUSB5"


def test_unknown_name_lists_places_searched_and_names_available(tmp_path, monkeypatch):
    lab = _lab(tmp_path / "lab", {"our-rig": _our_rig("/dev/ttyUSB7")})
    monkeypatch.setenv(SEARCH_PATH_ENV, str(lab))
    with pytest.raises(ConfigError) as info:
        load_profile("no-such-rig")
    text = str(info.value)
    assert "no device profile named 'no-such-rig'" in text
    for place in (lab / "devices", tmp_path / "xdg" / "labkit" / "devices", devices_dir()):
        assert str(place) in text
    assert SEARCH_PATH_ENV in text
    names = text.split("available: ", 1)[1]
    assert {"our-rig", "simulated", "magstim-200"} <= set(names.split(", "))
    with pytest.raises(ConfigError, match=r"no protocol named 'm1_99hz'(.|\n)*"
                                          r"available: .*m1_10hz_pain_1000"):
        load_protocol("m1_99hz")


def test_explicit_paths_are_used_as_given(tmp_path, monkeypatch):
    path = tmp_path / "elsewhere" / "rig.toml"
    path.parent.mkdir()
    path.write_text(_our_rig("/dev/ttyUSB8"), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert load_profile(path).stimulator.port == "/dev/ttyUSB8"
    assert load_profile(str(path)).path == path
    assert load_profile("elsewhere/rig.toml").stimulator.port == "/dev/ttyUSB8"
    with pytest.raises(ConfigError, match="device profile file not found") as info:
        load_profile(tmp_path / "missing.toml")
    assert str(tmp_path / "missing.toml") in str(info.value)
    with pytest.raises(ConfigError, match="protocol file not found"):
        load_protocol("elsewhere/m1_20hz")
