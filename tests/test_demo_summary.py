"""summary.json of ``make demo`` holds paths relative to the run folder only."""

from __future__ import annotations

import json

import pytest

from labkit.demo import RUN_DIR_ENV, record_summary


def test_paths_are_stored_relative_to_the_run_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(RUN_DIR_ENV, str(tmp_path))
    record_summary({"session_log": tmp_path / "sessions" / "log.jsonl",
                    "recordings": {"emg": str(tmp_path / "sessions" / "emg")},
                    "rmt_percent_mso": 39, "bids_validator": "no errors"})
    text = (tmp_path / "summary.json").read_text()
    assert str(tmp_path) not in text
    summary = json.loads(text)
    assert summary["session_log"] == "sessions/log.jsonl"
    assert summary["recordings"] == {"emg": "sessions/emg"}
    assert summary["rmt_percent_mso"] == 39


def test_a_path_outside_the_run_folder_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(RUN_DIR_ENV, str(tmp_path / "run"))
    (tmp_path / "run").mkdir()
    with pytest.raises(ValueError, match="paths inside the run folder only"):
        record_summary({"elsewhere": str(tmp_path / "other" / "file")})
