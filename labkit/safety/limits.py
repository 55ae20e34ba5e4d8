"""Safety limits: the published defaults, lab-specific (stricter) limits, and overrides.

A lab may make any limit stricter. Making one looser than the published defaults needs
an explicit :class:`SafetyOverride` (who approved it and why), which the runner writes to
the session log.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from labkit.errors import ConfigError
from labkit.safety.table import ROSSI_2009, TrainDurationTable

THETA_BURST_CITATION = (
    "Huang YZ et al. Theta burst stimulation of the human motor cortex. Neuron 2005;45:201-206 "
    "(3 pulses at 50 Hz, bursts at 5 Hz, 80 % AMT, 600 pulses; cTBS 40 s, iTBS 2 s on / 8 s off); "
    "Rossi S et al. Clin Neurophysiol 2009;120:2008-2039 (TBS is outside the rTMS tables)."
)
ITI_CITATION = (
    "Chen R et al. Safety of different inter-train intervals for repetitive transcranial "
    "magnetic stimulation. Electroencephalogr Clin Neurophysiol 1997;105:415-421"
)


@dataclass(frozen=True)
class ThetaBurstLimits:
    """Limits for theta-burst stimulation, which the train-duration table does not cover.

    Attributes
    ----------
    max_pulses_per_burst : int
        Pulses in one burst (3 in the published protocols).
    min_inter_pulse_interval_ms : float
        Shortest interval inside a burst (20 ms = 50 Hz).
    min_inter_burst_interval_ms : float
        Shortest burst period (200 ms = 5 Hz).
    max_intensity_amt_percent : float
        Ceiling relative to active motor threshold (80 % AMT), when AMT is known.
    max_intensity_rmt_percent : float
        Ceiling relative to resting motor threshold (80 % RMT; always at or above
        80 % AMT because AMT < RMT).
    max_train_s : float
        Longest continuous train (cTBS: 40 s).
    max_pulses : int
        Pulses in one theta-burst protocol (600).
    """

    max_pulses_per_burst: int = 3
    min_inter_pulse_interval_ms: float = 20.0
    min_inter_burst_interval_ms: float = 200.0
    max_intensity_amt_percent: float = 80.0
    max_intensity_rmt_percent: float = 80.0
    max_train_s: float = 40.0
    max_pulses: int = 600
    citation: str = THETA_BURST_CITATION
    source: str = "Huang 2005"

    @classmethod
    def rossi_2021(cls) -> ThetaBurstLimits:
        """The envelope the 2021 safety update reports for TBS: iTBS up to 120 % RMT and
        sessions of up to 1800 pulses (Rossi S et al. Clin Neurophysiol 2021;132:269-306).
        The burst pattern and the 40 s continuous train stay as in Huang 2005."""
        return cls(max_intensity_amt_percent=120.0, max_intensity_rmt_percent=120.0,
                   max_pulses=1800, source="Rossi 2021",
                   citation=THETA_BURST_CITATION + " Rossi S et al. Clin Neurophysiol "
                   "2021;132:269-306 (iTBS at up to 120 % RMT, 1800-pulse sessions).")

    def looser_than(self, reference: ThetaBurstLimits) -> list[str]:
        """Descriptions of the limits looser than ``reference`` and than every published
        envelope (Huang 2005 as the default, Rossi 2021)."""
        published = ThetaBurstLimits.rossi_2021()
        reference = ThetaBurstLimits(**{
            name: (max if bigger else min)(getattr(reference, name), getattr(published, name))
            for name, bigger in (("max_pulses_per_burst", True),
                                 ("min_inter_pulse_interval_ms", False),
                                 ("min_inter_burst_interval_ms", False),
                                 ("max_intensity_amt_percent", True),
                                 ("max_intensity_rmt_percent", True),
                                 ("max_train_s", True), ("max_pulses", True))})
        out = []
        for name, bigger_is_looser in (
            ("max_pulses_per_burst", True),
            ("min_inter_pulse_interval_ms", False),
            ("min_inter_burst_interval_ms", False),
            ("max_intensity_amt_percent", True),
            ("max_intensity_rmt_percent", True),
            ("max_train_s", True),
            ("max_pulses", True),
        ):
            mine, ref = getattr(self, name), getattr(reference, name)
            if (mine > ref) if bigger_is_looser else (mine < ref):
                out.append(f"theta_burst.{name} = {mine:g} (published: {ref:g})")
        return out


@dataclass(frozen=True)
class SafetyLimits:
    """All limits a protocol is checked against.

    Attributes
    ----------
    table : TrainDurationTable
        Maximum single-train duration by frequency and intensity.
    max_pulses_per_session : int
        Per-session pulse cap (device profile ``[limits]``).
    max_intensity_percent : float
        Intensity ceiling, % MSO (device profile ``[limits]``). The published default is
        110: no rule caps % MSO, and 110 is the most any supported unit delivers (Rapid²
        enhanced power).
    max_intensity_rmt_percent : float
        Intensity ceiling relative to RMT (130 %: the end of the table).
    min_inter_train_interval_s : float
        Shortest pause between trains shown safe (Chen 1997: 5 s was safe for 20 Hz
        trains at 110 % MT, 1 s or less was unsafe above 100 % MT, nothing in between was
        shown safe). Above ``iti_rule_above_rmt_percent`` trains must be at least this far
        apart; at any intensity, trains closer than this count as one continuous train
        for the table lookup. A lab may only raise it.
    iti_rule_above_rmt_percent : float
        Intensity (% RMT) above which the inter-train rule applies.
    theta_burst : ThetaBurstLimits
        Limits of the theta-burst category.
    source : str
        Where these limits came from (for the log).
    """

    table: TrainDurationTable = ROSSI_2009
    max_pulses_per_session: int = 3000
    max_intensity_percent: float = 110.0
    max_intensity_rmt_percent: float = 130.0
    min_inter_train_interval_s: float = 5.0
    iti_rule_above_rmt_percent: float = 100.0
    theta_burst: ThetaBurstLimits = field(default_factory=ThetaBurstLimits)
    source: str = "published defaults"

    def __post_init__(self) -> None:
        checks = {
            "max_pulses_per_session": (self.max_pulses_per_session, 1, 100000),
            "max_intensity_percent": (self.max_intensity_percent, 1, 110),
            "max_intensity_rmt_percent": (self.max_intensity_rmt_percent, 1, 200),
            "min_inter_train_interval_s": (self.min_inter_train_interval_s, 0, 3600),
            "iti_rule_above_rmt_percent": (self.iti_rule_above_rmt_percent, 0, 200),
        }
        for name, (value, low, high) in checks.items():
            if not (isinstance(value, int | float) and not isinstance(value, bool)
                    and low <= value <= high):
                raise ConfigError(f"must be in [{low}, {high}] (got {value!r})",
                                  field=f"limits.{name}")

    @classmethod
    def from_profile(cls, profile: Any, **changes: Any) -> SafetyLimits:
        """Limits with the device profile's ``[limits]`` filled in.

        Parameters
        ----------
        profile : DeviceProfile
            A loaded device profile.
        **changes
            Further (lab) limits.
        """
        where = str(profile.path) if getattr(profile, "path", None) else profile.rig.name
        section = profile.limits
        table = ROSSI_2009
        if section.table is not None:
            from pathlib import Path

            from labkit.safety.table import load_table

            path = Path(section.table)
            if not path.is_absolute() and getattr(profile, "path", None):
                path = Path(profile.path).parent / path
            table = load_table(path)
        limits = cls(
            table=table,
            max_pulses_per_session=int(section.max_pulses_per_session),
            max_intensity_percent=float(section.max_intensity_percent),
            max_intensity_rmt_percent=float(section.max_intensity_rmt_percent),
            min_inter_train_interval_s=float(section.min_inter_train_interval_s),
            source=f"device profile {where} [limits]",
        )
        return limits.stricter(**changes) if changes else limits

    def stricter(self, **changes: Any) -> SafetyLimits:
        """A copy with some limits changed (for lab policies).

        ``**changes`` are field names of :class:`SafetyLimits` with their new values
        (``max_pulses_per_session=2000``...); an unknown name is refused listing them.

        Nothing stops a change from being looser; :func:`check_protocol` then refuses
        unless a :class:`SafetyOverride` is passed.
        """
        try:
            return replace(self, **changes)
        except TypeError as exc:
            allowed = ", ".join(f for f in self.__dataclass_fields__ if f != "source")
            raise ConfigError(f"{exc}; allowed: {allowed}", field="limits") from None

    def looser_than(self, reference: SafetyLimits | None = None) -> list[str]:
        """Descriptions of every limit looser than ``reference`` (default: published)."""
        ref = reference or DEFAULT_LIMITS
        out = [f"train-duration table: {item}" for item in self.table.is_within(ref.table)]
        for name, bigger_is_looser in (
            ("max_pulses_per_session", True),
            ("max_intensity_percent", True),
            ("max_intensity_rmt_percent", True),
            ("min_inter_train_interval_s", False),
            ("iti_rule_above_rmt_percent", True),
        ):
            mine, theirs = getattr(self, name), getattr(ref, name)
            if (mine > theirs) if bigger_is_looser else (mine < theirs):
                out.append(f"{name} = {mine:g} (published: {theirs:g})")
        out.extend(self.theta_burst.looser_than(ref.theta_burst))
        return out

    def to_log(self) -> dict:
        """A JSON-able description (the table by name, not by value)."""
        data = asdict(self)
        data["table"] = self.table.short_name
        return data


#: The published limits every lab limit is compared with.
DEFAULT_LIMITS = SafetyLimits()


@dataclass(frozen=True)
class SafetyOverride:
    """Explicit permission to use limits looser than the published ones.

    Attributes
    ----------
    reason : str
        Why (e.g. the approved study protocol and its ethics number).
    approved_by : str
        Who approved it (responsible physician).
    """

    reason: str
    approved_by: str

    def __post_init__(self) -> None:
        if not isinstance(self.reason, str) or len(self.reason.strip()) < 5:
            raise ConfigError("an override needs a reason (at least 5 characters)",
                              field="override.reason")
        if not isinstance(self.approved_by, str) or not self.approved_by.strip():
            raise ConfigError("an override needs the name of who approved it",
                              field="override.approved_by")

    def to_log(self) -> dict:
        """``{"reason": ..., "approved_by": ...}``."""
        return {"reason": self.reason, "approved_by": self.approved_by}
