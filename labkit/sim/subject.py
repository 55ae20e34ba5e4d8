"""The virtual subject: turns coil discharges into MEPs, and remembers the ground truth.

A :class:`VirtualSubject` holds one :class:`~labkit.sim.mep_model.StatisticalMEPModel`
per EMG channel (the first one is the subject's; the others are derived from it), a
seeded random generator, and the list of everything it produced (``.responses``) so that
tests and notebooks can compare what was measured with what was generated.

EEG phase hook: when the subject has an EEG source, the MEP excitability follows the mu
phase at the moment of the discharge (trough more excitable than peak, as in Zrenner et
al. 2018, Brain Stimulation 11:374). The phase is read from, in this order: an explicit
``excitability`` given to :meth:`VirtualSubject.respond`; the source's own
``phase_at(time_s)``; or the ``phase_at`` that the EEG amplifier streaming that source
registered with :func:`register_eeg_clock` (the amplifier owns the sample clock that maps
LSL time to the source's sample index).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from labkit.sim.contraction import (
    AMT_CRITERION_UV,
    REFERENCE_LEVEL_PERCENT_MVC,
    ActiveStateParams,
    checked_level,
    contraction_shift_fraction,
)
from labkit.sim.events import Discharge
from labkit.sim.mep_model import MEPModelParams, StatisticalMEPModel
from labkit.sim.spatial import SpatialExcitability

__all__ = [
    "MEPResponse",
    "VirtualSubject",
    "mep_waveform",
    "PairedPulseParams",
    "paired_pulse_factor",
    "register_eeg_clock",
]

#: Duration of the biphasic MEP waveform, ms (FDI/APB MEPs last ~10-15 ms).
MEP_DURATION_MS = 12.0

# source id() -> phase_at(time_s) registered by the amplifier streaming that source.
_EEG_CLOCKS: dict[int, Callable[[float], float | None]] = {}
_EEG_LOCK = threading.Lock()


def register_eeg_clock(source: Any, phase_at: Callable[[float], float | None] | None) -> None:
    """Register (or, with ``None``, remove) the function giving ``source``'s phase at a time.

    Called by :class:`labkit.sim.amplifier.EEGAmplifier` so that a subject holding the same
    source can look up the true mu phase at a discharge time.
    """
    with _EEG_LOCK:
        if phase_at is None:
            _EEG_CLOCKS.pop(id(source), None)
        else:
            _EEG_CLOCKS[id(source)] = phase_at


def mep_waveform(
    amplitude_uv: float, fs: float, duration_ms: float = MEP_DURATION_MS
) -> np.ndarray:
    """Biphasic MEP waveform sampled at ``fs`` whose sampled peak-to-peak is exact.

    The shape is a positive then a negative lobe, ``sin(2πu)·sin(πu)`` for ``u`` in
    [0, 1] across ``duration_ms``, starting and ending at 0. It is scaled by its sampled
    peak-to-peak so that ``w.max() - w.min() == amplitude_uv`` to float precision.

    Parameters
    ----------
    amplitude_uv : float
        Peak-to-peak amplitude, µV (>= 0).
    fs : float
        Sampling rate, Hz.
    duration_ms : float
        Duration of the waveform, ms.

    Returns
    -------
    numpy.ndarray
        The samples, µV, first sample at the MEP onset.
    """
    n = max(int(round(duration_ms * fs / 1000.0)), 4)
    u = np.arange(n + 1) / n
    shape = np.sin(2 * np.pi * u) * np.sin(np.pi * u)
    shape /= shape.max() - shape.min()
    return amplitude_uv * shape


def _checked_percent(value: float, field_name: str) -> float:
    x = float(value)
    if not (math.isfinite(x) and 0.0 <= x <= 100.0):
        raise ValueError(f"Discharge.{field_name} = {value!r} is outside 0-100 %MSO")
    return x


@dataclass(frozen=True)
class PairedPulseParams:
    """One subject's paired-pulse effects: the factor on the test MEP at full effect.

    Attributes
    ----------
    sici_ratio : float
        Short-interval intracortical inhibition at 2.5 ms (drawn 0.30-0.60).
    icf_ratio : float
        Intracortical facilitation at 13.5 ms (drawn 1.3-1.8).
    lici_ratio : float
        Long-interval intracortical inhibition at 110 ms (drawn 0.15-0.50).
    """

    sici_ratio: float = 0.5
    icf_ratio: float = 1.5
    lici_ratio: float = 0.3

    @classmethod
    def sample(cls, rng: np.random.Generator) -> PairedPulseParams:
        """Draw one subject's effects from ``rng``."""
        return cls(float(rng.uniform(0.30, 0.60)), float(rng.uniform(1.3, 1.8)),
                   float(rng.uniform(0.15, 0.50)))


