"""Small matplotlib figures shared by the notebooks.

Every function is pure: it takes data (arrays, lists) and returns a new
:class:`matplotlib.figure.Figure` built without :mod:`matplotlib.pyplot`, so nothing is
drawn on a global figure and nothing is shown until the notebook displays the returned
figure. Units are in the argument names (``_uv``, ``_ms``, ``_percent``) and on every
axis; trials, the pulse and criteria are drawn in the one code of
:mod:`labkit.trialstyle` (filled: at or above criterion, hollow: below, grey ×: rejected).

- :func:`plot_mep_overlay`: MEP sweeps (µV against ms), coloured by intensity.
- :func:`plot_amplitude_per_pulse`: peak-to-peak amplitude of each pulse in order.
- :func:`plot_staircase`: intensity per trial of a threshold hunt, hits and misses.
- :func:`plot_threshold_density`: posterior (or likelihood) of the threshold.
- :func:`plot_io_curve`: input-output curve with an optional fitted sigmoid.
- :func:`plot_pain_diary`: daily NRS diaries with the baseline/endpoint/follow-up weeks.
- :func:`plot_hotspot_map`: the MEP map of a hotspot hunt, centre of gravity and hotspot.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from labkit.errors import LabkitError
from labkit.trialstyle import (
    ABOVE,
    BELOW,
    CRITERION_COLOUR,
    ESTIMATE_COLOUR,
    PULSE_COLOUR,
    REJECTED,
    TRUTH_COLOUR,
    WINDOW_COLOUR,
    matplotlib_kwargs,
)

__all__ = [
    "PlotInputError",
    "plot_amplitude_per_pulse",
    "plot_hotspot_map",
    "plot_io_curve",
    "plot_pain_diary",
    "plot_mep_overlay",
    "plot_staircase",
    "plot_threshold_density",
]


class PlotInputError(LabkitError, ValueError):
    """Data given to a plotting helper has the wrong shape or length."""


def _vector(values: object, name: str) -> np.ndarray:
    out = np.asarray(values, dtype=float)
    if out.ndim != 1:
        raise PlotInputError(f"{name} must be one-dimensional, got shape {out.shape}")
    return out


def _same_length(n: int, values: object | None, name: str, what: str) -> np.ndarray | None:
    if values is None:
        return None
    out = np.asarray(values)
    if out.shape != (n,):
        raise PlotInputError(f"{name} must have one value per {what} ({n}), got shape "
                             f"{out.shape}")
    return out


def _new_figure(figsize: tuple[float, float]) -> tuple[Figure, object]:
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def plot_mep_overlay(
    times_ms: Sequence[float],
    waveforms_uv: Sequence[Sequence[float]],
    intensity_percent: Sequence[float] | None = None,
    *,
    window_ms: tuple[float, float] | None = (15.0, 50.0),
    xlim_ms: tuple[float, float] | None = (-20.0, 80.0),
    title: str = "MEP overlay",
) -> Figure:
    """Overlay MEP sweeps, one line per pulse, coloured by intensity; the pulse at 0 ms.

    Parameters
    ----------
    times_ms : array_like, shape (n_times,)
        Time from the pulse, ms.
    waveforms_uv : array_like, shape (n_pulses, n_times)
        EMG sweeps, µV.
    intensity_percent : array_like, shape (n_pulses,), optional
        Intensity of each pulse, % MSO: one colour per intensity, with a legend.
    window_ms : tuple of float | None
        MEP window to shade, ms.
    xlim_ms : tuple of float | None
        Visible time range, ms.
    title : str
        Axes title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    t = _vector(times_ms, "times_ms")
    waves = np.asarray(waveforms_uv, dtype=float)
    if waves.ndim != 2 or waves.shape[1] != t.size:
        raise PlotInputError(
            f"waveforms_uv must have shape (n_pulses, {t.size}) to match times_ms, got "
            f"{waves.shape}"
        )
    levels = _same_length(waves.shape[0], intensity_percent, "intensity_percent", "sweep")
    fig, ax = _new_figure((7.0, 4.0))
    if window_ms is not None:
        ax.axvspan(*window_ms, color=WINDOW_COLOUR, zorder=0, label="MEP window")
    ax.axvline(0.0, color=PULSE_COLOUR, lw=1.0, zorder=1, label="pulse (0 ms)")
    if levels is None:
        for wave in waves:
            ax.plot(t, wave, color="tab:blue", lw=0.8, alpha=0.7)
    else:
        unique = np.unique(levels)
        for color, level in zip(_level_colors(unique.size), unique, strict=True):
            rows = waves[levels == level]
            for j, wave in enumerate(rows):
                ax.plot(t, wave, color=color, lw=0.8, alpha=0.75,
                        label=f"{level:g} % MSO" if j == 0 else None)
    ax.legend(loc="upper right", fontsize="small")
    if xlim_ms is not None:
        ax.set_xlim(*xlim_ms)
    ax.set_xlabel("time from pulse (ms)")
    ax.set_ylabel("EMG (µV)")
    ax.set_title(title)
    return fig


