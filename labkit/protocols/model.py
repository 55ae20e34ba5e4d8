"""The protocol model: what a ``protocols/*.toml`` file says, validated with pydantic.

Timing uses the vocabulary of the NIBS BIDS extension proposal (BEP037): pulses per burst,
inter-pulse interval, bursts per train, inter-burst interval, trains, inter-train interval.
Conventions (onset to onset unless stated):

``inter_pulse_interval_ms``
    Between two pulses of one burst (20 ms = 50 Hz in theta burst). Needed when a burst
    has more than one pulse.
``inter_burst_interval_ms``
    Between the first pulses of two successive bursts of one train. For plain rTMS
    (one pulse per burst) this is the pulse period: 100 ms = 10 Hz.
``inter_train_interval_s``
    Pause from the *end* of one train to the first pulse of the next; a train ends one
    inter-burst interval after its last burst started (so 50 pulses at 10 Hz last 5.0 s,
    and a 55 s pause gives one train per minute).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from labkit.config_files import validation_error
from labkit.errors import ConfigError
from labkit.protocols.schedule import expand

#: Units an intensity may be given in.
IntensityUnit = Literal["% RMT", "% AMT", "% MSO"]


#: Shortest pause between trains a protocol file may state, ms (the shortest interval the
#: model knows anywhere); shorter ones are refused when loading.
MIN_PAUSE_MS = 10.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Intensity(_Strict):
    """``[intensity]``: the stimulation intensity, fixed or a per-subject range.

    Attributes
    ----------
    unit : {"% RMT", "% AMT", "% MSO"}
        Relative to resting or active motor threshold, or absolute (% of maximum
        stimulator output).
    value : float
        The default intensity in ``unit``.
    min, max : float | None
        The range the experimenter may choose from for one subject (e.g. 80–90 % RMT).
        Default: exactly ``value``.
    """

    unit: IntensityUnit
    value: float = Field(gt=0, le=200)
    min: float | None = Field(default=None, gt=0, le=200)
    max: float | None = Field(default=None, gt=0, le=200)

    @model_validator(mode="after")
    def _range_holds_value(self) -> Intensity:
        low, high = self.range
        if not low <= self.value <= high:
            raise ValueError(
                f"value {self.value:g} must lie in [min, max] = [{low:g}, {high:g}] {self.unit}"
            )
        if self.unit == "% MSO" and high > 100:
            raise ValueError(f"% MSO intensities must be <= 100 (got max {high:g})")
        return self

    @property
    def range(self) -> tuple[float, float]:
        """``(min, max)`` with the defaults filled in."""
        low = self.value if self.min is None else self.min
        high = self.value if self.max is None else self.max
        return low, high

    def describe(self, chosen: float | None = None) -> str:
        """``"80 % RMT (range 80–90)"`` style text.

        Parameters
        ----------
        chosen : float | None
            The intensity chosen for this run, in :attr:`unit`: the text then leads with
            it (``"110 % RMT (chosen in range 90–110)"``) instead of the default value.
        """
        low, high = self.range
        value = self.value if chosen is None else float(chosen)
        text = f"{value:g} {self.unit}"
        if (low, high) != (value, value):
            text += f" ({'chosen in ' if chosen is not None else ''}range {low:g}–{high:g})"
        return text


class Timing(_Strict):
    """``[timing]``: the pulse pattern in the NIBS BIDS (BEP037) vocabulary."""

    pulses_per_burst: int = Field(default=1, ge=1, le=10)
    inter_pulse_interval_ms: float | None = Field(default=None, ge=10, le=1000)
    bursts_per_train: int = Field(ge=1, le=10000)
    inter_burst_interval_ms: float | None = Field(default=None, ge=10, le=60000)
    trains: int = Field(ge=1, le=1000)
    inter_train_interval_s: float = Field(default=0.0, ge=0, le=3600)

    @model_validator(mode="after")
    def _intervals_present_and_consistent(self) -> Timing:
        if self.pulses_per_burst > 1 and self.inter_pulse_interval_ms is None:
            raise ValueError("inter_pulse_interval_ms is required when pulses_per_burst > 1")
        if self.bursts_per_train > 1 and self.inter_burst_interval_ms is None:
            raise ValueError("inter_burst_interval_ms is required when bursts_per_train > 1")
        if self.trains > 1:
            # a pause shorter than the train's own pulse period is no pause at all
            period_ms = max(self.inter_burst_interval_ms or 0.0,
                            (self.pulses_per_burst - 1) * (self.inter_pulse_interval_ms or 0.0),
                            MIN_PAUSE_MS)
            if not self.inter_train_interval_s * 1000.0 >= period_ms - 1e-9:
                raise ValueError(
                    f"inter_train_interval_s = {self.inter_train_interval_s!r} s is no pause "
                    f"between trains: must be >= {period_ms / 1000.0:g} s (the train's own "
                    f"pulse period, at least {MIN_PAUSE_MS:g} ms) when trains > 1")
        if self.pulses_per_burst > 1 and self.inter_burst_interval_ms is not None:
            burst_ms = (self.pulses_per_burst - 1) * self.inter_pulse_interval_ms
            if burst_ms >= self.inter_burst_interval_ms:
                raise ValueError(
                    f"bursts overlap: a burst spans {burst_ms:g} ms but inter_burst_interval_ms "
                    f"is {self.inter_burst_interval_ms:g} ms (must be > {burst_ms:g})"
                )
        return self

    @property
    def pulses_per_train(self) -> int:
        """Pulses in one train."""
        return self.pulses_per_burst * self.bursts_per_train

    @property
    def total_pulses(self) -> int:
        """Pulses in the whole protocol."""
        return self.pulses_per_train * self.trains

    @property
    def train_duration_s(self) -> float:
        """Duration of one train (``bursts × inter-burst interval``), s.

        A train of one burst lasts ``pulses × inter-pulse interval``; a single pulse, 0 s.
        """
        if self.bursts_per_train > 1:
            return self.bursts_per_train * self.inter_burst_interval_ms / 1000.0
        if self.pulses_per_burst > 1:
            return self.pulses_per_burst * self.inter_pulse_interval_ms / 1000.0
        return 0.0

    @property
    def frequency_hz(self) -> float:
        """Repetition rate of plain rTMS (one pulse per burst), Hz.

        For patterned protocols this is the burst rate. A train of a single pulse has
        the rate of its trains.
        """
        if self.bursts_per_train > 1:
            return 1000.0 / self.inter_burst_interval_ms
        if self.trains > 1:
            return 1.0 / (self.train_duration_s + self.inter_train_interval_s)
        return 0.0

    @property
    def intra_burst_frequency_hz(self) -> float | None:
        """Pulse rate inside a burst, Hz (``None`` for one pulse per burst)."""
        if self.pulses_per_burst == 1:
            return None
        return 1000.0 / self.inter_pulse_interval_ms

    @property
    def duration_s(self) -> float:
        """From the first pulse to the end of the last train, s."""
        return self.trains * self.train_duration_s + (self.trains - 1) * self.inter_train_interval_s


class Protocol(_Strict):
    """A validated stimulation protocol (one ``protocols/*.toml`` file).

    Attributes
    ----------
    name : str
        Short identifier (the file stem for shipped protocols).
    description : str
        What the protocol is for, in one paragraph.
    references : list of str
        Literature the parameters come from (at least one).
    target : str
        Cortical target: ``"M1"``, ``"DLPFC"``, ``"S2"``...
    coil : str
        Coil type, e.g. ``"figure-of-eight"``.
    intensity : Intensity
        Fixed intensity or per-subject range, with its unit.
    timing : Timing
        The pulse pattern.
    total_pulses : int
        The stated total; must equal what the timing produces.
    sham : bool
        Sham arm (sham coil or tilted coil): the stimulator still discharges.
    hemisphere : str
        Where on the head, in words (``"contralateral to the pain"``).
    shortened_from : str | None
        Set by :meth:`shortened`: the protocol this demo variant was cut from.
    shortening : str | None
        Set by :meth:`shortened`: what it changed, in words ("the train cut to 60 of
        900 pulses (60 s of 900 s); 60 of 900 pulses in all").
    path : Path | None
        The file the protocol was loaded from.
    """

    name: str = Field(min_length=1, max_length=80)
    description: str = Field(min_length=1)
    references: list[str] = Field(min_length=1)
    target: str = Field(min_length=1)
    coil: str = Field(min_length=1)
    intensity: Intensity
    timing: Timing
    total_pulses: int = Field(ge=1, le=100000)
    sham: bool = False
    hemisphere: str = ""
    shortened_from: str | None = None
    shortening: str | None = None
    path: Path | None = None

    @field_validator("references")
    @classmethod
    def _references_not_blank(cls, value: list[str]) -> list[str]:
        if any(not ref.strip() for ref in value):
            raise ValueError("references must not contain empty entries")
        return value

    @model_validator(mode="after")
    def _stated_total_matches(self) -> Protocol:
        computed = self.timing.total_pulses
        if computed != self.total_pulses:
            t = self.timing
            raise ValueError(
                f"total_pulses says {self.total_pulses} but the timing gives {computed} "
                f"({t.pulses_per_burst} pulse(s)/burst × {t.bursts_per_train} bursts/train × "
                f"{t.trains} trains)"
            )
        return self

    # ------------------------------------------------------------------ figures
    @property
    def duration_s(self) -> float:
        """From the first pulse to the end of the last train, s."""
        return self.timing.duration_s

    @property
    def is_patterned(self) -> bool:
        """True when bursts have more than one pulse (theta burst and the like)."""
        return self.timing.pulses_per_burst > 1

    def summary(self, intensity: float | None = None) -> str:
        """One line: name, pattern, pulses, duration, intensity.

        Parameters
        ----------
        intensity : float | None
            The intensity chosen for a run, in the protocol's unit; default: the
            protocol's own value.
        """
        t = self.timing
        if self.is_patterned:
            pattern = (
                f"{t.pulses_per_burst} pulses at {t.intra_burst_frequency_hz:g} Hz, "
                f"bursts at {t.frequency_hz:g} Hz"
            )
        else:
            pattern = f"{t.frequency_hz:g} Hz"
        trains = f"{t.trains} train(s) × {t.train_duration_s:g} s"
        if t.trains > 1:
            trains += f", {t.inter_train_interval_s:g} s between trains"
        sham = " [SHAM]" if self.sham else ""
        return (
            f"{self.name}{sham}: {self.target}, {pattern}, {trains}, {self.total_pulses} pulses, "
            f"{self.duration_s / 60:.1f} min, {self.intensity.describe(intensity)}"
        )

    # ------------------------------------------------------------------ intensity
    def intensity_percent(
        self,
        rmt_percent: float,
        *,
        amt_percent: float | None = None,
        relative: float | None = None,
    ) -> int:
        """The intensity to deliver, % MSO on the stimulator's 1 % grid.

        Parameters
        ----------
        rmt_percent : float
            The subject's resting motor threshold, % MSO.
        amt_percent : float | None
            Active motor threshold, % MSO; required when the unit is ``% AMT``.
        relative : float | None
            The intensity chosen inside the protocol's range, in its unit; default
            :attr:`Intensity.value`.

        Returns
        -------
        int
            % MSO, rounded half up to a whole percent.

        Raises
        ------
        ConfigError
            ``relative`` is outside the protocol's range, a threshold is missing or out of
            range, or the result exceeds 100 % MSO.
        """
        spec = self.intensity
        where = str(self.path) if self.path else None
        if not 1 <= rmt_percent <= 100:
            raise ConfigError(
                f"rmt_percent must be in [1, 100] % MSO (got {rmt_percent!r})", file=where,
                field="rmt_percent",
            )
        value = spec.value if relative is None else float(relative)
        low, high = spec.range
        if not low - 1e-9 <= value <= high + 1e-9:
            raise ConfigError(
                f"{value:g} {spec.unit} is outside this protocol's range "
                f"[{low:g}, {high:g}] {spec.unit}", file=where, field="intensity",
            )
        if spec.unit == "% MSO":
            mso = value
        elif spec.unit == "% RMT":
            mso = rmt_percent * value / 100.0
        else:
            if amt_percent is None or not 1 <= amt_percent <= 100:
                raise ConfigError(
                    f"this protocol's intensity is in % AMT; pass amt_percent in [1, 100] % MSO "
                    f"(got {amt_percent!r})", file=where, field="amt_percent",
                )
            mso = amt_percent * value / 100.0
        grid = int(math.floor(round(mso, 6) + 0.5))
        if not 1 <= grid <= 100:
            raise ConfigError(
                f"{value:g} {spec.unit} gives {grid} % MSO, outside [1, 100] % MSO",
                file=where, field="intensity",
            )
        return grid

    def schedule(
        self,
        rmt_percent: float,
        *,
        amt_percent: float | None = None,
        relative: float | None = None,
    ):
        """Expand into a :class:`~labkit.protocols.schedule.PulseSchedule`.

        Parameters
        ----------
        rmt_percent : float
            Resting motor threshold, % MSO.
        amt_percent : float | None
            Active motor threshold, % MSO (needed for protocols in % AMT).
        relative : float | None
            Intensity chosen within the protocol's range, in its unit.

        Returns
        -------
        PulseSchedule
            Pulse times (s from start), % MSO per pulse, train/burst indices.
        """
        return expand(self, rmt_percent, amt_percent=amt_percent, relative=relative)

    # ------------------------------------------------------------------ variants
    def shortened(
        self,
        trains: int | None = None,
        *,
        pulses_per_train: int | None = None,
        train_duration_s: float | None = None,
        inter_train_interval_s: float | None = None,
    ) -> Protocol:
        """A clearly labelled demo variant: fewer trains, shorter trains, shorter pauses.

        Parameters
        ----------
        trains : int | None
            Number of trains to keep, 1..``timing.trains``. Default: 2 when nothing else
            is shortened (the classic demo cut), else all of them.
        pulses_per_train : int | None
            Shorten each train to its first this many pulses (a whole number of bursts);
            e.g. a single 900-pulse train at 1 Hz cut to 60 pulses.
        train_duration_s : float | None
            Shorten each train to this duration, s (the bursts that fit in it).
        inter_train_interval_s : float | None
            A different pause between trains (the safety check still applies to it).

        Returns
        -------
        Protocol
            Named ``<name>-demo-...`` after what changed (``-2of20trains``,
            ``-60of900pulses``), with ``shortened_from`` set, :attr:`shortening` saying
            what changed in words, and the description prefixed by
            ``[SHORTENED FOR DEMO: ...]``.

        Raises
        ------
        ConfigError
            A value outside what the protocol has, naming the field and the allowed range.
        """
        t = self.timing
        if pulses_per_train is not None and train_duration_s is not None:
            raise ConfigError("give pulses_per_train or train_duration_s, not both",
                              field="train_duration_s")
        if trains is None:
            trains = 2 if pulses_per_train is None and train_duration_s is None else t.trains
        if isinstance(trains, bool) or not isinstance(trains, int) or not 1 <= trains <= t.trains:
            raise ConfigError(
                f"trains must be in [1, {t.trains}] (got {trains!r})", field="trains",
            )
        bursts = t.bursts_per_train
        if pulses_per_train is not None:
            per_burst = t.pulses_per_burst
            if (isinstance(pulses_per_train, bool) or not isinstance(pulses_per_train, int)
                    or not per_burst <= pulses_per_train <= t.pulses_per_train
                    or pulses_per_train % per_burst):
                step = f" in steps of {per_burst} (pulses per burst)" if per_burst > 1 else ""
                raise ConfigError(
                    f"pulses_per_train must be a whole number in [{per_burst}, "
                    f"{t.pulses_per_train}]{step} (got {pulses_per_train!r})",
                    field="pulses_per_train")
            bursts = pulses_per_train // per_burst
        elif train_duration_s is not None:
            period_s = (t.inter_burst_interval_ms or 0.0) / 1000.0
            longest = t.train_duration_s
            if (isinstance(train_duration_s, bool) or not isinstance(train_duration_s,
                                                                     int | float)
                    or t.bursts_per_train < 2 or not period_s <= train_duration_s <= longest):
                allowed = (f"[{period_s:g}, {longest:g}] s" if t.bursts_per_train > 1
                           else "nothing: a train of one burst cannot be cut")
                raise ConfigError(f"train_duration_s must be in {allowed} (got "
                                  f"{train_duration_s!r})", field="train_duration_s")
            bursts = int(math.floor(train_duration_s / period_s + 1e-9))
        timing_update: dict = {"trains": trains, "bursts_per_train": bursts}
        if inter_train_interval_s is not None:
            timing_update["inter_train_interval_s"] = float(inter_train_interval_s)
        changes, name_parts = [], []
        if trains != t.trains:
            changes.append(f"{trains} of {t.trains} trains")
            name_parts.append(f"{trains}of{t.trains}trains")
        per_train = bursts * t.pulses_per_burst
        if bursts != t.bursts_per_train:
            cut_s = t.train_duration_s * bursts / t.bursts_per_train
            what = "the train" if t.trains == 1 else "each train"
            changes.append(f"{what} cut to {per_train} of {t.pulses_per_train} pulses "
                           f"({cut_s:g} s of {t.train_duration_s:g} s)")
            name_parts.append(f"{per_train}of{t.pulses_per_train}pulses")
        new_iti = timing_update.get("inter_train_interval_s", t.inter_train_interval_s)
        if trains > 1 and new_iti != t.inter_train_interval_s:
            changes.append(f"{new_iti:g} s instead of {t.inter_train_interval_s:g} s between "
                           "trains")
        if not changes:
            raise ConfigError("nothing to shorten: these values keep the protocol as it is",
                              field="trains")
        total = per_train * trains
        changes.append(f"{total} of {self.total_pulses} pulses in all")
        shortening = "; ".join(changes)
        data = self.model_dump()
        data["timing"].update(timing_update)
        stem = self.name[:80 - 6 - sum(len(p) + 1 for p in name_parts)]
        data.update(
            name=f"{stem}-demo-{'-'.join(name_parts) or 'pauses'}",
            description=f"[SHORTENED FOR DEMO: {shortening}] {self.description}",
            total_pulses=total,
            shortened_from=self.shortened_from or self.name,
            shortening=shortening,
        )
        try:
            return Protocol.model_validate(data)
        except ValidationError as exc:
            raise format_validation_error(exc, str(self.path) if self.path else None) from None


def format_validation_error(exc: ValidationError, file: str | None) -> ConfigError:
    """Turn a pydantic error on a protocol into a :class:`ConfigError`.

    The message names the file and, per problem, the field, what is allowed and what was
    given: ``field 'timing.trains': must be >= 1 (got 0)``.
    """
    return validation_error(exc, file, "protocol", Protocol.model_fields)
