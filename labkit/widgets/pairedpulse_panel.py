"""PairedPulsePanel: deliver a randomised SICI/ICF/LICI block and watch the ratios.

Each trial fires the block's next condition through the rig
(:func:`labkit.excitability.fire_paired`: output A conditioning, output B test; the
test-alone condition fires B alone after the same interval) and records the test MEP in
the :class:`~labkit.pairedpulse.PairedPulseProtocol`. The plot shows, per paired
condition, the ratio of its mean MEP to the mean test-alone MEP with its 95 % bootstrap
CI (a ratio below 1 is inhibition, above 1 facilitation); the MEP amplitudes per trial
use the trial code of :mod:`labkit.trialstyle`. When the block is done the ratios go to
the rig's session (``paired_pulse`` record).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from html import escape
from typing import Any

import ipywidgets as widgets

from labkit.excitability import fire_paired
from labkit.trialstyle import trial_style
from labkit.widgets._block import BlockPanel
from labkit.widgets._svg import ratio_svg, series_svg
from labkit.widgets.estop import EmergencyStop

__all__ = ["PairedPulsePanel"]


class PairedPulsePanel(BlockPanel):
    """Paired-pulse block with live ratios.

    Parameters
    ----------
    rig : Rig
        A rig whose stimulator delivers paired pulses (BiStim²).
    protocol : PairedPulseProtocol
        Conditions, trials per condition and the randomised order.
    estop : EmergencyStop | None
        Shared STOP latch.
    make_protocol : callable | None
        Makes the next block for **New block**.
    criterion_uv : float
        MEP criterion of the amplitude plot (filled at or above, hollow below), µV.
    n_boot : int
        Bootstrap resamples of the live ratios (the final result uses the default).
    on_result : callable | None
        Called with the :class:`~labkit.pairedpulse.PairedPulseResult` when done.
    poll_s : float | None
        Status bar refresh period.
    """

    css_class = "labkit-pairedpulse-panel"

    def __init__(self, rig: Any, protocol: Any, *, estop: EmergencyStop | None = None,
                 make_protocol: Callable[[], Any] | None = None, criterion_uv: float = 50.0,
                 n_boot: int = 1000, on_result: Callable[[Any], None] | None = None,
                 poll_s: float | None = 1.0) -> None:
        self.protocol = protocol
        self.criterion_uv = float(criterion_uv)
        self.n_boot = int(n_boot)
        self.on_result = on_result
        #: The ratios once the block is done.
        self.result: Any = None
        self.ratios = widgets.HTML("")
        self.ratios.add_class("labkit-pairedpulse-ratios")
        self.amplitudes = widgets.HTML("")
        self.amplitudes.add_class("labkit-pairedpulse-amplitudes")
        self.trial_label = widgets.HTML("")
        self.trial_label.add_class("labkit-pairedpulse-trial")
        plan = ", ".join(
            f"{c.name}" + (f" (CS {c.conditioning_percent} %MSO, {c.ipi_ms:g} ms)" if c.paired
                           else f" (TS {c.test_percent} %MSO alone)")
            for c in protocol.conditions)
        super().__init__(
            rig, f"<b>Paired pulse</b> {len(protocol.order)} trials, randomised: "
                 f"{escape(plan)}",
            [self.trial_label, widgets.HBox([self.ratios, self.amplitudes])],
            estop=estop, make_block=make_protocol, poll_s=poll_s)
        self._render()

    def __repr__(self) -> str:
        p = self.protocol
        return f"<PairedPulsePanel: {len(p.amplitudes)} of {len(p.order)} trials>"

    @property
    def done(self) -> bool:
        """True when every trial of the block is recorded."""
        return bool(self.protocol.done)

    def _trial(self) -> None:
        p = self.protocol
        c = p.next_condition()
        default_ipi = next(x.ipi_ms for x in p.conditions if x.paired)
        trial = fire_paired(self.rig, c.conditioning_percent if c.paired else 0,
                            c.test_percent, c.ipi_ms if c.paired else default_ipi, p.unit)
        p.record(float(trial.amplitude_uv))

    def _render(self) -> None:
        p = self.protocol
        paired = [c for c in p.conditions if c.paired]
        counts = {c.name: 0 for c in p.conditions}
        for k, _amp in p.amplitudes:
            counts[p.conditions[k].name] += 1
        ratios = {}
        if any(not p.conditions[k].paired for k, _ in p.amplitudes):
            try:
                ratios = p.result(n_boot=self.n_boot).ratios
            except ValueError:  # the test-alone MEPs are all 0 µV so far
                ratios = {}
        nan = float("nan")
        self.ratios.value = ratio_svg(
            [c.name for c in paired],
            [ratios[c.name].ratio if c.name in ratios else nan for c in paired],
            [(ratios[c.name].ci_low, ratios[c.name].ci_high) if c.name in ratios else (nan, nan)
             for c in paired],
            counts=[counts[c.name] for c in paired])
        amps = [a for _k, a in p.amplitudes]
        self.amplitudes.value = series_svg(
            amps, styles=[trial_style(True, a >= self.criterion_uv) for a in amps],
            reference=self.criterion_uv, y_min=0.0, unit=" µV",
            title="test MEP per trial (dashed: criterion)")
        n, total = len(p.amplitudes), len(p.order)
        nxt = "" if p.done else f"; next: <b>{escape(p.next_condition().name)}</b>"
        text = ", ".join(f"{name} {r.ratio:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}]"
                         for name, r in ratios.items() if math.isfinite(r.ratio))
        self.trial_label.value = f"trial {n} of {total}{nxt}" + (
            f"<br>ratios (95 % CI): {escape(text)}" if text else "")

    def _finished(self) -> None:
        self.result = self.protocol.result()
        session = getattr(self.rig, "session", None)
        if session is not None:
            session.log_event("paired_pulse", ratios={
                name: {"ratio": r.ratio, "ci_low": r.ci_low, "ci_high": r.ci_high, "n": r.n}
                for name, r in self.result.ratios.items()},
                means_uv=self.result.means_uv, n=self.result.n)
        if self.on_result is not None:
            self.on_result(self.result)

    def _use_block(self, block: Any) -> None:
        self.protocol, self.result = block, None
