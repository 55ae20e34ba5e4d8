"""The figures: units on every axis, the pulse at 0 ms, one trial code across plots."""

from __future__ import annotations

import matplotlib.colors as mcolors
import numpy as np
import pytest

from labkit.plotting import (
    PlotInputError,
    plot_amplitude_per_pulse,
    plot_hotspot_map,
    plot_io_curve,
    plot_mep_overlay,
    plot_pain_diary,
    plot_staircase,
    plot_threshold_density,
)
from labkit.trialstyle import ACCEPTED_COLOUR, PULSE_COLOUR, REJECTED_COLOUR


def _hotspot_result():
    from labkit.hotspot import HotspotHunt, make_grid

    hunt = HotspotHunt(make_grid(n=3), n_per_site=1, seed=0)
    while not hunt.done:
        site = hunt.next_site()
        hunt.record(site.index, 400.0 if site.index == 4 else 20.0 + site.index)
    return hunt.result()


def _figures():
    t = np.linspace(-20, 80, 101)
    waves = np.vstack([np.sin(t / 5), 2 * np.sin(t / 5)])
    return {
        "overlay": plot_mep_overlay(t, waves, [60, 70]),
        "amplitudes": plot_amplitude_per_pulse([10, 80, 300], rejected=[False, False, True]),
        "staircase": plot_staircase([60, 55, 50], [True, True, False], [58, 54, 52]),
        "density": plot_threshold_density([40, 45, 50], [0.1, 1.0, 0.2]),
        "io": plot_io_curve([100, 100, 120, 120], [50, 60, 400, 500]),
        "pain": plot_pain_diary({"P1": ([0, 1, 2], [6, 5, 4])}),
        "hotspot": plot_hotspot_map(_hotspot_result(), truth_mm=(1.0, -1.0)),
    }


@pytest.mark.parametrize("name", list(_figures()))
def test_every_axis_has_a_label_with_a_unit_or_a_count(name):
    ax = _figures()[name].axes[0]
    for label in (ax.get_xlabel(), ax.get_ylabel()):
        assert label, f"{name}: an axis has no label"
        assert "(" in label or label.endswith("number"), f"{name}: {label!r} has no unit"


def _lines(ax, marker=None):
    return [ln for ln in ax.get_lines() if marker is None or ln.get_marker() == marker]


def test_the_overlay_marks_the_pulse_at_0_ms():
    ax = _figures()["overlay"].axes[0]
    pulse = [ln for ln in ax.get_lines() if ln.get_label() == "pulse (0 ms)"]
    assert len(pulse) == 1 and list(pulse[0].get_xdata()) == [0.0, 0.0]
    assert mcolors.same_color(pulse[0].get_color(), PULSE_COLOUR)


def test_amplitudes_use_the_one_trial_code():
    ax = _figures()["amplitudes"].axes[0]
    drawn = [ln for ln in ax.get_lines() if len(ln.get_xdata())]
    by_pulse = {int(ln.get_xdata()[0]): ln for ln in drawn if ln.get_marker() in "ox"}
    above, below, rejected = by_pulse[2], by_pulse[1], by_pulse[3]  # 80, 10, 300 µV
    assert above.get_marker() == "o" and mcolors.same_color(above.get_markerfacecolor(),
                                                            ACCEPTED_COLOUR)
    assert below.get_marker() == "o" and mcolors.same_color(below.get_markerfacecolor(),
                                                            "white")
    assert rejected.get_marker() == "x" and mcolors.same_color(rejected.get_color(),
                                                               REJECTED_COLOUR)
    labels = ax.get_legend_handles_labels()[1]
    assert {"at or above criterion", "below criterion", "rejected (background EMG)"} <= set(
        labels)


def test_staircase_hits_filled_misses_hollow_like_the_panels():
    ax = _figures()["staircase"].axes[0]
    hit = next(ln for ln in ax.get_lines() if ln.get_label().startswith("hit"))
    miss = next(ln for ln in ax.get_lines() if ln.get_label().startswith("miss"))
    assert mcolors.same_color(hit.get_markerfacecolor(), ACCEPTED_COLOUR)
    assert mcolors.same_color(miss.get_markerfacecolor(), "white")
    assert mcolors.same_color(miss.get_markeredgecolor(), ACCEPTED_COLOUR)


def test_bad_input_names_the_argument():
    with pytest.raises(PlotInputError, match="rejected must have one value per pulse"):
        plot_amplitude_per_pulse([1, 2, 3], rejected=[True])


def test_hotspot_map_uses_the_trial_code_and_marks_the_hotspot():
    result = _hotspot_result()
    ax = plot_hotspot_map(result).axes[0]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    above = next(ln for k, ln in lines.items() if "at or above" in k)
    below = next(ln for k, ln in lines.items() if k.startswith("site median below"))
    assert len(above.get_xdata()) == 1 and len(below.get_xdata()) == 8
    assert mcolors.same_color(below.get_markerfacecolor(), "white")
    hot = next(ln for k, ln in lines.items() if k.startswith("hotspot"))
    assert (hot.get_ydata()[0], hot.get_xdata()[0]) == pytest.approx(result.hotspot_mm)
    assert mcolors.same_color(hot.get_color(), PULSE_COLOUR)
