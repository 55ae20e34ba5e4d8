"""A TTL trigger line declared in a device profile: open_rig wires it, every pulse uses it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from labkit import open_rig
from labkit.errors import ConfigError, StimulatorError
from labkit.profiles import devices_dir, load_profile
from labkit.stimulators.trigger import SerialLineTrigger, TriggerLine


def _profile_with(tmp_path: Path, trigger_toml: str) -> Path:
    """The shipped simulated profile with a ``[stimulator.trigger]`` section added."""
    text = (devices_dir() / "simulated.toml").read_text(encoding="utf-8")
    path = tmp_path / "simulated-ttl.toml"
    path.write_text(text.replace("\n[streams.emg]", trigger_toml + "\n[streams.emg]", 1),
                    encoding="utf-8")
    return path


def test_a_profile_trigger_line_fires_every_pulse_of_the_rig(tmp_path):
    """MagPy's quickFire cabling declared in the profile: RTS of the stimulator's own port.
    The rig's pulses go out as TTL edges (no serial fire command), marked as such."""
    path = _profile_with(tmp_path, '[stimulator.trigger]\nline = "rts"\nwidth_ms = 2.0\n')
    with open_rig(path, seed=3, sim_process="inline") as rig:
        line = rig.stimulator.trigger_line
        assert isinstance(line, SerialLineTrigger) and line.line == "rts"
        assert line.width_s == 0.002
        emulator = rig.hardware.emulator
        trials = [rig.pulse(55), rig.pulse(55)]
        assert [t.pulse.extra for t in trials] == [{"trigger": "ttl"}] * 2
        assert emulator.trigger_edges == 2 and emulator.pulses_delivered == 2
        assert not any(m.startswith(b"EH") for m in emulator.received)
        assert rig.pulses_delivered == 2  # counted against the session cap like any pulse


@pytest.mark.skipif(os.name != "posix", reason="the simulator's child process needs a pty")
def test_a_trigger_on_a_pseudo_terminal_is_refused_at_open(tmp_path):
    path = _profile_with(tmp_path, '[stimulator.trigger]\nline = "dtr"\n')
    with pytest.raises(StimulatorError, match="no modem lines"):
        open_rig(path, seed=3, sim_process="child")


def test_the_shared_line_needs_a_connected_stimulator(tmp_path):
    path = _profile_with(tmp_path, '[stimulator.trigger]\nline = "rts"\n')
    with pytest.raises(ConfigError, match="connect=True") as info:
        open_rig(path, seed=3, sim_process="inline", connect=False)
    assert info.value.field == "stimulator.trigger.port"


@pytest.mark.parametrize(("toml", "field", "says"), [
    ('line = "parallel"\n', "stimulator.trigger", "needs its port"),
    ('line = "rts"\nwidth_ms = 0\n', "stimulator.trigger.width_ms", "must be > 0.0 (got 0)"),
    ('line = "rts"\nwidth_ms = 500\n', "stimulator.trigger.width_ms", "must be <= 100"),
    ('line = "ttl"\n', "stimulator.trigger.line", "'rts', 'dtr' or 'parallel'"),
    ('line = "parallel"\nport = "/dev/parport0"\nbit = 8\n', "stimulator.trigger.bit",
     "must be <= 7"),
])
def test_bad_trigger_sections_name_the_file_field_and_range(tmp_path, toml, field, says):
    path = _profile_with(tmp_path, "[stimulator.trigger]\n" + toml)
    with pytest.raises(ConfigError) as info:
        load_profile(path)
    message = str(info.value)
    assert str(path) in message and field in message and says in message, message


class _CountingLine(TriggerLine):
    """A line that only counts its closes."""

    def __init__(self) -> None:
        super().__init__()
        self.closes = 0

    def _set(self, level: bool) -> None:
        pass

    def close(self) -> None:
        self.closes += 1


def test_a_line_the_unit_owns_is_closed_when_replaced_and_with_the_unit(tmp_path):
    """use_trigger(close_with_unit=True) hands the line to the unit: replacing it (by
    another line or None) closes it, and so does closing the unit; a line the caller
    kept is never closed by the unit."""
    path = _profile_with(tmp_path, '[stimulator.trigger]\nline = "rts"\n')
    kept, owned = _CountingLine(), _CountingLine()
    with open_rig(path, seed=3, sim_process="inline") as rig:
        stimulator = rig.stimulator
        from_profile = stimulator.trigger_line
        closed = []
        from_profile.close = lambda: closed.append(True)
        stimulator.use_trigger(kept)
        assert closed == [True]  # the profile's line belonged to the unit
        stimulator.use_trigger(None)
        assert kept.closes == 0
        stimulator.use_trigger(owned, close_with_unit=True)
        stimulator.use_trigger(owned)  # the same line again: still open
        assert owned.closes == 0
        stimulator.use_trigger(owned, close_with_unit=True)
    assert owned.closes == 1 and kept.closes == 0
