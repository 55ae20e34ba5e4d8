"""Bad input: fuzzed protocol and device-profile files, absurd numbers to every entry point.

A loader may accept a file or refuse it with :class:`~labkit.errors.ConfigError` naming
the file; nothing else (no ``KeyError``, ``TypeError``, pydantic ``ValidationError``,
``TOMLDecodeError``...). A protocol that loads can be safety-checked and expanded without
any non-labkit exception.

The wire-reply parsers are fuzzed where they live:
tests/test_magstim_protocol.py::test_parsers_raise_only_protocol_errors_on_garbage and
tests/test_magpro_protocol.py::test_fuzz_extractor_raises_only_protocol_errors,
::test_fuzz_parse_reply_raises_only_protocol_errors, ::test_fuzz_parse_mode_block_command,
::test_fuzz_every_frame_recovered_from_noisy_stream.
"""

from __future__ import annotations

import json
import math
import tempfile
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import labkit.sim  # noqa: F401 - registers the labkitsim:// URL scheme
from labkit.errors import ConfigError, LabkitError
from labkit.profiles import devices_dir, load_profile
from labkit.protocols import load_protocol, protocols_dir
from labkit.runner import ProtocolRunner
from labkit.safety import check_protocol

FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])
PROTOCOLS = sorted(protocols_dir().glob("*.toml"))
PROFILES = sorted(devices_dir().glob("*.toml"))
_TMP = Path(tempfile.mkdtemp(prefix="labkit-fuzz-"))


# -- a small TOML writer (values hypothesis generates; not a general serializer) --------
def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}"
                               for k, v in value.items()) + "}"
    raise TypeError(type(value))


def dump_toml(doc: dict) -> str:
    """Top-level scalars first, then one ``[table]`` per nested dict (two levels)."""
    lines, tables = [], []
    for key, value in doc.items():
        (tables if isinstance(value, dict) else lines).append((key, value))
    out = [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in lines]
    for name, table in tables:
        scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
        out.append(f"[{json.dumps(name)}]")
        out += [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in scalars.items()]
        for sub, subtable in table.items():
            if isinstance(subtable, dict):
                out.append(f"[{json.dumps(name)}.{json.dumps(sub)}]")
                out += [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in subtable.items()]
    return "\n".join(out) + "\n"


def test_toml_writer_round_trips_the_shipped_files():
    for path in PROTOCOLS + PROFILES:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
        assert tomllib.loads(dump_toml(doc)) == doc


scalars = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, -1, 1, 100, 101, 10**6]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([float("nan"), float("inf"), -float("inf"), -0.0, 1e-300, 1e300]),
    st.text(max_size=20),
    st.booleans(),
)
values = st.one_of(scalars, st.lists(scalars, max_size=4),
                   st.dictionaries(st.text(min_size=1, max_size=8), scalars, max_size=3))


def _paths(doc: dict, prefix: tuple = ()) -> list[tuple]:
    out = []
    for key, value in doc.items():
        out.append(prefix + (key,))
        if isinstance(value, dict):
            out += _paths(value, prefix + (key,))
    return out