def paired_pulse_factor(ipi_ms: float, conditioning_rmt: float,
                        params: PairedPulseParams | None = None) -> float:
    """Factor on the test MEP's evoked signal after a conditioning pulse.

    A coarse, documented approximation of the classic paired-pulse curves, applied to the
    response axis so that the conditioned/unconditioned ratio does not depend on how
    steep the subject's recruitment curve is:

    * short-interval intracortical inhibition (SICI) at 1-6 ms, deepest at 2.5 ms
      (Gaussian, SD 1.2 ms), and intracortical facilitation (ICF) at 7-20 ms (half-sine
      profile, peak at 13.5 ms), with a subthreshold conditioning stimulus (Kujirai et al.
      1993, J Physiol 471:501; Ziemann et al. 1996, J Physiol 496:873): no effect below
      50 % RMT, full from 70 % RMT (about 85-90 % of the AMT) on, linear between;
    * long-interval intracortical inhibition (LICI) at 40-250 ms, deepest at 110 ms
      (Gaussian, SD 50 ms), with a suprathreshold conditioning stimulus (Valls-Solé et
      al. 1992, EEG Clin Neurophysiol 85:355; McDonnell et al. 2006, Exp Brain Res
      173:86): none at or below 90 % RMT, full from 120 % RMT.

    Parameters
    ----------
    ipi_ms : float
        Interval from the conditioning to the test pulse, ms.
    conditioning_rmt : float
        Conditioning intensity as a fraction of the resting motor threshold.
    params : PairedPulseParams | None
        The subject's depths at full effect; population defaults when None.

    Returns
    -------
    float
        Factor on the evoked test MEP (1 = no effect).
    """
    p = params or PairedPulseParams()
    if 1.0 <= ipi_ms <= 6.0:
        gain = float(np.clip((conditioning_rmt - 0.5) / 0.2, 0.0, 1.0))
        profile = math.exp(-0.5 * ((ipi_ms - 2.5) / 1.2) ** 2)
        return 1.0 - (1.0 - p.sici_ratio) * gain * profile
    if 7.0 <= ipi_ms <= 20.0:
        gain = float(np.clip((conditioning_rmt - 0.5) / 0.2, 0.0, 1.0))
        profile = math.sin(math.pi * (ipi_ms - 7.0) / 13.0) ** 0.5
        return 1.0 + (p.icf_ratio - 1.0) * gain * profile
    if 40.0 <= ipi_ms <= 250.0:
        gain = float(np.clip((conditioning_rmt - 0.9) / 0.3, 0.0, 1.0))
        profile = math.exp(-0.5 * ((ipi_ms - 110.0) / 50.0) ** 2)
        return 1.0 - (1.0 - p.lici_ratio) * gain * profile
    return 1.0


@dataclass(frozen=True)
class MEPResponse:
    """Ground truth of the subject's response to one discharge.

    Attributes
    ----------
    time_s : float
        LSL time of the discharge, s.
    intensity_percent : float
        Stimulator output, %MSO.
    amplitudes_uv : dict[str, float]
        Peak-to-peak MEP per EMG channel, µV.
    latencies_ms : dict[str, float]
        MEP onset after the discharge per channel, ms.
    excitability : float
        Stimulus-axis shift applied, %MSO (0 = neutral).
    phase_rad : float | None
        True EEG mu phase at the discharge (cosine convention), when known.
    index : int
        Running number of the response, from 0.
    device : str
        The emulated stimulator that discharged.
    contraction_percent_mvc : float
        The subject's voluntary contraction at the discharge, % MVC (0 = at rest).
    silent_period_ms : float | None
        During a contraction: this trial's cortical silent period, from the discharge to
        the resumption of voluntary EMG, ms (see :mod:`labkit.sim.contraction`); None at
        rest.
    paired_factor : float
        Factor on the evoked test MEP from a conditioning pulse (1 = none; see
        :func:`paired_pulse_factor`).
    efficacy : float
        Fraction of the output that acted on the hand area, from the coil pose (1 = on
        the hotspot in the preferred direction, or no spatial model).
    coil_pose : CoilPose | None
        The true coil pose at the discharge (spatial subjects with a coil holder).
    """

    time_s: float
    intensity_percent: float
    amplitudes_uv: dict[str, float]
    latencies_ms: dict[str, float]
    excitability: float = 0.0
    phase_rad: float | None = None
    index: int = 0
    device: str = ""
    contraction_percent_mvc: float = 0.0
    silent_period_ms: float | None = None
    paired_factor: float = 1.0
    efficacy: float = 1.0
    coil_pose: Any = None

    @property
    def amplitude_uv(self) -> float:
        """Peak-to-peak amplitude of the first (primary) channel, µV."""
        return next(iter(self.amplitudes_uv.values()))

    @property
    def latency_ms(self) -> float:
        """Onset latency of the first (primary) channel, ms."""
        return next(iter(self.latencies_ms.values()))

    def waveform_uv(self, channel: str, fs: float) -> np.ndarray:
        """MEP waveform of ``channel`` sampled at ``fs`` Hz, from its onset (µV)."""
        if channel not in self.amplitudes_uv:
            raise KeyError(f"no EMG channel {channel!r}; channels: {list(self.amplitudes_uv)}")
        return mep_waveform(self.amplitudes_uv[channel], fs)


