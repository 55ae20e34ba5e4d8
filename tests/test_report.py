"""The session record a PI signs: every section holds the values logged (parsed from the
HTML), missing facts are 'not recorded' in red, adverse events are never '0' unasked."""

from __future__ import annotations

import re
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from labkit.report import figure_png, html_to_pdf, session_record, write_session_report
from labkit.session import Session, read_log

T0 = 500.0


class Sections(HTMLParser):
    """Text of each <section id=...>, its key-value rows, table rows and missing marks."""

    def __init__(self) -> None:
        super().__init__()
        self.text: dict[str, str] = {}
        self.rows: dict[str, list[list[str]]] = {}
        self.missing: dict[str, list[str]] = {}
        self.images: list[str] = []
        self.scripts = 0
        self.external: list[str] = []
        self._section: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._in_missing = False
        self._in_heading = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self._section = a["id"]
            self.text[self._section], self.rows[self._section] = "", []
            self.missing[self._section] = []
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "span" and a.get("class") == "missing":
            self._in_missing = True
        elif tag == "h2":
            self._in_heading = True
        elif tag == "img":
            self.images.append(a.get("src", ""))
        elif tag == "script":
            self.scripts += 1
        if tag in ("link", "script", "img", "iframe") and (a.get("href") or a.get("src", "")
                                                           ).startswith(("http", "//", "/")):
            self.external.append(a.get("href") or a.get("src"))

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None and self._section:
            self.rows[self._section].append(self._row)
            self._row = None
        elif tag == "section":
            self._section = None
        elif tag == "span":
            self._in_missing = False
        elif tag == "h2":
            self._in_heading = False

    def handle_data(self, data):
        if self._section and not self._in_heading:
            self.text[self._section] += data
        if self._cell is not None:
            self._cell.append(data)
        if self._in_missing and self._row:
            self.missing[self._section].append(self._row[0] if self._row else "")

    def kv(self, section: str) -> dict[str, str]:
        return {r[0]: r[1] for r in self.rows[section] if len(r) == 2}


def parse(path: Path) -> Sections:
    parser = Sections()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def full_session(root: Path, *, operator: str | None = "A. Operator",
                 serial: str | None = "SN 4711", asked: bool = True) -> Session:
    clock = iter(T0 + np.arange(0, 1000, 0.5)).__next__
    ses = Session(root, "P042", 3, clock=clock, operator=operator, site="Ward 5 lab")
    device = {"manufacturer": "Magstim", "model": "Rapid2", "coil": "D70 alpha",
              "coil_serial_number": "C-99", "target": "M1", "hemisphere": "left",
              "hotspot": "FDI hotspot 5 cm lateral to Cz", "pulse_waveform": "biphasic"}
    if serial:
        device["serial_number"] = serial
    ses.log_device(**device)
    ses.log_event("emg_setup", reference="belly-tendon", muscles={"FDI": "right FDI"},
                  amplifier="BrainAmp ExG")
    ses.log_screening({"seizure": False}, eligible=True,
                      result={"citation": "Rossi 2009", "decisions": {}})
    ses.log_threshold(44, method="bayesian", n_pulses=9, estimate_percent=43.6,
                      credible_interval_percent=[41.2, 46.1])
    ses.log_pain_rating(6, "before")
    ses.log_protocol({"name": "m1_10hz_pain_1000", "intensity": {"unit": "% RMT", "value": 80,
                                                                "min": 80, "max": 90},
                      "timing": {"trains": 2}, "total_pulses": 10}, intensity_rmt_percent=90)
    ses.sink("safety", {"ok": True, "passed": ["train 5 s <= 5 s"], "reasons": []})
    ses.sink("run", {"protocol": "m1_10hz_pain_1000", "total_pulses": 10})
    for k in range(10):
        train = k // 5
        ses.sink("pulse", {"index": k, "time_s": T0 + 100 + train * 60 + (k % 5) * 0.1,
                           "intensity_percent": 40, "train": train, "timing": "software",
                           "late_ms": 0.2 * (k % 5)})
        if k == 4:
            ses.sink("pause", {"reason": "EMG stream stalled"})
            ses.sink("override", {"reason": "ITI 8 s", "approved_by": "Dr. PI"})
            ses.sink("resume", {"paused_s": 3.0})
    ses.sink("finish", {"pulses_delivered": 10})
    ses.log_pain_rating(4, "after")
    if asked:
        ses.log_adverse_event_check(asked_by="A. Operator", none_reported=False)
        ses.log_adverse_event("headache", description="mild, resolved")
    ses.close()
    return ses