def _level_colors(n: int) -> list:
    cmap = colormaps["viridis"]
    return [cmap(v) for v in np.linspace(0.0, 0.85, max(n, 1))][:n]


def plot_amplitude_per_pulse(
    amplitude_uv: Sequence[float],
    intensity_percent: Sequence[float] | None = None,
    *,
    criterion_uv: float | None = 50.0,
    rejected: Sequence[bool] | None = None,
    log_scale: bool = True,
    title: str = "MEP amplitude per pulse",
) -> Figure:
    """Peak-to-peak amplitude of each pulse, in the order delivered.

    Parameters
    ----------
    amplitude_uv : array_like, shape (n_pulses,)
        Peak-to-peak MEP amplitudes, µV.
    intensity_percent : array_like, shape (n_pulses,), optional
        Intensity per pulse, % MSO: points coloured by intensity, with a legend.
    criterion_uv : float | None
        Criterion line (dashed), µV; None for none.
    rejected : array_like of bool, shape (n_pulses,), optional
        Trials flagged for background EMG, drawn as grey ×. Accepted trials are filled at
        or above ``criterion_uv`` and hollow below it.
    log_scale : bool
        Logarithmic amplitude axis (MEPs span decades).
    title : str
        Axes title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    amp = _vector(amplitude_uv, "amplitude_uv")
    levels = _same_length(amp.size, intensity_percent, "intensity_percent", "pulse")
    bad = _same_length(amp.size, rejected, "rejected", "pulse")
    bad = np.zeros(amp.size, bool) if bad is None else bad.astype(bool)
    pulse_no = np.arange(1, amp.size + 1)
    fig, ax = _new_figure((7.0, 3.5))
    above = np.ones(amp.size, bool) if criterion_uv is None else amp >= criterion_uv
    groups = [(None, np.ones(amp.size, bool))] if levels is None else [
        (colour, levels == level) for colour, level in
        zip(_level_colors(np.unique(levels).size), np.unique(levels), strict=True)]
    for colour, sel in groups:
        for style, part in ((ABOVE, above), (BELOW, ~above)):
            pick = sel & part & ~bad
            if pick.any():
                ax.plot(pulse_no[pick], amp[pick], **matplotlib_kwargs(style, colour))
    if levels is not None:
        for colour, level in zip(_level_colors(np.unique(levels).size), np.unique(levels),
                                 strict=True):
            ax.plot([], [], "s", color=colour, label=f"{level:g} % MSO")
    if criterion_uv is not None:
        ax.plot([], [], **matplotlib_kwargs(ABOVE), label=ABOVE.label)
        ax.plot([], [], **matplotlib_kwargs(BELOW), label=BELOW.label)
    if bad.any():
        ax.plot(pulse_no[bad], amp[bad], **matplotlib_kwargs(REJECTED), label=REJECTED.label)
    if criterion_uv is not None:
        ax.axhline(criterion_uv, ls="--", color=CRITERION_COLOUR, lw=1,
                   label=f"{criterion_uv:g} µV criterion")
    if log_scale and np.any(amp > 0):
        ax.set_yscale("log")
    ax.set_xlabel("pulse number")
    ax.set_ylabel("peak-to-peak (µV)")
    ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize="small")
    return fig


def plot_staircase(
    intensity_percent: Sequence[float],
    hit: Sequence[bool],
    estimate_percent: Sequence[float] | None = None,
    *,
    true_percent: float | None = None,
    title: str = "Threshold hunt",
) -> Figure:
    """Intensity per trial of a threshold hunt: hits filled, misses hollow.

    Parameters
    ----------
    intensity_percent : array_like, shape (n_trials,)
        Intensity of each trial, % MSO.
    hit : array_like of bool, shape (n_trials,)
        Whether each trial reached the criterion.
    estimate_percent : array_like, shape (n_trials,), optional
        Running threshold estimate after each trial, % MSO (drawn as a step line).
    true_percent : float | None
        Known true threshold (simulated subject), % MSO: a green line.
    title : str
        Axes title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    x = _vector(intensity_percent, "intensity_percent")
    hits = _same_length(x.size, hit, "hit", "trial").astype(bool)
    est = _same_length(x.size, estimate_percent, "estimate_percent", "trial")
    trial_no = np.arange(1, x.size + 1)
    fig, ax = _new_figure((7.0, 3.5))
    ax.plot(trial_no, x, color="0.7", lw=1, zorder=1)
    ax.plot(trial_no[hits], x[hits], **matplotlib_kwargs(ABOVE), zorder=3,
            label=f"hit ({ABOVE.label})")
    ax.plot(trial_no[~hits], x[~hits], **matplotlib_kwargs(BELOW), zorder=3,
            label=f"miss ({BELOW.label})")
    if est is not None:
        ax.step(trial_no, est.astype(float), where="post", color=ESTIMATE_COLOUR, lw=1.2,
                label="estimate")
    if true_percent is not None:
        ax.axhline(true_percent, color=TRUTH_COLOUR, ls="--", lw=1.2,
                   label=f"true {true_percent:.1f} % MSO")
    ax.set_xlabel("trial number")
    ax.set_ylabel("intensity (% MSO)")
    ax.set_title(title)
    ax.legend(loc="best", fontsize="small")
    return fig


