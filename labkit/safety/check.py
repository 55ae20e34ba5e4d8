"""Checking a protocol against the safety limits at one subject's thresholds (pure)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from labkit.errors import ConfigError, SafetyError
from labkit.protocols.model import Protocol
from labkit.safety.limits import (
    DEFAULT_LIMITS,
    ITI_CITATION,
    SafetyLimits,
    SafetyOverride,
)
from labkit.safety.table import TableCell
from labkit.stimulators.capabilities import Abilities

#: The kinds of protocol the checker knows.
Category = Literal["rtms", "theta-burst", "patterned"]

#: A session-log sink: ``log(kind, payload)``; kinds used here: ``"safety"``, ``"override"``.
LogFn = Callable[[str, dict], None]


@dataclass(frozen=True)
class SafetyVerdict:
    """The outcome of :func:`check_protocol`.

    Attributes
    ----------
    ok : bool
        True when every check passed.
    reasons : tuple of str
        Why it was refused (empty when ``ok``), each naming the limit and its source.
    passed : tuple of str
        The checks that passed, with the figures.
    protocol_name : str
        The protocol checked.
    category : {"rtms", "theta-burst", "patterned"}
        Which rule set applied.
    intensity_percent : int | None
        Delivered intensity, % MSO (``None`` when it could not be computed).
    intensity_rmt_percent : float | None
        Delivered intensity relative to RMT, %.
    cell : TableCell | None
        The train-duration table cell that governed a plain rTMS train.
    limits : SafetyLimits
        The limits used.
    override : SafetyOverride | None
        The override that allowed looser limits, if any.
    looser_limits : tuple of str
        Limits looser than published (allowed only with ``override``).
    """

    ok: bool
    reasons: tuple[str, ...]
    passed: tuple[str, ...]
    protocol_name: str
    category: Category
    intensity_percent: int | None
    intensity_rmt_percent: float | None
    cell: TableCell | None
    limits: SafetyLimits = field(repr=False)
    override: SafetyOverride | None = None
    looser_limits: tuple[str, ...] = ()

    def summary(self) -> str:
        """Human-readable verdict, one check per line."""
        head = "SAFE" if self.ok else "REFUSED"
        lines = [f"Safety verdict for {self.protocol_name} ({self.category}): {head}"]
        lines += [f"  refused: {r}" for r in self.reasons]
        lines += [f"  ok: {p}" for p in self.passed]
        if self.override is not None:
            lines.append(
                f"  override by {self.override.approved_by}: {self.override.reason} "
                f"(allows: {'; '.join(self.looser_limits) or 'nothing looser in use'})"
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def to_log(self) -> dict:
        """JSON-able record for the session log."""
        return {
            "ok": self.ok,
            "protocol": self.protocol_name,
            "category": self.category,
            "intensity_percent": self.intensity_percent,
            "intensity_rmt_percent": self.intensity_rmt_percent,
            "reasons": list(self.reasons),
            "passed": list(self.passed),
            "cell": None if self.cell is None else {
                "frequency_hz": self.cell.frequency_hz,
                "intensity_rmt_percent": self.cell.intensity_rmt_percent,
                "max_train_s": self.cell.max_train_s,
            },
            "limits_source": self.limits.source,
            "looser_limits": list(self.looser_limits),
            "override": None if self.override is None else self.override.to_log(),
        }


class ProtocolRefusedError(SafetyError):
    """A protocol failed the safety check; ``.verdict`` has the details."""

    def __init__(self, verdict: SafetyVerdict):
        self.verdict = verdict
        super().__init__(verdict.summary())


def categorize(protocol: Protocol) -> Category:
    """``"rtms"`` (one pulse per burst), ``"theta-burst"`` (3-pulse bursts, checked against
    :class:`~labkit.safety.limits.ThetaBurstLimits`) or ``"patterned"`` (anything else: no
    published limits, always refused)."""
    t = protocol.timing
    if t.pulses_per_burst == 1:
        return "rtms"
    if t.pulses_per_burst == 3:
        return "theta-burst"
    return "patterned"


def check_protocol(
    protocol: Protocol,
    rmt_percent: float,
    limits: SafetyLimits | None = None,
    *,
    override: SafetyOverride | None = None,
    amt_percent: float | None = None,
    intensity: float | None = None,
    pulses_delivered: int = 0,
    abilities: Abilities | None = None,
) -> SafetyVerdict:
    """Check ``protocol`` at one subject's thresholds.

    Parameters
    ----------
    protocol : Protocol
        The protocol to deliver.
    rmt_percent : float
        The subject's resting motor threshold today, % MSO.
    limits : SafetyLimits | None
        The limits (default: the published ones). Limits looser than published are only
        honoured with ``override``.
    override : SafetyOverride | None
        Explicit permission for looser limits.
    amt_percent : float | None
        Active motor threshold, % MSO (protocols in % AMT; theta-burst ceilings).
    intensity : float | None
        Intensity chosen within the protocol's range, in its unit.
    pulses_delivered : int
        Pulses already delivered in this session (counted against the cap).
    abilities : Abilities | None
        What the stimulator can do; a protocol it cannot deliver is refused, naming the
        model (``None``: not checked).

    Returns
    -------
    SafetyVerdict
        ``ok`` and, when refused, reasons that name the limit (for the train table:
        the row and column).
    """
    limits = limits or DEFAULT_LIMITS
    category = categorize(protocol)
    reasons: list[str] = []
    passed: list[str] = []
    looser = tuple(limits.looser_than(DEFAULT_LIMITS))
    if looser and override is None:
        reasons.append(
            "limits looser than the published ones need a SafetyOverride(reason=..., "
            "approved_by=...): " + "; ".join(looser)
        )
    try:
        mso = protocol.intensity_percent(rmt_percent, amt_percent=amt_percent, relative=intensity)
    except ConfigError as exc:
        reasons.append(f"intensity: {exc}")
        return SafetyVerdict(False, tuple(reasons), (), protocol.name, category, None, None,
                             None, limits, override, looser)
    rel_rmt = 100.0 * mso / rmt_percent
    where = f"{mso} % MSO = {rel_rmt:.1f} % RMT"

    _check_ceiling(reasons, passed, mso, rel_rmt, limits)
    total = protocol.total_pulses + pulses_delivered
    cap_text = (
        f"{total} pulses this session ({protocol.total_pulses} + {pulses_delivered} already)"
        if pulses_delivered else f"{total} pulses"
    )
    if total > limits.max_pulses_per_session:
        reasons.append(f"{cap_text} > {limits.max_pulses_per_session} allowed per session "
                       f"({limits.source})")
    else:
        passed.append(f"{cap_text} <= {limits.max_pulses_per_session} per session")

    cell = None
    if category == "rtms":
        cell = _check_rtms(reasons, passed, protocol, rel_rmt, limits)
    elif category == "theta-burst":
        _check_theta_burst(reasons, passed, protocol, mso, rel_rmt, amt_percent, limits)
    else:
        reasons.append(
            f"{protocol.timing.pulses_per_burst}-pulse bursts are neither plain rTMS (Rossi "
            "2009 table) nor theta burst; no published limits to check against"
        )
    if abilities is not None:
        _check_abilities(reasons, passed, protocol, mso, abilities)
    passed.insert(0, f"intensity {where}")
    return SafetyVerdict(
        ok=not reasons, reasons=tuple(reasons), passed=tuple(passed),
        protocol_name=protocol.name, category=category, intensity_percent=mso,
        intensity_rmt_percent=round(rel_rmt, 3), cell=cell, limits=limits, override=override,
        looser_limits=looser,
    )


def _check_ceiling(reasons, passed, mso, rel_rmt, limits: SafetyLimits) -> None:
    if mso > limits.max_intensity_percent:
        reasons.append(f"intensity {mso} % MSO > {limits.max_intensity_percent:g} % MSO ceiling "
                       f"({limits.source})")
    if rel_rmt > limits.max_intensity_rmt_percent + 1e-9:
        reasons.append(f"intensity {rel_rmt:.1f} % RMT > {limits.max_intensity_rmt_percent:g} % "
                       "RMT ceiling")


def _continuous(protocol: Protocol, limits: SafetyLimits) -> bool:
    """Trains closer than the shortest interval shown safe count as one train."""
    t = protocol.timing
    return t.trains > 1 and t.inter_train_interval_s < limits.min_inter_train_interval_s - 1e-9


def _check_rtms(reasons, passed, protocol: Protocol, rel_rmt, limits: SafetyLimits):
    t = protocol.timing
    merged_note = ""
    if t.bursts_per_train == 1 and t.trains > 1:
        # single pulses separated by the inter-train interval: one long train really
        frequency_hz = 1.0 / t.inter_train_interval_s
        train_s = t.trains / frequency_hz
        has_pauses = False
    else:
        frequency_hz = t.frequency_hz
        train_s = t.train_duration_s
        has_pauses = t.trains > 1
        if _continuous(protocol, limits):
            # Chen 1997: nothing shorter than 5 s between trains was shown safe, so the
            # pauses do not end a train: the whole run is one continuous train
            train_s = t.duration_s
            merged_note = (
                f" ({t.trains} trains {t.inter_train_interval_s:g} s apart count as one "
                f"continuous train: pauses < {limits.min_inter_train_interval_s:g} s were "
                f"not shown safe, {ITI_CITATION})")
    table = limits.table
    label = f"{frequency_hz:g} Hz at {rel_rmt:.0f} % RMT"
    cell = table.cell(frequency_hz, rel_rmt)
    if cell is None:
        reasons.append(
            f"{label}: outside the {table.short_name} (rows "
            f"{table.frequencies_hz[0]:g}-{table.frequencies_hz[-1]:g} Hz, columns up to "
            f"{table.intensities_rmt_percent[-1]:g} % RMT)"
        )
    elif train_s > cell.max_train_s + 1e-9:
        reasons.append(
            f"{label}: train {train_s:.1f} s > {cell.max_train_s:g} s allowed "
            f"({cell.describe(table.short_name)}){merged_note}"
        )
    else:
        passed.append(
            f"{label}: train {train_s:g} s <= {cell.max_train_s:g} s "
            f"({cell.describe(table.short_name)}){merged_note}"
        )
    if has_pauses and rel_rmt > limits.iti_rule_above_rmt_percent + 1e-9:
        iti = t.inter_train_interval_s
        if iti < limits.min_inter_train_interval_s - 1e-9:
            reasons.append(
                f"inter-train interval {iti:g} s at {rel_rmt:.0f} % RMT: must be >= "
                f"{limits.min_inter_train_interval_s:g} s above "
                f"{limits.iti_rule_above_rmt_percent:g} % RMT ({ITI_CITATION}: 5 s was safe, "
                "1 s or less unsafe, nothing in between shown safe)"
            )
        else:
            passed.append(f"inter-train interval {iti:g} s >= "
                          f"{limits.min_inter_train_interval_s:g} s (Chen 1997)")
    return cell


def _check_theta_burst(reasons, passed, protocol, mso, rel_rmt, amt_percent, limits):
    tb = limits.theta_burst
    t = protocol.timing
    src = f"theta-burst limits, {tb.source}"
    train_s = t.train_duration_s
    train_what = f"train {train_s:g} s"
    if _continuous(protocol, limits):
        train_s = t.duration_s
        train_what = (f"{t.trains} trains < {limits.min_inter_train_interval_s:g} s apart: "
                      f"one continuous train of {train_s:g} s")
    rules = [
        (t.pulses_per_burst <= tb.max_pulses_per_burst,
         f"{t.pulses_per_burst} pulses per burst", f"<= {tb.max_pulses_per_burst}"),
        (t.inter_pulse_interval_ms >= tb.min_inter_pulse_interval_ms,
         f"inter-pulse interval {t.inter_pulse_interval_ms:g} ms",
         f">= {tb.min_inter_pulse_interval_ms:g} ms"),
        (t.bursts_per_train == 1 or t.inter_burst_interval_ms >= tb.min_inter_burst_interval_ms,
         f"inter-burst interval {t.inter_burst_interval_ms or 0:g} ms",
         f">= {tb.min_inter_burst_interval_ms:g} ms"),
        (train_s <= tb.max_train_s + 1e-9, train_what, f"<= {tb.max_train_s:g} s"),
        (protocol.total_pulses <= tb.max_pulses, f"{protocol.total_pulses} pulses",
         f"<= {tb.max_pulses}"),
        (rel_rmt <= tb.max_intensity_rmt_percent + 1e-9, f"intensity {rel_rmt:.1f} % RMT",
         f"<= {tb.max_intensity_rmt_percent:g} % RMT"),
    ]
    if t.trains > 1:
        # the last burst of a train and the first of the next are bursts too
        last_burst_ms = ((t.bursts_per_train - 1) * (t.inter_burst_interval_ms or 0.0))
        across_ms = t.train_duration_s * 1000.0 - last_burst_ms \
            + t.inter_train_interval_s * 1000.0
        rules.append((across_ms >= tb.min_inter_burst_interval_ms - 1e-9,
                      f"burst period across trains {across_ms:g} ms",
                      f">= {tb.min_inter_burst_interval_ms:g} ms"))
    if amt_percent is not None:
        rel_amt = 100.0 * mso / amt_percent
        rules.append((rel_amt <= tb.max_intensity_amt_percent + 1e-9,
                      f"intensity {rel_amt:.1f} % AMT",
                      f"<= {tb.max_intensity_amt_percent:g} % AMT"))
    for ok, what, allowed in rules:
        if ok:
            passed.append(f"{what} {allowed} ({src})")
        else:
            reasons.append(f"{what}: must be {allowed} ({src})")


def longest_train_pulses(rate_hz: float, rel_rmt_percent: float,
                         limits: SafetyLimits | None = None) -> int:
    """Most pulses one continuous train at ``rate_hz`` may have under the table (0: none).

    Below the table's first row that row applies; between rows the stricter neighbour.
    """
    limits = limits or DEFAULT_LIMITS
    cell = limits.table.cell(rate_hz, rel_rmt_percent)
    if cell is None:
        return 0
    return int(math.floor(cell.max_train_s * rate_hz + 1e-9))


def check_closed_loop(
    min_interval_s: float,
    max_pulses: int,
    intensity_percent: float,
    rmt_percent: float | None,
    limits: SafetyLimits | None = None,
    *,
    pulses_delivered: int = 0,
    override: SafetyOverride | None = None,
) -> SafetyVerdict:
    """Check a closed loop's worst case before it is armed.

    The worst case is every pulse at the shortest interval: one continuous train of
    ``max_pulses`` at ``1 / min_interval_s`` Hz at ``intensity_percent``. It is checked
    like a protocol (ceilings, session cap, train-duration table); below 1 Hz the table's
    first row applies. During the run a rolling-window check
    (:class:`~labkit.safety.guard.RollingTrainCheck`) holds the delivered pulses to the
    same table.

    Parameters
    ----------
    min_interval_s : float
        Shortest time between two triggers, s.
    max_pulses : int
        Most pulses the loop may fire.
    intensity_percent : float
        Stimulator output, % MSO.
    rmt_percent : float | None
        Resting motor threshold, % MSO; required (the table is in % RMT).
    limits : SafetyLimits | None
        The limits (default: published).
    pulses_delivered : int
        Pulses already delivered this session.
    override : SafetyOverride | None
        Needed for looser-than-published limits.
    """
    if rmt_percent is None:
        limits = limits or DEFAULT_LIMITS
        reason = ("the closed loop needs the subject's RMT: hunt or enter the RMT first "
                  f"(rig.rmt_percent or rmt_percent=); the {limits.table.short_name} is in "
                  "% RMT")
        return SafetyVerdict(False, (reason,), (), "closed loop", "rtms", None, None, None,
                             limits, override, ())
    worst = Protocol.model_validate({
        "name": "closed-loop-worst-case",
        "description": f"every trigger {min_interval_s:g} s apart, {max_pulses} pulses",
        "references": ["closed-loop controller settings"], "target": "M1",
        "coil": "figure-of-eight", "total_pulses": int(max_pulses),
        "intensity": {"unit": "% MSO", "value": float(intensity_percent)},
        "timing": ({"bursts_per_train": int(max_pulses),
                    "inter_burst_interval_ms": 1000.0 * float(min_interval_s), "trains": 1}
                   if max_pulses > 1 else {"bursts_per_train": 1, "trains": 1}),
    })
    return check_protocol(worst, rmt_percent, limits, override=override,
                          pulses_delivered=pulses_delivered)


def _check_abilities(reasons, passed, protocol: Protocol, mso: int,
                     abilities: Abilities) -> None:
    t = protocol.timing
    if not abilities.repetitive:
        reasons.append(
            f"{abilities.model} cannot deliver {protocol.name!r}: it is not a repetitive "
            f"stimulator ({abilities.describe()}); protocols need a repetitive unit")
        return
    fastest_hz = max(t.frequency_hz, t.intra_burst_frequency_hz or 0.0)
    ceiling_hz = abilities.max_rate_hz(mso)
    if ceiling_hz is not None and fastest_hz > ceiling_hz + 1e-9:
        reasons.append(
            f"{abilities.model} cannot deliver {fastest_hz:g} Hz at {mso} % MSO: its "
            f"ceiling is {ceiling_hz:g} Hz ({abilities.rate_source})")
    else:
        passed.append(f"{abilities.model} can deliver {fastest_hz:g} Hz at {mso} % MSO")


def require_safe(
    protocol: Protocol,
    rmt_percent: float,
    limits: SafetyLimits | None = None,
    *,
    override: SafetyOverride | None = None,
    amt_percent: float | None = None,
    intensity: float | None = None,
    pulses_delivered: int = 0,
    abilities: Abilities | None = None,
    log: LogFn | None = None,
) -> SafetyVerdict:
    """Like :func:`check_protocol` but raise when refused; log the verdict and override.

    Raises
    ------
    ProtocolRefusedError
        A :class:`~labkit.errors.SafetyError` carrying the verdict.
    """
    verdict = check_protocol(
        protocol, rmt_percent, limits, override=override, amt_percent=amt_percent,
        intensity=intensity, pulses_delivered=pulses_delivered, abilities=abilities,
    )
    log_verdict(verdict, log)
    if not verdict.ok:
        raise ProtocolRefusedError(verdict)
    return verdict


def log_verdict(verdict: SafetyVerdict, log: LogFn | None) -> None:
    """Write the verdict (kind ``"safety"``) and any override (``"override"``) to ``log``."""
    if log is None:
        return
    log("safety", verdict.to_log())
    if verdict.override is not None:
        log("override", {**verdict.override.to_log(), "protocol": verdict.protocol_name,
                         "looser_limits": list(verdict.looser_limits)})
