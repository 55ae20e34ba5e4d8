"""The names a newcomer meets: estimators, shortened protocols, dry-run headers, ``dir(labkit)``,
thresholds that are missing, pulse numbering per run in events.tsv, documented ``**kwargs``."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from runner_helpers import rtms
from test_bids import DEVICE, EMG, T0, write_fake_recording

import labkit
from labkit.bids import export_bids, exported_pulses
from labkit.errors import ConfigError
from labkit.protocols import load_protocol
from labkit.rig import Rig
from labkit.runner import ProtocolRunner
from labkit.safety.guard import FiringGuard
from labkit.session import Session
from labkit.stimulators.registry import MODELS
from labkit.threshold import (
    METHODS,
    BayesianAdaptive,
    MLPest,
    RelativeFrequency,
    StochasticApproximation,
    ThresholdInputError,
    make_estimator,
    method_name,
)

PACKAGE = Path(labkit.__file__).parent


# ---------------------------------------------------------------------- estimator names
@pytest.mark.parametrize("name", ["ML-PEST", "mlpest", "MLPest", "ml_pest", "ML PEST", "mtat",
                                  MLPest])
def test_every_name_of_ml_pest_builds_the_same_estimator(name):
    est = make_estimator(name, start=55)
    assert type(est) is MLPest and est.next_intensity() == 55
    assert method_name(name) == method_name(est) == "mlpest"


@pytest.mark.parametrize(("names", "cls"), [
    (["bayesian", "Bayesian", "BayesianAdaptive", "psi"], BayesianAdaptive),
    (["relative_frequency", "Relative frequency", "RelativeFrequency", "Rossini-Rothwell"],
     RelativeFrequency),
    (["stochastic", "StochasticApproximation", "SA"], StochasticApproximation),
])
def test_each_method_has_its_names_and_its_class(names, cls):
    for name in [*names, cls]:
        assert type(make_estimator(name, start=50)) is cls, name


def test_an_unknown_method_lists_the_names():
    with pytest.raises(ThresholdInputError, match=r"method must be one of \[.*'mlpest'.*"
                                                  r"'MLPest'.*\].*ML-PEST") as info:
        make_estimator("quest")
    assert isinstance(info.value, ValueError)
    with pytest.raises(ThresholdInputError):
        method_name(int)


def test_the_session_logs_one_name_per_method(tmp_path):
    ses = Session(tmp_path, "P001", clock=lambda: 1.0)
    for how in (MLPest, MLPest(start=50)):
        ses.log_threshold(48, method=how)
    ses.log_threshold(47, method="by hand, 5 of 10 MEPs at 47 % MSO")
    ses.close()
    methods = [r.payload["method"] for r in ses.events("threshold")]
    assert methods == ["mlpest"] * 2 + ["by hand, 5 of 10 MEPs at 47 % MSO"]
    with pytest.raises(ConfigError, match="method"):
        Session(tmp_path, "P002", clock=lambda: 1.0).log_threshold(48, method=3)


def test_methods_table_is_the_one_place_names_come_from():
    assert set(METHODS) == {method_name(cls) for cls in METHODS.values()}


# ---------------------------------------------------------------------- shortened
def test_a_single_train_is_cut_by_pulses_and_says_what_changed():
    full = load_protocol("m1_1hz_inhibitory")  # one train of 900 pulses at 1 Hz
    short = full.shortened(pulses_per_train=60)
    assert short.total_pulses == 60 and short.timing.trains == 1
    assert short.name == "m1_1hz_inhibitory-demo-60of900pulses"
    assert short.shortened_from == "m1_1hz_inhibitory"
    assert short.shortening == ("the train cut to 60 of 900 pulses (60 s of 900 s); "
                                "60 of 900 pulses in all")
    assert short.description.startswith(f"[SHORTENED FOR DEMO: {short.shortening}]")
    schedule = short.schedule(50, relative=110)
    assert len(schedule) == 60 and schedule.times_s[-1] == pytest.approx(59.0)
    assert set(schedule.intensity_percent) == {55}


def test_trains_are_cut_by_duration_and_can_be_dropped_too():
    full = load_protocol("m1_10hz_pain_1000")  # 20 trains of 5 s at 10 Hz
    short = full.shortened(2, train_duration_s=2.0, inter_train_interval_s=10)
    assert (short.timing.trains, short.timing.pulses_per_train, short.total_pulses) == (2, 20, 40)
    assert short.shortening == ("2 of 20 trains; each train cut to 20 of 50 pulses (2 s of "
                                "5 s); 10 s instead of 55 s between trains; 40 of 1000 pulses "
                                "in all")
    assert short.name == "m1_10hz_pain_1000-demo-2of20trains-20of50pulses"
    same = full.shortened(pulses_per_train=20)
    assert same.timing.trains == 20 and same.total_pulses == 400  # every train kept


@pytest.mark.parametrize(("protocol", "kwargs", "match"), [
    ("m1_1hz_inhibitory", {"pulses_per_train": 901}, r"pulses_per_train must be a whole "
                                                     r"number in \[1, 900\] \(got 901\)"),
    ("m1_1hz_inhibitory", {"pulses_per_train": 0}, r"in \[1, 900\]"),
    ("itbs", {"pulses_per_train": 10}, r"\[3, 30\] in steps of 3 \(pulses per burst\)"),
    ("m1_1hz_inhibitory", {"train_duration_s": 0.5}, r"train_duration_s must be in \[1, 900\] s"),
    ("m1_1hz_inhibitory", {"pulses_per_train": 60, "train_duration_s": 60}, "not both"),
    ("m1_1hz_inhibitory", {"trains": 1}, "nothing to shorten"),
])
def test_shortening_refuses_what_the_protocol_does_not_have(protocol, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        load_protocol(protocol).shortened(**kwargs)


# ---------------------------------------------------------------------- dry run
class _Untouchable:
    guard = FiringGuard()
    abilities = MODELS["magstim-rapid2"].abilities

    def __getattr__(self, name):
        raise AssertionError(f"the dry run touched the stimulator ({name})")


def test_dry_run_header_shows_the_intensity_of_the_run_not_the_protocols_default():
    short = load_protocol("m1_1hz_inhibitory").shortened(pulses_per_train=60)
    runner = ProtocolRunner(_Untouchable(), short, 50, intensity=110, progress=False)
    text = runner.dry_run(print_summary=False).summary()
    header, shortened, schedule = text.splitlines()[:3]
    assert header.endswith("110 % RMT (chosen in range 90–110)"), header
    assert "90 % RMT" not in header
    assert shortened == ("SHORTENED DEMO VARIANT of m1_1hz_inhibitory: the train cut to 60 of "
                         "900 pulses (60 s of 900 s); 60 of 900 pulses in all")
    assert "at 55 % MSO (RMT 50 % MSO)" in schedule
    default = ProtocolRunner(_Untouchable(), short, 50, progress=False).dry_run(False)
    assert default.summary().splitlines()[0].endswith("90 % RMT (chosen in range 90–110)")
    fixed = ProtocolRunner(_Untouchable(), rtms(rel=90), 50, progress=False).dry_run(False)
    assert fixed.summary().splitlines()[0].endswith(", 90 % RMT")


# ---------------------------------------------------------------------- missing RMT
def test_a_missing_rmt_says_hunt_or_enter_it_first():
    with pytest.raises(ConfigError, match="hunt or enter the RMT first") as info:
        ProtocolRunner(_Untouchable(), rtms(), None, progress=False)
    assert info.value.field == "rmt_percent"
    no_rmt = SimpleNamespace(rmt_percent=None, session=None)
    with pytest.raises(ConfigError, match="hunt or enter the RMT first"):
        Rig.runner(no_rmt, rtms())


# ---------------------------------------------------------------------- dir(labkit)
def test_dir_labkit_lists_the_public_names_and_each_one_resolves():
    names = dir(labkit)
    for name in ("open_rig", "Session", "load_profile", "load_protocol", "make_estimator",
                 "check_profile", "threshold", "stimulators", "sim", "__version__"):
        assert name in names, name
    for name in labkit.__all__:
        assert getattr(labkit, name) is not None
    assert labkit.open_rig is importlib.import_module("labkit.rig").open_rig
    assert labkit.threshold is importlib.import_module("labkit.threshold")
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        labkit.nonsense  # noqa: B018


# ---------------------------------------------------------------------- events.tsv runs
def test_events_tsv_numbers_pulses_per_protocol_run_after_a_retry(tmp_path):
    ses = Session(tmp_path / "data", "P007", 1, clock=lambda: T0)
    ses.log_event("emg_setup", **EMG.to_log())
    ses.log_device(**DEVICE)
    ses.log_threshold(50, method="mlpest")
    write_fake_recording(ses.recordings_dir / "emg", np.zeros((2, 12000)), T0)
    ses.log_pulse(time_s=T0 + 0.5, intensity_percent=50, source="single", index=0)
    for run, (start_s, n) in enumerate([(1.0, 3), (3.0, 5)], start=1):
        ses.sink("run", {"protocol": "m1_1hz_inhibitory", "total_pulses": 5})
        for i in range(n):
            ses.sink("pulse", {"index": i, "time_s": T0 + start_s + 0.2 * i, "train": 0,
                               "intensity_percent": 55, "protocol": "m1_1hz_inhibitory"})
        if run == 1:
            ses.sink("error", {"error": "StimulatorTimeoutError: ...", "pulses_delivered": 3})
    ses.close()
    out = export_bids(ses, tmp_path / "bids")
    rows = exported_pulses(out.events_files[0])
    protocol = [(r["run"], r["pulse_index"]) for r in rows if r["source"] == "protocol"]
    assert protocol == [("1", "0"), ("1", "1"), ("1", "2"),
                        ("2", "0"), ("2", "1"), ("2", "2"), ("2", "3"), ("2", "4")]
    single = next(r for r in rows if r["source"] == "single")
    assert single["run"] == "n/a"  # not part of a protocol run
    sidecar = out.events_files[0].with_suffix(".json").read_text()
    assert "1-based number of the protocol run" in sidecar


# ---------------------------------------------------------------------- **kwargs documented
def _public_var_keyword_functions():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if any(p.startswith("_") and p != "__init__" for p in parts):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        classes = {id(f): c for c in ast.walk(tree) if isinstance(c, ast.ClassDef)
                   for f in c.body}
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef) or node.args.kwarg is None:
                continue
            if node.name.startswith("_") and node.name != "__init__":
                continue
            owner = classes.get(id(node))
            if owner is not None and owner.name.startswith("_"):
                continue
            doc = ast.get_docstring(node) or ""
            if node.name == "__init__" and owner is not None:
                doc += ast.get_docstring(owner) or ""
            yield f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}", \
                node.args.kwarg.arg, doc


def test_every_public_var_keyword_argument_is_documented():
    found = list(_public_var_keyword_functions())
    assert len(found) > 10  # the scan sees the package
    undocumented = [where for where, name, doc in found if f"**{name}" not in doc]
    assert undocumented == []


def test_session_open_takes_named_arguments_only():
    import inspect

    for method in (Session.open, Session.resume):
        kinds = {p.kind for p in inspect.signature(method).parameters.values()}
        assert inspect.Parameter.VAR_KEYWORD not in kinds
        assert {"task", "operator", "site"} <= set(inspect.signature(method).parameters)


# ---------------------------------------------------------------------- one amplitude name
def test_the_mep_amplitude_is_amplitude_uv_and_ptp_uv_warns():
    from labkit.acquisition import MEPTrial
    from labkit.markers import PulseEvent
    from labkit.mep import mep_table

    fs = 5000.0
    t = np.arange(int(0.3 * fs)) / fs
    emg = np.zeros((1, t.size))
    onset = int(0.1 * fs)
    emg[0, onset + 100:onset + 150] = 40.0  # 20-30 ms after the pulse: 40 uV peak-to-peak
    table = mep_table(emg, [0.1], fs, ch_names=["FDI"])
    assert "ptp_uv" not in table.columns
    assert table["amplitude_uv"].iloc[0] == pytest.approx(40.0)
    trial = MEPTrial(PulseEvent(0.1, 50, "Magstim", 0), "FDI", t, emg[0], 40.0, 22.0, 1.0,
                     False)
    assert trial.amplitude_uv == 40.0
    with pytest.warns(DeprecationWarning, match="use MEPTrial.amplitude_uv"):
        assert trial.ptp_uv == 40.0  # the old name still answers
