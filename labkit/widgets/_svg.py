"""Pure SVG rendering of the small plots the panels show.

Every function takes numbers and returns an SVG string; nothing here touches widgets,
threads or clocks, so the plots are tested by parsing their output. The root ``<svg>``
carries ``data-*`` attributes (number of traces, last value) that tests and the browser
test read back instead of comparing pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

import numpy as np

from labkit.trialstyle import (
    ABOVE,
    ACCEPTED_COLOUR,
    CRITERION_COLOUR,
    PULSE_COLOUR,
    WINDOW_COLOUR,
    TrialStyle,
)

#: Colour of the newest trace (the accepted-trial colour of :mod:`labkit.trialstyle`).
ACCENT = ACCEPTED_COLOUR
#: Colour of older traces and of the line joining trials.
MUTED = "#9aa5b1"

_FONT = 'font-family="sans-serif" font-size="10"'


def _fmt(value: float) -> str:
    return f"{value:.1f}"


def _scale(values: np.ndarray, lo: float, hi: float, out_lo: float, out_hi: float) -> np.ndarray:
    span = hi - lo if hi > lo else 1.0
    return out_lo + (values - lo) * (out_hi - out_lo) / span


def _decimate(x: np.ndarray, y: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep the shape of a long trace with at most ~``max_points`` points (min/max pairs)."""
    n = x.size
    if n <= max_points:
        return x, y
    step = int(np.ceil(n / max(1, max_points // 2)))
    n_full = (n // step) * step
    rows = y[:n_full].reshape(-1, step)
    base = np.arange(rows.shape[0]) * step
    i_min = base + np.argmin(rows, axis=1)
    i_max = base + np.argmax(rows, axis=1)
    idx = np.sort(np.concatenate([i_min, i_max]))
    if n_full < n:
        idx = np.concatenate([idx, [n - 1]])
    return x[idx], y[idx]


def _points(x: np.ndarray, y: np.ndarray) -> str:
    return " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(x, y, strict=True))


def _frame(width: int, height: int, attrs: dict[str, str], body: list[str]) -> str:
    data = " ".join(f'data-{k}="{escape(str(v))}"' for k, v in attrs.items())
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" {data}>'
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="white" stroke="#ddd"/>'
        + "".join(body)
        + "</svg>"
    )


@dataclass(frozen=True)
class TracePath:
    """A sweep decimated once into an SVG ``points`` string in data units (ms, µV).

    The overlay places it with one SVG transform, so redrawing 20 sweeps costs a string
    join, not 20 re-decimations (see ``benchmarks/bench_live_view.py``).
    """

    points: str
    t_lo: float
    t_hi: float
    abs_max: float


def trace_path(times_ms: np.ndarray, values_uv: np.ndarray, max_points: int = 400) -> TracePath:
    """Decimate a sweep (min/max per bin) into a :class:`TracePath`."""
    t = np.asarray(times_ms, float)
    v = np.asarray(values_uv, float)
    if t.size == 0:
        return TracePath("", 0.0, 1.0, 0.0)
    td, vd = _decimate(t, v, max_points)
    points = " ".join(f"{a:.2f},{b:.1f}" for a, b in zip(td.tolist(), vd.tolist(), strict=True))
    return TracePath(points, float(t[0]), float(t[-1]), float(np.max(np.abs(v))))


def traces_svg(
    traces: Sequence[tuple[np.ndarray, np.ndarray] | TracePath],
    *,
    window_ms: tuple[float, float] | None = None,
    width: int = 420,
    height: int = 200,
    max_points: int = 400,
    title: str = "MEP",
) -> str:
    """Overlay EMG traces: older ones muted, the last one highlighted.

    Parameters
    ----------
    traces : sequence of (times_ms, values_uv) or TracePath
        Oldest first; the last one is drawn on top in the accent colour.
    window_ms : (float, float) | None
        Peak-to-peak window to shade, ms after the pulse.
    width, height : int
        Size in pixels.
    max_points : int
        Points per trace after min/max decimation (for raw traces).
    title : str
        Caption drawn in the top-left corner.

    Returns
    -------
    str
        An ``<svg>`` element with ``data-n-traces`` set.
    """
    pad_l, pad_r, pad_t, pad_b = 40, 8, 16, 18
    body: list[str] = []
    paths = [tr if isinstance(tr, TracePath) else trace_path(tr[0], tr[1], max_points)
             for tr in traces]
    n = len(paths)
    if n:
        t_lo = min(p.t_lo for p in paths)
        t_hi = max(p.t_hi for p in paths)
        t_hi = t_hi if t_hi > t_lo else t_lo + 1.0
        y_abs = max(p.abs_max for p in paths)
        y_abs = y_abs if y_abs > 0 else 1.0
        sx = (width - pad_l - pad_r) / (t_hi - t_lo)
        sy = (height - pad_t - pad_b) / 2.0 / y_abs
        y_mid = pad_t + (height - pad_t - pad_b) / 2.0
        if window_ms is not None:
            x0 = pad_l + (window_ms[0] - t_lo) * sx
            x1 = pad_l + (window_ms[1] - t_lo) * sx
            body.append(
                f'<rect x="{_fmt(x0)}" y="{pad_t}" width="{_fmt(max(x1 - x0, 0))}" '
                f'height="{height - pad_t - pad_b}" fill="{WINDOW_COLOUR}"/>'
            )
        if t_lo <= 0.0 <= t_hi:  # the pulse
            x_pulse = pad_l + (0.0 - t_lo) * sx
            body.append(
                f'<line class="pulse" x1="{_fmt(x_pulse)}" x2="{_fmt(x_pulse)}" y1="{pad_t}" '
                f'y2="{height - pad_b}" stroke="{PULSE_COLOUR}" stroke-width="1"/>'
                f'<text x="{_fmt(x_pulse + 2)}" y="{pad_t + 8}" {_FONT} '
                f'fill="{PULSE_COLOUR}">pulse</text>')
        body.append(f'<g transform="translate({pad_l - t_lo * sx:.3f} {y_mid:.3f}) '
                    f'scale({sx:.5f} {-sy:.6g})">')
        for i, path in enumerate(paths):
            last = i == n - 1
            colour, stroke, opacity = (ACCENT, 1.6, 1.0) if last else (MUTED, 0.8, 0.6)
            cls = "last" if last else "old"
            body.append(
                f'<polyline class="{cls}" fill="none" stroke="{colour}" stroke-width="{stroke}" '
                f'stroke-opacity="{opacity}" vector-effect="non-scaling-stroke" '
                f'points="{path.points}"/>'
            )
        body.append("</g>")
        body.append(f'<text x="2" y="{pad_t + 8}" {_FONT}>{y_abs:.0f} µV</text>')
        body.append(f'<text x="2" y="{height - pad_b}" {_FONT}>-{y_abs:.0f} µV</text>')
        body.append(
            f'<text x="{pad_l}" y="{height - 4}" {_FONT}>{t_lo:.0f} ms</text>'
            f'<text class="x-label" x="{(width + pad_l) / 2 - 50:.0f}" y="{height - 4}" '
            f'{_FONT}>time from pulse (ms)</text>'
            f'<text x="{width - pad_r - 40}" y="{height - 4}" {_FONT}>{t_hi:.0f} ms</text>'
        )
    else:
        body.append(f'<text x="{pad_l}" y="{height / 2}" {_FONT}>no MEP yet</text>')
    body.append(f'<text x="{pad_l}" y="11" {_FONT}>{escape(title)}: EMG (µV), {n} trials'
                '</text>')
    return _frame(width, height, {"n-traces": n}, body)


def series_svg(
    values: Sequence[float],
    *,
    styles: Sequence[TrialStyle] | None = None,
    reference: float | None = None,
    width: int = 420,
    height: int = 140,
    title: str = "",
    unit: str = "",
    x_label: str = "trial number",
    y_min: float | None = None,
) -> str:
    """Points per trial (MEP amplitude, staircase intensity), joined by a thin line.

    Parameters
    ----------
    values : sequence of float
        One value per trial, in order.
    styles : sequence of TrialStyle, optional
        Per trial, from :func:`labkit.trialstyle.trial_style` (filled: at or above
        criterion; hollow: below; grey ×: rejected; small grey dot: undecided); default
        all filled.
    reference : float | None
        A horizontal dashed line (criterion, running estimate).
    width, height : int
        Size in pixels.
    title, unit, x_label : str
        Caption, unit of the y axis (printed on its ticks) and x-axis label.
    y_min : float | None
        Lower end of the y axis (default: the smallest value or 0).

    Returns
    -------
    str
        An ``<svg>`` element with ``data-n-points`` and ``data-last`` set.
    """
    pad_l, pad_r, pad_t, pad_b = 40, 8, 16, 16
    vals = np.asarray(list(values), float)
    n = vals.size
    body: list[str] = [f'<text x="{pad_l}" y="11" {_FONT}>{escape(title)}</text>']
    last = ""
    if n:
        lo = float(np.min(vals)) if y_min is None else y_min
        hi = float(np.max(vals))
        if reference is not None and math.isfinite(reference):
            lo, hi = min(lo, reference), max(hi, reference)
        if hi <= lo:
            hi = lo + 1.0
        hi += 0.05 * (hi - lo)
        xs = _scale(np.arange(n, dtype=float), 0, max(n - 1, 1), pad_l + 6, width - pad_r - 6)
        ys = _scale(vals, lo, hi, height - pad_b, pad_t)
        if reference is not None and math.isfinite(reference):
            yr = float(_scale(np.asarray([reference]), lo, hi, height - pad_b, pad_t)[0])
            body.append(
                f'<line class="reference" x1="{pad_l}" x2="{width - pad_r}" y1="{_fmt(yr)}" '
                f'y2="{_fmt(yr)}" stroke="{CRITERION_COLOUR}" stroke-dasharray="4 3"/>'
            )
        if n > 1:
            body.append(
                f'<polyline fill="none" stroke="{MUTED}" stroke-width="0.8" '
                f'points="{_points(xs, ys)}"/>'
            )
        style_list = list(styles) if styles is not None else []
        style_list += [ABOVE] * (n - len(style_list))
        for x, y, style in zip(xs, ys, style_list, strict=False):
            body.append(_mark_svg(float(x), float(y), style))
        body.append(f'<text x="2" y="{pad_t + 8}" {_FONT}>{hi:.0f}{escape(unit)}</text>')
        body.append(f'<text x="2" y="{height - pad_b}" {_FONT}>{lo:.0f}{escape(unit)}</text>')
        body.append(f'<text class="x-label" x="{(width + pad_l) / 2 - 30:.0f}" '
                    f'y="{height - 3}" {_FONT}>{escape(x_label)}</text>')
        last = f"{vals[-1]:.1f}"
    return _frame(width, height, {"n-points": n, "last": last}, body)


def _mark_svg(x: float, y: float, style: TrialStyle) -> str:
    """One trial's marker (``class`` = the style's name)."""
    r = 3.0 * style.size
    if style.marker == "x":
        return (f'<g class="{style.name}" stroke="{style.colour}" stroke-width="1.5">'
                f'<line x1="{_fmt(x - r)}" y1="{_fmt(y - r)}" x2="{_fmt(x + r)}" '
                f'y2="{_fmt(y + r)}"/><line x1="{_fmt(x - r)}" y1="{_fmt(y + r)}" '
                f'x2="{_fmt(x + r)}" y2="{_fmt(y - r)}"/></g>')
    fill = style.colour if style.filled else "white"
    return (f'<circle class="{style.name}" cx="{_fmt(x)}" cy="{_fmt(y)}" r="{r:g}" '
            f'fill="{fill}" stroke="{style.colour}"/>')


def histogram_svg(
    counts: Sequence[int],
    *,
    lo: float,
    hi: float,
    width: int = 300,
    height: int = 140,
    title: str = "",
    target: float | None = None,
    unit: str = "",
) -> str:
    """Bars of a histogram over ``[lo, hi)`` (e.g. trigger phase in degrees).

    Parameters
    ----------
    counts : sequence of int
        Count per equal-width bin.
    lo, hi : float
        Range covered by the bins.
    width, height : int
        Size in pixels.
    title : str
        Caption.
    target : float | None
        A value to mark with a vertical line (e.g. the target phase).
    unit : str
        Unit printed on the axis ends (``"°"``).

    Returns
    -------
    str
        An ``<svg>`` element with ``data-total`` set.
    """
    pad_l, pad_r, pad_t, pad_b = 8, 8, 16, 14
    c = np.asarray(list(counts), float)
    total = int(c.sum()) if c.size else 0
    body = [f'<text x="{pad_l}" y="11" {_FONT}>{escape(title)} (n={total})</text>']
    if c.size:
        peak = float(c.max()) if c.max() > 0 else 1.0
        bar_w = (width - pad_l - pad_r) / c.size
        for i, count in enumerate(c):
            h = (height - pad_t - pad_b) * count / peak
            body.append(
                f'<rect x="{_fmt(pad_l + i * bar_w + 0.5)}" y="{_fmt(height - pad_b - h)}" '
                f'width="{_fmt(max(bar_w - 1, 0.5))}" height="{_fmt(h)}" fill="{ACCENT}"/>'
            )
        if target is not None and lo <= target <= hi:
            xt = pad_l + (target - lo) / (hi - lo) * (width - pad_l - pad_r)
            body.append(
                f'<line x1="{_fmt(xt)}" x2="{_fmt(xt)}" y1="{pad_t}" y2="{height - pad_b}" '
                f'stroke="{PULSE_COLOUR}" stroke-dasharray="3 3"/>'
            )
        body.append(f'<text x="{pad_l}" y="{height - 2}" {_FONT}>{lo:g}{escape(unit)}</text>')
        body.append(f'<text x="{width - pad_r - 28}" y="{height - 2}" {_FONT}>'
                    f'{hi:g}{escape(unit)}</text>')
    return _frame(width, height, {"total": total}, body)


def _shade(fraction: float) -> str:
    """White (0) to the accepted-trial blue (1), for map cells."""
    f = min(max(fraction, 0.0), 1.0)
    lo, hi = (255, 255, 255), (0x1f, 0x6f, 0xd1)
    r, g, b = (round(a + (c - a) * f) for a, c in zip(lo, hi, strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


def map_svg(
    positions_mm: np.ndarray,
    medians_uv: Sequence[float],
    *,
    criterion_uv: float,
    cog_mm: tuple[float, float] | None = None,
    hotspot_mm: tuple[float, float] | None = None,
    next_site: int | None = None,
    spacing_mm: float = 10.0,
    width: int = 360,
    height: int = 360,
    title: str = "MEP map",
) -> str:
    """The MEP map of a hotspot hunt: one cell per site, shaded by log10 median amplitude.

    Sites use the trial code of :mod:`labkit.trialstyle`: a filled circle when the site's
    median reaches the criterion, hollow below it, a small grey dot before any pulse. The
    centre of gravity is a triangle, the hotspot a cross in the pulse colour, the next site
    a dashed outline. x: across the current direction (mm); y: along it (mm).

    Returns
    -------
    str
        An ``<svg>`` with ``data-n-sites``, ``data-n-measured`` and (once found)
        ``data-hotspot-along-mm``/``data-hotspot-across-mm``.
    """
    from labkit.trialstyle import BELOW, PENDING

    pos = np.asarray(positions_mm, float).reshape(-1, 2)
    med = np.asarray(list(medians_uv), float)
    pad_l, pad_r, pad_t, pad_b = 44, 12, 18, 34
    half = spacing_mm / 2
    lo_a, hi_a = pos[:, 0].min() - half, pos[:, 0].max() + half
    lo_c, hi_c = pos[:, 1].min() - half, pos[:, 1].max() + half
    span = max(hi_a - lo_a, hi_c - lo_c, 1.0)
    scale = min(width - pad_l - pad_r, height - pad_t - pad_b) / span

    def xy(along: float, across: float) -> tuple[float, float]:
        return pad_l + (across - lo_c) * scale, pad_t + (hi_a - along) * scale

    measured = np.isfinite(med)
    logs = np.log10(np.maximum(med[measured], 1.0)) if measured.any() else np.zeros(0)
    top = float(logs.max()) if logs.size else 1.0
    body = [f'<text x="{pad_l}" y="12" {_FONT}>{escape(title)} (median peak-to-peak, µV)'
            "</text>"]
    for k, (along, across) in enumerate(pos):
        x, y = xy(along + half, across - half)
        fill = (_shade(float(np.log10(max(med[k], 1.0))) / max(top, 1e-9))
                if measured[k] else "#f4f4f4")
        body.append(f'<rect class="cell" x="{_fmt(x)}" y="{_fmt(y)}" '
                    f'width="{_fmt(spacing_mm * scale)}" height="{_fmt(spacing_mm * scale)}" '
                    f'fill="{fill}" stroke="#ddd"/>')
    for k, (along, across) in enumerate(pos):
        x, y = xy(along, across)
        if measured[k]:
            style = ABOVE if med[k] >= criterion_uv else BELOW
            body.append(_mark_svg(x, y, style).replace("<circle ", '<circle stroke-width="2" '))
            body.append(f'<text x="{_fmt(x + 5)}" y="{_fmt(y - 5)}" {_FONT}>'
                        f'{med[k]:.0f}</text>')
        else:
            body.append(_mark_svg(x, y, PENDING))
        if next_site is not None and k == next_site:
            x0, y0 = xy(along + half, across - half)
            body.append(f'<rect class="next" x="{_fmt(x0 + 2)}" y="{_fmt(y0 + 2)}" '
                        f'width="{_fmt(spacing_mm * scale - 4)}" '
                        f'height="{_fmt(spacing_mm * scale - 4)}" fill="none" '
                        f'stroke="{PULSE_COLOUR}" stroke-dasharray="4 3"/>')
    attrs: dict[str, str] = {"n-sites": str(len(pos)), "n-measured": str(int(measured.sum()))}
    if cog_mm is not None:
        x, y = xy(*cog_mm)
        body.append(f'<polygon class="cog" points="{_fmt(x)},{_fmt(y - 6)} {_fmt(x - 5)},'
                    f'{_fmt(y + 4)} {_fmt(x + 5)},{_fmt(y + 4)}" fill="none" '
                    f'stroke="{CRITERION_COLOUR}" stroke-width="1.5"/>')
    if hotspot_mm is not None:
        x, y = xy(*hotspot_mm)
        body.append(f'<g class="hotspot" stroke="{PULSE_COLOUR}" stroke-width="2.5">'
                    f'<line x1="{_fmt(x - 7)}" y1="{_fmt(y)}" x2="{_fmt(x + 7)}" y2="{_fmt(y)}"/>'
                    f'<line x1="{_fmt(x)}" y1="{_fmt(y - 7)}" x2="{_fmt(x)}" y2="{_fmt(y + 7)}"/>'
                    "</g>")
        attrs["hotspot-along-mm"] = f"{hotspot_mm[0]:.1f}"
        attrs["hotspot-across-mm"] = f"{hotspot_mm[1]:.1f}"
    bottom = pad_t + (hi_a - lo_a) * scale
    body.append(f'<text x="{pad_l}" y="{_fmt(bottom + 12)}" {_FONT}>{lo_c:g} mm</text>'
                f'<text x="{_fmt(pad_l + (hi_c - lo_c) * scale - 30)}" y="{_fmt(bottom + 12)}" '
                f'{_FONT}>{hi_c:g} mm</text>'
                f'<text class="x-label" x="{pad_l}" y="{_fmt(bottom + 26)}" {_FONT}>'
                "across the current direction (mm)</text>"
                f'<text x="2" y="{pad_t + 8}" {_FONT}>{hi_a:g} mm</text>'
                f'<text x="2" y="{_fmt(bottom)}" {_FONT}>{lo_a:g} mm</text>'
                f'<text class="y-label" x="2" y="{_fmt((pad_t + bottom) / 2)}" {_FONT}>'
                "along (mm)</text>")
    return _frame(width, height, attrs, body)


def ratio_svg(
    names: Sequence[str],
    ratios: Sequence[float],
    ci: Sequence[tuple[float, float]],
    *,
    counts: Sequence[int] = (),
    width: int = 360,
    height: int = 200,
    title: str = "conditioned / test-alone MEP",
) -> str:
    """Paired-pulse ratios with their 95 % CIs, the no-effect line at 1 dashed.

    Returns
    -------
    str
        An ``<svg>`` with ``data-ratios`` (``NAME=ratio`` pairs).
    """
    pad_l, pad_r, pad_t, pad_b = 44, 12, 18, 30
    vals = [v for v in ratios if math.isfinite(v)]
    vals += [x for pair in ci for x in pair if math.isfinite(x)]
    hi = max([1.5, *vals]) * 1.1
    body = [f'<text x="{pad_l}" y="12" {_FONT}>{escape(title)} (ratio, 95 % CI)</text>']

    def y_of(v: float) -> float:
        return height - pad_b - v / hi * (height - pad_t - pad_b)

    y1 = y_of(1.0)
    body.append(f'<line class="reference" x1="{pad_l}" x2="{width - pad_r}" y1="{_fmt(y1)}" '
                f'y2="{_fmt(y1)}" stroke="{CRITERION_COLOUR}" stroke-dasharray="4 3"/>'
                f'<text x="2" y="{_fmt(y1 + 3)}" {_FONT}>1 (no effect)</text>'
                f'<text x="2" y="{pad_t + 8}" {_FONT}>{hi:.1f}</text>'
                f'<text x="2" y="{height - pad_b}" {_FONT}>0</text>')
    n = max(len(names), 1)
    step = (width - pad_l - pad_r) / n
    pairs = []
    for k, name in enumerate(names):
        x = pad_l + step * (k + 0.5)
        label = name + (f" (n={counts[k]})" if k < len(counts) else "")
        body.append(f'<text x="{_fmt(x - 24)}" y="{height - 12}" {_FONT}>{escape(label)}</text>')
        r = ratios[k]
        if not math.isfinite(r):
            continue
        low, high = ci[k]
        if math.isfinite(low) and math.isfinite(high):
            body.append(f'<line class="ci" x1="{_fmt(x)}" x2="{_fmt(x)}" y1="{_fmt(y_of(low))}" '
                        f'y2="{_fmt(y_of(high))}" stroke="{ACCENT}" stroke-width="1.5"/>')
        body.append(_mark_svg(x, y_of(r), ABOVE))
        pairs.append(f"{name}={r:.2f}")
    body.append(f'<text class="x-label" x="{pad_l}" y="{height - 1}" {_FONT}>condition</text>')
    return _frame(width, height, {"ratios": " ".join(pairs)}, body)


def _spacing_of(planned: Sequence[Sequence[float]]) -> float:
    """Grid spacing of planned (along, across) positions, mm (10 for a single site)."""
    along = np.unique(np.asarray(planned, float).reshape(-1, 2)[:, 0])
    d = np.diff(along)
    return float(d.min()) if d.size else 10.0