def plot_threshold_density(
    t_grid_percent: Sequence[float],
    density: Sequence[float],
    *,
    estimate_percent: float | None = None,
    interval_percent: tuple[float, float] | None = None,
    true_percent: float | None = None,
    label: str = "posterior",
    title: str = "Threshold",
) -> Figure:
    """Posterior (or likelihood) of the threshold over intensity.

    Parameters
    ----------
    t_grid_percent : array_like, shape (n,)
        Threshold grid, % MSO.
    density : array_like, shape (n,)
        Posterior mass or likelihood on the grid; scaled to a maximum of 1 for display.
    estimate_percent : float | None
        The estimate, % MSO (solid line).
    interval_percent : tuple of float | None
        Credible or confidence interval, % MSO (shaded).
    true_percent : float | None
        Known true threshold, % MSO (dashed green).
    label : str
        What ``density`` is ("posterior", "likelihood").
    title : str
        Axes title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    t = _vector(t_grid_percent, "t_grid_percent")
    dens = _vector(density, "density")
    if dens.size != t.size:
        raise PlotInputError(f"density must have one value per grid point ({t.size}), got "
                             f"{dens.size}")
    peak = np.nanmax(dens) if dens.size else 0.0
    scaled = dens / peak if peak > 0 else dens
    fig, ax = _new_figure((7.0, 3.5))
    ax.plot(t, scaled, color="tab:purple", label=f"{label} (scaled to max 1)")
    if interval_percent is not None:
        ax.axvspan(*interval_percent, color="tab:purple", alpha=0.15, label="interval")
    if estimate_percent is not None:
        ax.axvline(estimate_percent, color=ESTIMATE_COLOUR, lw=1.2,
                   label=f"estimate {estimate_percent:.1f} % MSO")
    if true_percent is not None:
        ax.axvline(true_percent, color=TRUTH_COLOUR, ls="--", lw=1.2,
                   label=f"true {true_percent:.1f} % MSO")
    inside = np.flatnonzero(scaled > 1e-3)
    if inside.size:
        lo, hi = t[inside[0]], t[inside[-1]]
        pad = max(2.0, 0.1 * (hi - lo))
        ax.set_xlim(lo - pad, hi + pad)
    ax.set_xlabel("threshold (% MSO)")
    ax.set_ylabel(f"{label} (relative, max = 1)")
    ax.set_title(title)
    ax.legend(loc="best", fontsize="small")
    return fig


def plot_io_curve(
    intensity: Sequence[float],
    amplitude_uv: Sequence[float],
    predict: Callable[[np.ndarray], np.ndarray] | None = None,
    *,
    x_label: str = "intensity (% RMT)",
    title: str = "Input-output curve",
    s50: float | None = None,
) -> Figure:
    """Input-output curve: single trials, level means ± SD and an optional fit.

    Parameters
    ----------
    intensity : array_like, shape (n_trials,)
        Intensity per trial (% RMT or % MSO, as ``x_label`` says).
    amplitude_uv : array_like, shape (n_trials,)
        Peak-to-peak MEP per trial, µV.
    predict : callable, optional
        Fitted curve, e.g. ``BoltzmannFit.predict``; drawn over the tested range.
    x_label : str
        Label of the intensity axis.
    title : str
        Axes title.
    s50 : float | None
        Intensity of the half-maximum (dotted line), same unit as ``intensity``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    x = _vector(intensity, "intensity")
    y = _vector(amplitude_uv, "amplitude_uv")
    if y.size != x.size:
        raise PlotInputError(f"amplitude_uv must have one value per trial ({x.size}), got "
                             f"{y.size}")
    fig, ax = _new_figure((7.0, 4.0))
    ax.plot(x, y, "o", color="0.6", ms=4, alpha=0.7, label="trials")
    levels = np.unique(x)
    means = np.array([y[x == v].mean() for v in levels])
    sds = np.array([y[x == v].std(ddof=1) if np.sum(x == v) > 1 else 0.0 for v in levels])
    ax.errorbar(levels, means, yerr=sds, fmt="s", color="tab:blue", capsize=3,
                label="mean ± SD")
    if predict is not None and x.size:
        grid = np.linspace(x.min(), x.max(), 200)
        ax.plot(grid, predict(grid), color="tab:red", lw=1.5, label="Boltzmann fit")
    if s50 is not None:
        ax.axvline(s50, color="tab:red", ls=":", lw=1, label=f"S50 {s50:.1f}")
    ax.set_xlabel(x_label)
    ax.set_ylabel("peak-to-peak (µV)")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize="small")
    return fig