def mep_png() -> bytes:
    fig = Figure(figsize=(3, 2))
    fig.add_subplot().plot([0, 1], [0, 1])
    return figure_png(fig)


def test_every_section_holds_the_values_logged(tmp_path):
    ses = full_session(tmp_path / "run" / "sessions")
    out = write_session_report(ses, tmp_path / "run" / "session_report.html",
                               figures=[("MEPs of the hunt", mep_png())])
    doc = parse(out)
    assert list(doc.text) == ["identity", "devices", "screening", "thresholds", "protocol",
                              "pulses", "mep", "pain", "adverse", "versions", "files",
                              "signoff"]
    ident = doc.kv("identity")
    assert ident["Subject (pseudonym)"] == "P042" and ident["Session"] == "03"
    assert ident["Operator"] == "A. Operator" and ident["Site"] == "Ward 5 lab"
    start = datetime.fromisoformat(ident["Start (wall clock)"])
    assert start.utcoffset() is not None  # ISO 8601 with the zone
    assert datetime.fromisoformat(ident["End (wall clock)"]) >= start
    dev = doc.kv("devices")
    assert dev["Stimulator"] == "Magstim Rapid2" and dev["Stimulator serial number"] == "SN 4711"
    assert dev["Coil"] == "D70 alpha" and dev["Coil serial number"] == "C-99"
    assert dev["Hotspot / coil position"] == "FDI hotspot 5 cm lateral to Cz"
    assert dev["Neuronavigation"] == "not used" and dev["EMG amplifier"] == "BrainAmp ExG"
    assert doc.kv("screening")["Cleared"] == "yes"
    (header, rmt) = doc.rows["thresholds"]
    assert rmt == ["RMT", "44 % MSO", "bayesian", "9", "43.6 % MSO", "41.2–46.1 % MSO"]
    proto = doc.kv("protocol")
    assert proto["Protocol"] == "m1_10hz_pain_1000" and proto["Run"] == "finished"
    assert proto["Pulses planned / delivered"] == "10 / 10"
    # one consistent intensity statement: MSO, % of today's RMT, the choice and the range
    assert proto["Intensity"] == ("delivered at 40 % MSO; = 90.9 % of today's RMT (44 % MSO); "
                                  "chosen: 90 % RMT, rounded to the stimulator's 1 % MSO grid; "
                                  "protocol range 80–90 % RMT")
    assert proto["Safety verdict"].startswith("SAFE")
    incidents = [r[1] for r in doc.rows["protocol"] if len(r) == 3][1:]
    assert incidents == ["pause", "override", "resume"]
    assert any("approved_by=Dr. PI" in r[2] for r in doc.rows["protocol"] if len(r) == 3)
    delivered = doc.kv("pulses")
    assert delivered["Pulses delivered in the session"] == "10 (10 protocol)"
    assert delivered["Checked against the recorded pulse markers"].startswith("no marker")
    trains = [r for r in doc.rows["pulses"] if len(r) == 7][1:]
    assert [(r[0], r[1], r[4], r[5], r[6]) for r in trains] == [
        ("1", "5", "40", "software", "0.80"), ("2", "5", "40", "software", "0.80")]
    assert trains[1][2] == "60.00"
    assert doc.images and doc.images[0].startswith("data:image/png;base64,")
    assert doc.rows["pain"][1:] == [["before", "6"], ["after", "4"]]
    assert "1 adverse event(s) reported" in doc.text["adverse"]
    assert doc.rows["adverse"][1][:2] == ["headache", "mild"]
    versions = doc.kv("versions")
    assert versions["numpy"] == np.__version__ and versions["labkit"]
    files = doc.rows["files"][1:]
    assert [r[0] for r in files] == ["sessions/sub-P042/ses-03/log.jsonl"]
    assert re.fullmatch(r"[0-9a-f]{64}", files[0][2])
    assert [r[0] for r in doc.rows["signoff"][1:]] == ["Operator", "Principal investigator"]
    html = out.read_text()
    assert str(tmp_path) not in html  # no absolute path of this machine
    assert doc.scripts == 0 and doc.external == []  # self-contained, no code


