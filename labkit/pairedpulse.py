"""Paired-pulse excitability (SICI, ICF, LICI): plan, test-intensity search, ratios. Pure.

Conditions (after Kujirai et al. 1993, J Physiol 471:501; Ziemann et al. 1996; Valls-Solé
et al. 1992, EEG Clin Neurophysiol 85:355; IFCN: Rossini et al. 2015, Clin Neurophysiol
126:1071):

* ``test``: the test stimulus (TS) alone, at the intensity giving a ~1 mV MEP;
* ``SICI``: a subthreshold conditioning stimulus (CS, 80 % of the AMT, or 70 % of the RMT
  when no AMT is known) 2.5 ms before the TS;
* ``ICF``: the same CS 12 ms before the TS;
* ``LICI``: a suprathreshold CS (the TS intensity) 100 ms before the TS.

Conditions are fully randomised (seeded). The result of each paired condition is the
ratio of its mean MEP to the mean test-alone MEP, with a 95 % percentile-bootstrap
confidence interval (each condition resampled on its own, 4000 resamples, seeded).

Inter-pulse intervals are checked against the unit's range before anything is sent:
the BiStim² takes 1-999 ms in whole ms, or 0.1-99.9 ms in 0.1 ms steps in its
high-resolution mode.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from labkit.errors import ConfigError

__all__ = [
    "Condition",
    "PairedPulseProtocol",
    "PairedPulseResult",
    "TestIntensitySearch",
    "IPI_RANGES_MS",
    "standard_conditions",
]

#: Inter-pulse interval ranges of paired-pulse units, ms: one (low, high, step) per mode.
IPI_RANGES_MS: dict[str, tuple[tuple[float, float, float], ...]] = {
    "magstim-bistim": ((1.0, 999.0, 1.0), (0.1, 99.9, 0.1)),  # standard, high resolution
}


@dataclass(frozen=True)
class Condition:
    """One paired-pulse condition.

    Attributes
    ----------
    name : str
        E.g. ``"test"``, ``"SICI"``, ``"ICF"``, ``"LICI"``.
    test_percent : int
        Test stimulus (output B of a BiStim), %MSO.
    conditioning_percent : int | None
        Conditioning stimulus (output A), %MSO; None for the test alone.
    ipi_ms : float | None
        Conditioning-to-test interval, ms; None for the test alone.
    """

    name: str
    test_percent: int
    conditioning_percent: int | None = None
    ipi_ms: float | None = None

    @property
    def paired(self) -> bool:
        """True when a conditioning pulse precedes the test pulse."""
        return self.conditioning_percent is not None


def _check_intensity(value: int, what: str) -> int:
    if not (isinstance(value, int | np.integer) and 0 <= int(value) <= 100):
        raise ConfigError(f"{what} = {value!r} must be a whole %MSO within 0-100", field=what)
    return int(value)


def check_ipi(ipi_ms: float, unit: str) -> float:
    """Return ``ipi_ms`` if the unit can deliver it, else raise naming the unit."""
    if unit not in IPI_RANGES_MS:
        raise ConfigError(f"unknown paired-pulse unit {unit!r}; known: "
                          f"{', '.join(IPI_RANGES_MS)}", field="unit")
    x = float(ipi_ms) if isinstance(ipi_ms, int | float) else float("nan")
    for low, high, step in IPI_RANGES_MS[unit]:
        on_grid = math.isfinite(x) and abs(x / step - round(x / step)) < 1e-6
        if math.isfinite(x) and low <= x <= high and on_grid:
            return x
    ranges = " or ".join(f"{lo:g}-{hi:g} ms in steps of {st:g} ms"
                         for lo, hi, st in IPI_RANGES_MS[unit])
    raise ConfigError(f"inter-pulse interval {ipi_ms!r} ms is outside the {unit}'s range "
                      f"({ranges})", field="ipi_ms")


def standard_conditions(test_percent: int, rmt_percent: float,
                        amt_percent: float | None = None, *, sici_ipi_ms: float = 2.5,
                        icf_ipi_ms: float = 12.0, lici_ipi_ms: float = 100.0,
                        lici_conditioning_percent: int | None = None) -> list[Condition]:
    """Test alone, SICI, ICF and LICI with the conventional intensities (module docstring)."""
    _check_intensity(test_percent, "test_percent")
    if amt_percent is not None:
        cs = int(round(0.8 * amt_percent))
    else:
        cs = int(round(0.7 * rmt_percent))
    lici_cs = test_percent if lici_conditioning_percent is None else lici_conditioning_percent
    return [
        Condition("test", test_percent),
        Condition("SICI", test_percent, cs, sici_ipi_ms),
        Condition("ICF", test_percent, cs, icf_ipi_ms),
        Condition("LICI", test_percent, _check_intensity(lici_cs, "lici_conditioning_percent"),
                  lici_ipi_ms),
    ]


@dataclass(frozen=True)
class RatioEstimate:
    """Conditioned / test-alone mean MEP with its bootstrap CI."""

    name: str
    ratio: float
    ci_low: float
    ci_high: float
    n: int


@dataclass(frozen=True)
class PairedPulseResult:
    """Per-condition MEPs and the ratios to the test alone.

    Attributes
    ----------
    means_uv, medians_uv : dict[str, float]
        Per condition, µV.
    n : dict[str, int]
        Trials per condition.
    ratios : dict[str, RatioEstimate]
        Paired conditions only.
    """

    means_uv: dict[str, float]
    medians_uv: dict[str, float]
    n: dict[str, int]
    ratios: dict[str, RatioEstimate]


class PairedPulseProtocol:
    """A randomised paired-pulse block.

    Parameters
    ----------
    conditions : sequence of Condition
        Exactly one of them without a conditioning pulse (the test alone).
    n_per_condition : int
        Trials per condition (typically 10-20).
    seed : int
        Seed of the order and of the bootstrap.
    unit : str
        The paired-pulse unit (key of :data:`IPI_RANGES_MS`); intervals are checked.
    """

    def __init__(self, conditions: Sequence[Condition], n_per_condition: int = 12, *,
                 seed: int = 0, unit: str = "magstim-bistim") -> None:
        conditions = list(conditions)
        alone = [c for c in conditions if not c.paired]
        if len(alone) != 1:
            raise ConfigError("a paired-pulse protocol needs exactly one test-alone condition "
                              f"(got {len(alone)})", field="conditions")
        names = [c.name for c in conditions]
        if len(set(names)) != len(names):
            raise ConfigError(f"condition names must be unique: {names}", field="conditions")
        for c in conditions:
            _check_intensity(c.test_percent, f"{c.name}.test_percent")
            if c.paired:
                _check_intensity(c.conditioning_percent, f"{c.name}.conditioning_percent")
                check_ipi(c.ipi_ms, unit)
        if not (isinstance(n_per_condition, int) and 1 <= n_per_condition <= 100):
            raise ConfigError(f"n_per_condition = {n_per_condition!r} is outside 1-100",
                              field="n_per_condition")
        self.conditions = conditions
        self.unit = unit
        self.seed = int(seed)
        rng = np.random.default_rng(self.seed)
        order = np.repeat(np.arange(len(conditions)), n_per_condition)
        rng.shuffle(order)
        self.order = [int(k) for k in order]
        self.amplitudes: list[tuple[int, float]] = []

    @property
    def done(self) -> bool:
        """True when every planned trial is recorded."""
        return len(self.amplitudes) >= len(self.order)

    def next_condition(self) -> Condition:
        """The condition of the next trial."""
        if self.done:
            raise RuntimeError("the paired-pulse block is complete")
        return self.conditions[self.order[len(self.amplitudes)]]

    def record(self, amplitude_uv: float) -> None:
        """Record the test MEP of the trial at :meth:`next_condition`, µV."""
        amp = float(amplitude_uv)
        if not (math.isfinite(amp) and amp >= 0):
            raise ValueError(f"amplitude_uv = {amplitude_uv!r} must be finite and >= 0")
        k = self.order[len(self.amplitudes)]
        self.amplitudes.append((k, amp))

    def result(self, n_boot: int = 4000) -> PairedPulseResult:
        """Means, medians and ratios with 95 % bootstrap CIs."""
        by = {c.name: np.array([a for k, a in self.amplitudes if k == i])
              for i, c in enumerate(self.conditions)}
        base_name = next(c.name for c in self.conditions if not c.paired)
        base = by[base_name]
        if base.size == 0 or base.mean() <= 0:
            raise ValueError("no test-alone MEPs recorded: no ratios")
        rng = np.random.default_rng([self.seed, 1])
        base_boot = rng.choice(base, (n_boot, base.size)).mean(axis=1)
        ratios = {}
        for c in self.conditions:
            amps = by[c.name]
            if not c.paired or amps.size == 0:
                continue
            boot = rng.choice(amps, (n_boot, amps.size)).mean(axis=1) / base_boot
            lo, hi = np.percentile(boot, [2.5, 97.5])
            ratios[c.name] = RatioEstimate(c.name, float(amps.mean() / base.mean()),
                                           float(lo), float(hi), int(amps.size))
        return PairedPulseResult(
            {k: float(v.mean()) if v.size else float("nan") for k, v in by.items()},
            {k: float(np.median(v)) if v.size else float("nan") for k, v in by.items()},
            {k: int(v.size) for k, v in by.items()}, ratios)


class TestIntensitySearch:
    """Find the test intensity that gives a target mean MEP (e.g. 1 mV).

    Blocks of ``block`` pulses at one intensity; after each block the intensity moves by
    ``step_percent`` towards the target (up when the block's median is below
    ``target_uv / tolerance``, down when above ``target_uv · tolerance``); done when a
    block's median lies within the tolerance band, or after ``max_blocks`` (then the
    intensity whose block median was closest to the target, on a log scale).

    Parameters
    ----------
    start_percent : int
        First intensity, %MSO (e.g. 120 % RMT).
    target_uv : float
        Target MEP, µV.
    step_percent : int
        Step between blocks, %MSO.
    block : int
        Pulses per block.
    tolerance : float
        Accepted factor around the target (1.25: 0.8-1.25 mV for a 1 mV target).
    max_blocks : int
        Most blocks.
    """

    __test__ = False  # not a pytest class

    def __init__(self, start_percent: int, target_uv: float = 1000.0, *, step_percent: int = 3,
                 block: int = 5, tolerance: float = 1.25, max_blocks: int = 12) -> None:
        self.intensity = _check_intensity(start_percent, "start_percent")
        if not target_uv > 0 or not tolerance > 1:
            raise ValueError("target_uv must be > 0 µV and tolerance > 1")
        self.target_uv, self.step, self.block = float(target_uv), int(step_percent), int(block)
        self.tolerance, self.max_blocks = float(tolerance), int(max_blocks)
        self._current: list[float] = []
        self.blocks: list[tuple[int, float]] = []
        self.done = False

    def next_intensity(self) -> int:
        """Intensity of the next pulse, %MSO."""
        return self.intensity

    def update(self, amplitude_uv: float) -> None:
        """Record one MEP at :meth:`next_intensity`."""
        if self.done:
            raise RuntimeError("the test-intensity search is complete")
        self._current.append(float(amplitude_uv))
        if len(self._current) < self.block:
            return
        med = float(np.median(self._current))
        self.blocks.append((self.intensity, med))
        self._current = []
        if self.target_uv / self.tolerance <= med <= self.target_uv * self.tolerance:
            self.done = True
        elif len(self.blocks) >= self.max_blocks:
            self.done = True
            best = min(self.blocks, key=lambda b: abs(math.log(max(b[1], 1.0) / self.target_uv)))
            self.intensity = best[0]
        else:
            direction = 1 if med < self.target_uv else -1
            self.intensity = int(np.clip(self.intensity + direction * self.step, 1, 100))