def plot_pain_diary(
    diaries: dict[str, tuple[Sequence[int], Sequence[float]]],
    windows: Sequence[tuple[str, int, int]] = (),
    *,
    session_days: Sequence[int] = (),
    title: str = "Daily pain diary (NRS 0-10)",
) -> Figure:
    """Daily NRS of one or more patients, with the weeks the outcomes average shaded.

    Parameters
    ----------
    diaries : dict
        Patient label → ``(days, nrs)``; day 0 = first session.
    windows : sequence of (label, first_day, last_day)
        Averaging windows to shade (baseline, end of treatment, follow-ups).
    session_days : sequence of int
        Stimulation days, marked along the bottom.
    title : str
        Axes title.
    """
    if not diaries:
        raise PlotInputError("diaries must name at least one patient")
    fig, ax = _new_figure((8.0, 3.4))
    for first, last in ((w[1], w[2]) for w in windows):
        ax.axvspan(first - 0.5, last + 0.5, color="0.9", zorder=0)
    for label, first, last in windows:
        ax.text((first + last) / 2, 10.3, label, ha="center", va="bottom", fontsize=7)
    for name, (days, nrs) in diaries.items():
        d, v = _vector(days, f"{name} days"), _vector(nrs, f"{name} nrs")
        if d.shape != v.shape:
            raise PlotInputError(f"{name}: days and nrs differ in length")
        ax.plot(d, v, ".-", lw=0.8, ms=3, label=name)
    if len(session_days):
        ax.plot(session_days, [0.2] * len(session_days), "k|", ms=8, label="sessions")
    ax.set(xlabel="day (0 = first session)", ylabel="pain NRS (0-10)", ylim=(0, 11),
           title=title)
    ax.legend(fontsize=7, loc="lower right")
    return fig


def plot_hotspot_map(result, *, truth_mm: tuple[float, float] | None = None,
                     title: str = "MEP map") -> Figure:
    """The interpolated MEP map of a hotspot hunt with its sites, centre of gravity and hotspot.

    Parameters
    ----------
    result : HotspotResult
        From :meth:`labkit.hotspot.HotspotHunt.result`.
    truth_mm : tuple of float | None
        A known true hotspot (along, across), mm (simulated subject): a green ×.
    title : str
        Axes title.

    Returns
    -------
    matplotlib.figure.Figure
        Sites in the trial code (filled: median at or above the criterion, hollow: below),
        the centre of gravity as a triangle, the hotspot as a cross in the pulse colour.
    """
    along, across, amp = result.raster
    fig, ax = _new_figure((5.4, 4.6))
    mesh = ax.pcolormesh(across, along, amp, shading="auto", cmap="Greys")
    fig.colorbar(mesh, ax=ax, label="median MEP, interpolated (µV)")
    pos = np.asarray(result.positions_mm, float)
    med = np.asarray(result.medians_uv, float)
    for style in (ABOVE, BELOW):
        pick = np.isfinite(med) & ((med >= result.criterion_uv) == (style is ABOVE))
        if pick.any():
            ax.plot(pos[pick, 1], pos[pick, 0], **matplotlib_kwargs(style),
                    label=f"site median {style.label} ({result.criterion_uv:g} µV)")
    if result.cog_mm is not None:
        ax.plot(result.cog_mm[1], result.cog_mm[0], "^", mfc="none", mec=CRITERION_COLOUR,
                ms=9, label="centre of gravity")
    ax.plot(result.hotspot_mm[1], result.hotspot_mm[0], "+", color=PULSE_COLOUR, ms=14, mew=2.5,
            label=f"hotspot ({result.rule})")
    if truth_mm is not None:
        ax.plot(truth_mm[1], truth_mm[0], "x", color=TRUTH_COLOUR, ms=10, mew=2,
                label="true hotspot")
    ax.set_xlabel("across the current direction (mm)")
    ax.set_ylabel("along the current direction (mm)")
    ax.set_aspect("equal")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=7)
    return fig