@dataclass
class VirtualSubject:
    """A simulated person whose motor cortex answers coil discharges with MEPs.

    Parameters
    ----------
    seed : int
        Seed of the subject: draws its MEP model (when ``model`` is None), latencies and
        every trial's variability. The same seed and the same pulse sequence give the same
        MEPs.
    model : StatisticalMEPModel | None
        The MEP model of the first EMG channel; drawn from the population when None.
    emg_channels : sequence of str
        EMG channel names. The first channel uses ``model``; each further channel gets a
        copy whose offset is 3 %MSO higher and whose saturation is 0.7 times lower per
        position (e.g. APB slightly less excitable than FDI), with its own trial noise.
    eeg : object | None
        EEG source (e.g. the simulator's mu generator). See the module docstring.
    phase_modulation_percent : float
        Depth of the mu-phase modulation: excitability = ``-depth · cos(phase)`` %MSO, so
        +depth at the trough (phase ±π) and -depth at the peak (phase 0). The default
        1 %MSO gives a trough/peak ratio of median MEPs at 110 % RMT of about 1.5 (10-90 %
        of the population: 1.3-1.85), the order of the trough > peak effect reported by
        Zrenner et al. 2018.

    spatial : SpatialExcitability | bool | None
        Where the hotspot is and how the coil pose scales the effective intensity (see
        :mod:`labkit.sim.spatial`); True draws one from the seed; None: the coil is always
        on the hotspot in the preferred direction (efficacy 1).
    coil : object | None
        Whatever holds the coil, with ``pose_at(time_s) -> CoilPose`` (e.g.
        :class:`labkit.sim.coil_hand.HandHeldCoil`); used when ``spatial`` is set.
    contraction_percent_mvc : float
        Voluntary contraction held by the subject, % MVC (0 = at rest; settable at any
        time, also while an amplifier streams). During a contraction the amplifier adds
        the voluntary EMG, MEPs are facilitated (the active motor threshold holds) and each
        MEP is followed by a cortical silent period: see :mod:`labkit.sim.contraction`.

    Attributes
    ----------
    responses : list of MEPResponse
        Ground truth of every response, in order.
    base_latency_ms : float
        The subject's corticospinal latency to the first channel (20-24 ms).
    active : ActiveStateParams
        The subject's response to contraction (AMT ratio, EMG level, silent period).
    paired : PairedPulseParams
        The subject's SICI, ICF and LICI at full effect (ground truth; see
        :meth:`paired_pulse_ratio` for the ratio at given intensities).
    """

    seed: int = 0
    model: StatisticalMEPModel | None = None
    emg_channels: Sequence[str] = ("FDI", "APB")
    eeg: Any = None
    phase_modulation_percent: float = 1.0
    spatial: Any = None
    coil: Any = None
    contraction_percent_mvc: float = 0.0
    responses: list[MEPResponse] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        self.emg_channels = tuple(self.emg_channels)
        if not self.emg_channels:
            raise ValueError("VirtualSubject.emg_channels must name at least one channel")
        setup = np.random.default_rng([int(self.seed), 0])
        if self.model is None:
            self.model = StatisticalMEPModel.sample(setup)
        self.base_latency_ms = float(setup.uniform(20.0, 24.0))
        self.models: dict[str, StatisticalMEPModel] = {}
        for i, name in enumerate(self.emg_channels):
            if i == 0:
                self.models[name] = self.model
            else:
                p: MEPModelParams = self.model.params
                values = dict(p.__dict__)
                values["offset_percent"] = p.offset_percent + 3.0 * i
                values["saturation_uv"] = p.saturation_uv * 0.7**i
                self.models[name] = StatisticalMEPModel(MEPModelParams(**values))
        self._rng = np.random.default_rng([int(self.seed), 1])
        self.active = ActiveStateParams.sample(np.random.default_rng([int(self.seed), 3]))
        self._sp_rng = np.random.default_rng([int(self.seed), 2])
        self.paired = PairedPulseParams.sample(np.random.default_rng([int(self.seed), 5]))
        if self.spatial is True:
            self.spatial = SpatialExcitability.sample(np.random.default_rng([int(self.seed), 4]))
        elif self.spatial is False:
            self.spatial = None
        self._lock = threading.Lock()

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "contraction_percent_mvc":
            value = checked_level(value)
        super().__setattr__(name, value)

    # -- ground truth -------------------------------------------------------------------
    @property
    def resting_motor_threshold_percent(self) -> float:
        """True RMT (50 µV criterion) of the first channel, %MSO."""
        return self.model.true_threshold_percent(50.0)

    @property
    def active_shift_percent(self) -> float:
        """Stimulus-axis facilitation at the 15 % MVC reference contraction, %MSO."""
        cache = self.__dict__.setdefault("_active_shift_cache", [])
        if not cache:
            rest_200 = self.model.true_threshold_percent(AMT_CRITERION_UV)
            amt = self.active.amt_ratio * self.resting_motor_threshold_percent
            cache.append(rest_200 - amt)
        return cache[0]

    def contraction_shift_percent(self, level_percent_mvc: float | None = None) -> float:
        """Facilitation of the MEPs by a contraction, %MSO (stimulus-axis shift).

        Parameters
        ----------
        level_percent_mvc : float | None
            Contraction level, % MVC; None: the current ``contraction_percent_mvc``.
        """
        level = self.contraction_percent_mvc if level_percent_mvc is None else (
            checked_level(level_percent_mvc))
        if level == 0.0:
            return 0.0
        return self.active_shift_percent * contraction_shift_fraction(level)

    def active_motor_threshold_at(self, level_percent_mvc: float) -> float:
        """True AMT (200 µV criterion) of the first channel at a contraction level, %MSO."""
        shift = self.contraction_shift_percent(level_percent_mvc)
        return self.model.true_threshold_percent(AMT_CRITERION_UV) - shift

    @property
    def active_motor_threshold_percent(self) -> float:
        """True active motor threshold of the first channel, %MSO.

        The intensity at which a MEP reaches 200 µV peak-to-peak in half of the trials, at
        the current contraction level, or at the 15 % MVC reference while at rest. It is
        ``active.amt_ratio`` times the RMT at 15 % MVC and within ~1 %MSO of that over
        10-20 % MVC.
        """
        level = self.contraction_percent_mvc or REFERENCE_LEVEL_PERCENT_MVC
        return self.active_motor_threshold_at(level)

    def silent_period_ms_at(self, intensity_percent: float) -> float:
        """Mean cortical silent period (discharge to EMG resumption) at an intensity, ms.

        Independent of the contraction level; measurable only during a contraction.
        """
        amt = self.active_motor_threshold_at(REFERENCE_LEVEL_PERCENT_MVC)
        return self.active.silent_period_ms(intensity_percent, amt)

    def paired_pulse_ratio(self, ipi_ms: float, conditioning_percent: float,
                           test_percent: float) -> float:
        """True conditioned / unconditioned mean MEP ratio of the first channel.

        The ratio of the expected test-MEP amplitudes with and without the conditioning
        pulse (``mean_amplitude_uv`` of the model, at rest, coil on the hotspot): what a
        paired-pulse experiment estimates with the ratio of the mean MEPs.

        Parameters
        ----------
        ipi_ms : float
            Conditioning-to-test interval, ms.
        conditioning_percent, test_percent : float
            Intensities, %MSO.
        """
        factor = paired_pulse_factor(
            ipi_ms, conditioning_percent / self.resting_motor_threshold_percent, self.paired)
        model = self.model
        return (model.mean_amplitude_uv(test_percent, 0.0, factor)
                / model.mean_amplitude_uv(test_percent, 0.0))

    @property
    def silent_period_ms(self) -> float:
        """Mean cortical silent period at 130 % of the RMT (a common cSP intensity), ms."""
        return self.silent_period_ms_at(1.3 * self.resting_motor_threshold_percent)

    def phase_at(self, time_s: float) -> float | None:
        """True mu phase (rad, cosine convention) at ``time_s``, or None without EEG."""
        if self.eeg is None:
            return None
        getter = getattr(self.eeg, "phase_at", None)
        if getter is None:
            with _EEG_LOCK:
                getter = _EEG_CLOCKS.get(id(self.eeg))
        if getter is None:
            return None
        try:
            phase = getter(time_s)
        except (IndexError, ValueError, KeyError):
            return None
        return None if phase is None else float(phase)

    # -- the coil -------------------------------------------------------------------------
    def respond(self, discharge: Discharge, excitability: float | None = None) -> MEPResponse:
        """Produce (and record) the MEPs evoked by one discharge.

        Parameters
        ----------
        discharge : Discharge
            The coil discharge (time and intensity).
        excitability : float | None
            Stimulus-axis shift, %MSO. None: derived from the EEG phase when there is an
            EEG source, else 0.

        Returns
        -------
        MEPResponse
            Amplitudes and latencies per channel; also appended to ``.responses``.
            Latencies are counted from ``discharge.time_s``.

        Notes
        -----
        Paired pulses (BiStim: ``intensity_b_percent`` and ``ipi_ms`` set): with
        ``ipi_ms == 0`` both outputs fire together and the subject responds as to one
        pulse at the larger intensity; an output at 0 %MSO does not fire. With
        ``ipi_ms > 0``, output A is the conditioning and output B the test stimulus:
        the MEP is the response to B (latency counted from A, so it includes
        ``ipi_ms``), and A scales B's evoked MEP by :func:`paired_pulse_factor` (SICI
        at 1-6 ms, ICF at 7-20 ms, LICI at 40-250 ms; recorded as ``paired_factor``).
        The MEP of a suprathreshold conditioning pulse itself is not modelled.
        """
        intensity = _checked_percent(discharge.intensity_percent, "intensity_percent")
        efficacy, pose = 1.0, None
        if self.spatial is not None and self.coil is not None:
            pose = self.coil.pose_at(discharge.time_s)
            efficacy = self.spatial.efficacy(pose)
        intensity_a_fired = intensity
        delay_ms, paired_gain = 0.0, 1.0
        if discharge.intensity_b_percent is not None:
            intensity_b = _checked_percent(discharge.intensity_b_percent, "intensity_b_percent")
            ipi = float(discharge.ipi_ms or 0.0)
            if not (math.isfinite(ipi) and 0.0 <= ipi <= 1000.0):
                raise ValueError(f"Discharge.ipi_ms = {discharge.ipi_ms!r} is outside 0-1000 ms")
            if intensity_b == 0.0:
                pass  # output B idle: a single pulse from A
            elif intensity == 0.0:
                intensity, delay_ms = intensity_b, ipi  # only B fires
            elif ipi == 0.0:
                intensity = max(intensity, intensity_b)
            else:
                conditioning_rmt = intensity * efficacy / self.resting_motor_threshold_percent
                paired_gain = paired_pulse_factor(ipi, conditioning_rmt, self.paired)
                intensity, delay_ms = intensity_b, ipi
        effective = intensity * efficacy
        phase = self.phase_at(discharge.time_s + delay_ms / 1000.0)
        if excitability is None:
            excitability = 0.0 if phase is None else (
                -self.phase_modulation_percent * math.cos(phase)
            )
        level = self.contraction_percent_mvc
        excitability = float(excitability) + self.contraction_shift_percent(level)
        with self._lock:
            amps: dict[str, float] = {}
            lats: dict[str, float] = {}
            for i, name in enumerate(self.emg_channels):
                amps[name] = self.models[name].amplitude_uv(effective, self._rng, excitability,
                                                            paired_gain)
                jitter = float(np.clip(self._rng.normal(0.0, 0.3), -1.0, 1.0))
                lats[name] = delay_ms + self.base_latency_ms + 0.8 * i + jitter
            silent_ms = None
            if level > 0.0:
                mean_ms = self.silent_period_ms_at(efficacy * max(intensity, intensity_a_fired))
                silent_ms = delay_ms + max(
                    0.0, mean_ms * (1.0 + self.active.sp_cv * self._sp_rng.standard_normal()))
            response = MEPResponse(
                time_s=float(discharge.time_s),
                intensity_percent=intensity,
                amplitudes_uv=amps,
                latencies_ms=lats,
                excitability=float(excitability),
                phase_rad=phase,
                index=len(self.responses),
                device=discharge.device,
                contraction_percent_mvc=level,
                silent_period_ms=silent_ms,
                paired_factor=paired_gain,
                efficacy=efficacy,
                coil_pose=pose,
            )
            self.responses.append(response)
        return response

    def __call__(self, discharge: Discharge) -> MEPResponse:
        return self.respond(discharge)
