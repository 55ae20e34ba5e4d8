"""The README is executed: its Python blocks run as written on the simulated rig, in order,
in one namespace (the newcomer's task: ML-PEST hunt, 60 pulses at 1 Hz / 110 % RMT, saved),
and its protocol/stimulator table is the vendor registry's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from labkit.bids import exported_pulses
from labkit.check import protocol_stimulators
from labkit.protocols import list_protocols, load_protocol
from labkit.session.log import read_log

README = Path(__file__).resolve().parents[1] / "README.md"
TABLE_MARK = "<!-- protocol-stimulators:"
COLUMNS = [("Rapid²", ("magstim-rapid2", "magstim-rapid2-115v")),
           ("Super Rapid²", ("magstim-super-rapid2", "magstim-super-rapid2-115v")),
           ("Super Rapid² Plus", ("magstim-super-rapid2-plus", "magstim-super-rapid2-plus-115v")),
           ("MagPro R30", ("magventure-r30",)), ("MagPro X100", ("magventure-x100",))]


def python_blocks(text: str) -> list[str]:
    """The ```python fenced blocks of a Markdown text, in order."""
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_readme_python_blocks_run_as_written_and_do_the_newcomers_task(tmp_path, monkeypatch,
                                                                       capsys):
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__readme__"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"README.md python block {i + 1}", "exec"), namespace)  # noqa: S102
    out = capsys.readouterr().out
    session, rig, runner = namespace["session"], namespace["rig"], namespace["runner"]
    assert runner.state == "finished" and "60 pulses delivered" in out
    assert "110 % RMT (chosen in range 90–110)" in out  # the dry run's header
    records = read_log(session.path)
    (threshold,) = [r.payload for r in records if r.kind == "threshold"]
    assert threshold["method"] == "mlpest" and threshold["threshold_percent"] == rig.rmt_percent
    assert 10 <= threshold["n_pulses"] <= 40
    protocol = [r for r in records if r.kind == "pulse" and "train" in r.payload]
    assert len(protocol) == 60
    assert {r.payload["intensity_percent"] for r in protocol} == {
        int(rig.rmt_percent * 1.1 + 0.5)}
    times = [r.time_s for r in protocol]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) == pytest.approx(1.0, abs=0.05) and max(gaps) == pytest.approx(1.0, abs=0.05)
    (events,) = (tmp_path / "bids").rglob("*_events.tsv")
    rows = exported_pulses(events)
    assert sum(r["source"] == "protocol" for r in rows) == 60
    assert sum(r["source"] == "single" for r in rows) == threshold["n_pulses"]
    assert {r["run"] for r in rows if r["source"] == "protocol"} == {"1"}
    assert "RMT" in (tmp_path / "session_report.html").read_text(encoding="utf-8")
    assert (tmp_path / "P001_ses-01.xdf").stat().st_size > 0
    assert (namespace["copy"] / "recordings" / "emg").is_dir()


def render_protocol_table() -> str:
    def cell(value):
        return "no" if value is None else ("yes" if value == 100 else f"≤ {value} % MSO")

    lines = ["| protocol | fastest rate | " + " | ".join(c for c, _ in COLUMNS) + " |",
             "|---|---|" + "---|" * len(COLUMNS)]
    for name in list_protocols():
        protocol = load_protocol(name)
        t = protocol.timing
        fastest = max(t.frequency_hz, t.intra_burst_frequency_hz or 0.0)
        top = protocol_stimulators(protocol)
        cells = []
        for _, keys in COLUMNS:
            values = [top[k] for k in keys]
            cells.append(cell(values[0]) if len(set(values)) == 1 else
                         f"{cell(values[0])} (240 V), {cell(values[1])} (115 V)")
        lines.append(f"| `{name}` | {fastest:g} Hz | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def test_readme_protocol_table_is_the_registrys():
    text = README.read_text(encoding="utf-8")
    after = text[text.index(TABLE_MARK):].split("\n", 1)[1]
    table = after[:after.index("\n\n")]
    assert table == render_protocol_table()
    assert "| `ctbs` | 50 Hz | ≤ 30 % MSO (240 V), no (115 V) |" in table