def test_missing_operator_and_serial_are_not_recorded_in_red_never_invented(tmp_path):
    ses = full_session(tmp_path / "s", operator=None, serial=None)
    doc = parse(write_session_report(ses, tmp_path / "r.html"))
    assert doc.kv("identity")["Operator"] == "not recorded"
    assert "Operator" in doc.missing["identity"]
    assert "Stimulator serial number" in doc.missing["devices"]
    assert "Coil serial number" not in doc.missing["devices"]
    assert doc.text["mep"].strip() == "MEP figure: not recorded"


def test_adverse_events_are_never_zero_when_nobody_asked(tmp_path):
    ses = full_session(tmp_path / "s", asked=False)
    doc = parse(write_session_report(ses, tmp_path / "r.html"))
    statement = doc.text["adverse"].strip()
    assert statement.startswith("not asked")
    assert "0" not in statement and "none reported" not in statement
    record = session_record(read_log(ses.path))
    assert not record.adverse.asked


def test_none_reported_only_when_the_operator_recorded_it(tmp_path):
    with Session(tmp_path, "P001") as ses:
        ses.log_adverse_event_check(asked_by="B. Nurse", none_reported=True)
    assert session_record(read_log(ses.path)).adverse.statement == "asked; none reported"


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="chromium not installed")
def test_report_renders_in_chromium_with_missing_values_red(tmp_path):
    pytest.importorskip("playwright")
    from browser_helpers import launch_chromium
    from playwright.sync_api import sync_playwright

    ses = full_session(tmp_path / "s", serial=None)
    page_path = write_session_report(ses, tmp_path / "r.html",
                                     figures=[("MEPs", mep_png())])
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page()
            page.goto(page_path.as_uri())
            assert page.title().startswith("rTMS session record")
            red = page.eval_on_selector("#devices .missing",
                                        "e => getComputedStyle(e).color")
            assert red == "rgb(176, 0, 0)"
            assert page.eval_on_selector("#mep img", "e => e.naturalWidth") > 0
            assert page.inner_text("#adverse-statement") == "1 adverse event(s) reported"
        finally:
            browser.close()
    pdf = html_to_pdf(page_path, tmp_path / "r.pdf")
    assert pdf is not None and pdf.read_bytes().startswith(b"%PDF")


def test_a_blinded_record_names_the_arm_by_its_code_and_never_says_sham(tmp_path):
    from labkit.bids import AllocationKey
    from labkit.protocols import load_protocol

    proto = load_protocol("sham_m1_10hz_pain").shortened(1, inter_train_interval_s=10)
    with Session(tmp_path / "s", "P005", operator="A. Operator") as ses:
        ses.log_device(manufacturer="Magstim", model="Rapid2",
                       coil="figure-of-eight sham (placebo) coil")
        ses.log_threshold(50, method="bayesian")
        ses.log_protocol(proto, intensity_rmt_percent=80)
        ses.sink("run", {"protocol": proto.name, "shortened_from": proto.shortened_from,
                         "sham": True, "total_pulses": 3})
        for k in range(3):
            ses.sink("pulse", {"index": k, "time_s": T0 + k * 0.1, "intensity_percent": 40,
                               "train": 0, "sham": True})
        ses.sink("override", {"reason": "sham arm: ITI", "protocol": proto.name,
                              "approved_by": "Dr. PI"})
        ses.sink("finish", {"pulses_delivered": 3})
    operator_copy = write_session_report(ses, tmp_path / "operator.html").read_text()
    assert "sham_m1_10hz_pain" in operator_copy  # the operator's own record is complete
    key = AllocationKey({"K": "active", "Q": "sham"})
    page = write_session_report(ses, tmp_path / "blinded.html", allocation=key)
    html = page.read_text().lower()
    assert "sham" not in html and "placebo" not in html
    doc = parse(page)
    proto_rows = doc.kv("protocol")
    assert proto_rows["Protocol"] == "arm Q"
    assert proto_rows["Description"] == "withheld (blinded study)"
    assert doc.kv("devices")["Coil"] == "withheld (blinded study)"
    assert proto_rows["Pulses planned / delivered"] == "3 / 3"