@st.composite
def mutated(draw, files: list[Path]) -> str:
    """A shipped file with a few fields replaced, deleted or added."""
    path = draw(st.sampled_from(files))
    doc = tomllib.loads(path.read_text(encoding="utf-8"))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc)
        where = draw(st.sampled_from(paths))
        parent = doc
        for key in where[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if action == "delete":
            del parent[where[-1]]
        elif action == "add":
            parent[draw(st.text(min_size=1, max_size=10))] = draw(scalars)
        else:
            parent[where[-1]] = draw(values)
        if not doc:
            break
    return dump_toml(doc)


def _write(text: str | bytes, suffix: str = ".toml") -> Path:
    path = _TMP / f"fuzz{suffix}"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
    return path


def _load_protocol_or_config_error(text) -> None:
    path = _write(text)
    try:
        protocol = load_protocol(path)
    except ConfigError as exc:
        assert str(path) in str(exc)
        return
    # a protocol that loads is checked and expanded without a deep traceback
    for rmt in (50.0, 1.0, 100.0):
        try:
            verdict = check_protocol(protocol, rmt)
        except LabkitError:
            continue
        if verdict.intensity_percent is not None and verdict.ok:
            protocol.schedule(rmt)


def _load_profile_or_config_error(text) -> None:
    path = _write(text)
    try:
        load_profile(path)
    except ConfigError as exc:
        assert str(path) in str(exc)


# -- protocol files ---------------------------------------------------------------------
@FUZZ
@given(text=st.text(max_size=300))
def test_random_text_as_protocol_only_config_error(text):
    _load_protocol_or_config_error(text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(data=st.binary(max_size=200))
def test_random_bytes_as_protocol_only_config_error(data):
    _load_protocol_or_config_error(data)


@FUZZ
@given(text=mutated(PROTOCOLS))
def test_mutated_protocol_fields_only_config_error(text):
    _load_protocol_or_config_error(text)


# -- device profiles --------------------------------------------------------------------
@FUZZ
@given(text=st.text(max_size=300))
def test_random_text_as_profile_only_config_error(text):
    _load_profile_or_config_error(text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(text=mutated(PROFILES))
def test_mutated_profile_fields_only_config_error(text):
    _load_profile_or_config_error(text)


# -- absurd numbers, named in the error -------------------------------------------------
BAD_NUMBERS = [-5, -0.5, float("nan"), float("inf"), -float("inf"), 1e9, 50.5, "50", None, True]


def _protocol_text(field: str, value) -> str:
    doc = tomllib.loads((protocols_dir() / "m1_10hz_pain_1000.toml").read_text("utf-8"))
    section, _, key = field.rpartition(".")
    (doc[section] if section else doc)[key] = value
    return dump_toml(doc)


@pytest.mark.parametrize("field", ["intensity.value", "intensity.min", "intensity.max",
                                   "total_pulses", "timing.bursts_per_train",
                                   "timing.inter_burst_interval_ms", "timing.trains",
                                   "timing.inter_train_interval_s"])
@pytest.mark.parametrize("value", [-5, 0, float("nan"), float("inf"), 1e12, "ten"])
def test_absurd_protocol_numbers_are_refused_naming_the_field(field, value):
    path = _write(_protocol_text(field, value))
    with pytest.raises(ConfigError) as info:
        load_protocol(path)
    message = str(info.value)
    assert str(path) in message and field.rpartition(".")[2] in message


@pytest.fixture(scope="module")
def magstim():
    from labkit.sim.magstim_emulator import MagstimEmulator
    from labkit.stimulators import Magstim

    emulator = MagstimEmulator("200", pty=False)
    stim = Magstim(emulator.url).connect()
    yield emulator, stim
    stim.close()
    emulator.stop()


@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_set_intensity_refuses_absurd_values_naming_argument_and_range(magstim, value):
    emulator, stim = magstim
    sent = len(emulator.received)
    with pytest.raises(ConfigError, match=r"field 'percent'.*0 to 100 % MSO"):
        stim.set_intensity(value)
    assert len(emulator.received) == sent  # nothing reached the unit


@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_rig_pulse_refuses_absurd_intensities_before_firing(value):
    from labkit.rig import open_rig

    with open_rig("simulated") as rig:
        with pytest.raises(ConfigError, match=r"field 'percent'.*0 to 100 % MSO"):
            rig.pulse(value)
        assert rig.hardware.emulator.pulses_delivered == 0 and not rig.hardware.emulator.armed


@pytest.mark.parametrize("value", [-5, float("nan"), float("inf"), 1e9, 0])
def test_runner_refuses_absurd_thresholds_and_intensities_before_arming(magstim, value):
    from labkit.safety.check import ProtocolRefusedError

    emulator, stim = magstim
    protocol = load_protocol("m1_10hz_pain_1000")
    sent = len(emulator.received)
    with pytest.raises(ConfigError, match=r"field 'rmt_percent'.*\[1, 100\] % MSO"):
        ProtocolRunner(stim, protocol, value, progress=False)
    runner = ProtocolRunner(stim, protocol, 50.0, intensity=value, progress=False)
    with pytest.raises(ProtocolRefusedError, match=r"field 'intensity'.*range \[80, 90\] % RMT"):
        runner.run()
    with pytest.raises(ConfigError, match=r"field 'amt_percent'.*\[1, 100\] % MSO"):
        ProtocolRunner(stim, protocol, 50.0, amt_percent=value, progress=False)
    with pytest.raises(ConfigError, match=r"field 'lead_s'"):
        ProtocolRunner(stim, protocol, 50.0, lead_s=-abs(value) - 1, progress=False)
    assert len(emulator.received) == sent or all(
        m[:1] not in (b"E", b"@") for m in emulator.received[sent:])  # keep-alive only


@pytest.mark.parametrize("method", ["MLPest", "RelativeFrequency", "BayesianAdaptive",
                                    "StochasticApproximation"])
def test_estimators_refuse_absurd_values_naming_them(method):
    import labkit.threshold as th

    cls = getattr(th, method)
    for bad in (float("nan"), float("inf"), -5, 1e9):
        with pytest.raises(th.ThresholdInputError, match="start"):
            cls(start=bad)
    est = cls(start=60)
    x = est.next_intensity()
    for bad in (float("nan"), float("inf"), -5):
        with pytest.raises(th.ThresholdInputError, match="amplitude_uv"):
            est.update(x, bad)
    for bad in (float("nan"), -5, 1e9):
        with pytest.raises(th.ThresholdInputError, match="intensity_percent"):
            est.update(bad, 10.0)
    assert isinstance(th.ThresholdInputError("x"), LabkitError)