def test_the_record_counts_every_delivered_pulse_against_the_recorded_markers(tmp_path):
    from test_bids_completeness import write_fake_markers

    ses = full_session(tmp_path / "s")
    logged = [r.time_s for r in read_log(ses.path, kind="pulse")]
    hunt = [(T0 + 10 + k * 0.5, {"device": "Rapid", "index": 100 + k,
                                 "intensity_percent": 45}) for k in range(3)]
    markers = hunt + [(t, {"device": "Rapid", "index": k, "intensity_percent": 40})
                      for k, t in enumerate(logged[:-1])]  # the last marker was lost
    write_fake_markers(ses.path / "recordings" / "markers", markers)
    doc = parse(write_session_report(ses, tmp_path / "r.html"))
    delivered = doc.kv("pulses")
    assert delivered["Pulses delivered in the session"] == "13 (10 protocol, 3 single)"
    assert delivered["Checked against the recorded pulse markers"] == "yes"
    assert delivered["Pulses not in the session log (threshold hunt, panel)"] == "3"
    assert delivered["Logged pulses missing from the marker stream"] == "1"


def test_a_rig_opened_into_a_session_records_the_profiles_serial_and_coil(tmp_path):
    import labkit
    from labkit.profiles import load_profile

    profile = load_profile("simulated")
    stim = profile.stimulator.model_copy(update={"serial": "SN-0815", "coil": "D70 test coil"})
    profile = profile.model_copy(update={"stimulator": stim})
    with Session(tmp_path / "s", "P007", operator="A. Operator") as ses:
        with labkit.open_rig(profile, seed=1, session=ses) as rig:
            rig.pulse(40)
    (device,) = [r.payload for r in read_log(ses.path) if r.kind == "device"]
    assert device["serial"] == "SN-0815" and device["coil"] == "D70 test coil"
    assert device["model"] == "magstim-rapid2" and device["port"] == "sim"
    assert device["manufacturer"] == "Magstim"  # from the vendor registry
    assert device["firmware"] == "9.0.0"  # the Rapid² emulator's, read by the driver on connect
    page = parse(write_session_report(ses, tmp_path / "report.html"))
    facts = page.kv("devices")
    assert facts["Stimulator serial number"] == "SN-0815"
    assert facts["Coil"] == "D70 test coil"
    assert facts["Firmware"] == "9.0.0"
    assert "Stimulator serial number" not in page.missing["devices"]


def test_the_report_shows_the_navigator_and_every_navigated_pulses_pose(tmp_path):
    import labkit

    with Session(tmp_path / "s", "P009", operator="A. Operator") as ses:
        with labkit.open_rig("simulated-navigated", seed=2, session=ses) as rig:
            x = round(1.1 * rig.subject.resting_motor_threshold_percent)
            for _ in range(3):
                rig.pulse(x)
            truth = [r.coil_pose for r in rig.subject.responses]
    pulses = [r.payload for r in read_log(ses.path) if r.kind == "pulse"]
    page = parse(write_session_report(ses, tmp_path / "report.html"))
    assert page.kv("devices")["Neuronavigation"] == (
        "Localite TMS Navigator (emulator, simulated)")
    table = [row for row in page.rows["pulses"] if len(row) == 9]
    assert table[0][:5] == ["Pulse", "Time (s from first pulse)", "Intensity (% MSO)", "Pose",
                            "Coil centre x, y, z (mm)"]
    assert len(table) == 4 and [row[3] for row in table[1:]] == ["ok"] * 3
    for row, logged, true_pose in zip(table[1:], pulses, truth, strict=True):
        shown = [float(v) for v in row[4].split(", ")]
        assert shown == pytest.approx([logged["coil_x_mm"], logged["coil_y_mm"],
                                       logged["coil_z_mm"]], abs=0.051)
        assert np.linalg.norm(np.array(shown) - true_pose.position) < 1.0
    assert "3 pulse(s) logged with navigation; 3 with a fresh coil pose" in page.text["pulses"]
