"""The virtual subject's voluntary contraction: tonic EMG, active threshold, silent period.

A subject asked to hold a weak contraction (a level in % of its maximal voluntary
contraction, MVC) changes three things a TMS session measures:

* **Background EMG.** Surface EMG of a small hand muscle grows about linearly with force
  (Lawrence & De Luca 1983, J Appl Physiol 54:1653, FDI). :class:`TonicEMG` draws an
  interference pattern (white noise through a 20 Hz high-pass and a 150 Hz low-pass, each
  2nd-order Butterworth: spectral peak ~75 Hz, median frequency ~100 Hz, as in surface
  EMG) whose RMS is ``level / 100 · emg_rms_at_mvc_uv``, moving to a new level along a
  150 ms raised-cosine ramp (and exactly at the level after it, so that pulses given
  once the level is held see the same EMG on every run).
* **Excitability.** Voluntary activation lowers the threshold and enlarges MEPs; the
  effect rises steeply up to ~10 % MVC and changes little above (Hess, Mills & Murray
  1987, J Physiol 388:397). It is a stimulus-axis shift
  ``s(c) = s_sat · (1 − exp(−c / 2.5 % MVC))``, with ``s_sat`` chosen so that at the
  reference level (15 % MVC) the active motor threshold — the intensity with a 50 %
  chance of a 200 µV MEP (Rossini et al. 2015, Clin Neurophysiol 126:1071) — is
  ``amt_ratio · RMT``. ``amt_ratio`` is drawn per subject around 0.80 (AMT is typically
  some 15-25 % below RMT in hand muscles).
* **Cortical silent period (cSP).** After the MEP, voluntary EMG stops and then resumes.
  Its duration grows sigmoidally with intensity above about the AMT (Kimiskidis et al.
  2005, Exp Brain Res 163:21, Boltzmann stimulus-response curves of the cSP; 100-250 ms
  at 120-150 % RMT) and varies little from trial to trial (Orth & Rothwell 2004, Clin
  Neurophysiol 115:1076; coefficient of variation here 6 %). The ground truth of one
  trial, ``MEPResponse.silent_period_ms``, is the time from the TMS pulse to the
  resumption of EMG, taken as the middle of a 4 ms linear re-emergence ramp; EMG is fully
  suppressed from the MEP onset until then.

Every number is drawn from the subject's own seeded streams, separate from the MEP trial
stream, so that a subject at rest produces exactly the MEPs it produced before it could
contract.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import signal

from labkit.sim.noise import DischargeLockedNoise

__all__ = ["ActiveStateParams", "TonicEMG", "contraction_shift_fraction"]

#: Contraction level at which ``amt_ratio`` holds exactly, % MVC.
REFERENCE_LEVEL_PERCENT_MVC = 15.0
#: Level constant of the facilitation by contraction, % MVC.
FACILITATION_SCALE_PERCENT_MVC = 2.5
#: Peak-to-peak criterion of the active motor threshold, µV.
AMT_CRITERION_UV = 200.0
#: Width of the EMG re-emergence ramp at the end of a silent period, ms.
RESUMPTION_RAMP_MS = 4.0
#: Duration of the raised-cosine ramp of the EMG envelope to a new contraction level, ms.
LEVEL_LAG_MS = 150.0
#: Corners of the simulated surface EMG spectrum (high-pass, low-pass), Hz.
EMG_CORNERS_HZ = (20.0, 150.0)


def contraction_shift_fraction(level_percent_mvc: float) -> float:
    """Fraction of the saturated facilitation reached at a contraction level.

    ``(1 − exp(−c / 2.5)) / (1 − exp(−15 / 2.5))``: 1 at the 15 % MVC reference, 0.98 at
    10 % and 1.002 at 20 % MVC, 0 at rest.

    Parameters
    ----------
    level_percent_mvc : float
        Contraction level, % MVC (0-100).

    Returns
    -------
    float
        The fraction (≥ 0).
    """
    ref = 1.0 - math.exp(-REFERENCE_LEVEL_PERCENT_MVC / FACILITATION_SCALE_PERCENT_MVC)
    return (1.0 - math.exp(-float(level_percent_mvc) / FACILITATION_SCALE_PERCENT_MVC)) / ref


def checked_level(value: Any) -> float:
    """A contraction level in % MVC, or a ValueError naming the allowed range."""
    try:
        level = float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"contraction_percent_mvc = {value!r} is not a number (allowed 0-100 % MVC)"
        ) from None
    if not (math.isfinite(level) and 0.0 <= level <= 100.0):
        raise ValueError(f"contraction_percent_mvc = {value!r} is outside 0-100 % MVC")
    return level


@dataclass(frozen=True)
class ActiveStateParams:
    """One subject's response to voluntary contraction.

    Attributes
    ----------
    amt_ratio : float
        Active motor threshold at 15 % MVC as a fraction of the RMT (drawn 0.80 ± 0.04,
        kept within 0.70-0.90).
    emg_rms_at_mvc_uv : float
        RMS of the FDI surface EMG at 100 % MVC, µV (drawn 100-200 µV, so 15-30 µV at
        15 % MVC). Further channels get 0.6 of it per position.
    sp_max_ms : float
        Plateau of the silent-period duration, ms (drawn 180-280 ms).
    sp_midpoint_above_amt_percent : float
        Intensity above the AMT at which the duration is half its plateau, %MSO
        (drawn 12-18 %MSO).
    sp_slope_percent : float
        Boltzmann slope of the duration curve, %MSO (drawn 4-6 %MSO).
    sp_cv : float
        Trial-to-trial coefficient of variation of the duration.
    """

    amt_ratio: float = 0.80
    emg_rms_at_mvc_uv: float = 150.0
    sp_max_ms: float = 230.0
    sp_midpoint_above_amt_percent: float = 15.0
    sp_slope_percent: float = 5.0
    sp_cv: float = 0.06

    @classmethod
    def sample(cls, rng: np.random.Generator) -> ActiveStateParams:
        """Draw one subject's parameters from ``rng``."""
        return cls(
            amt_ratio=float(np.clip(rng.normal(0.80, 0.04), 0.70, 0.90)),
            emg_rms_at_mvc_uv=float(rng.uniform(100.0, 200.0)),
            sp_max_ms=float(rng.uniform(180.0, 280.0)),
            sp_midpoint_above_amt_percent=float(rng.uniform(12.0, 18.0)),
            sp_slope_percent=float(rng.uniform(4.0, 6.0)),
        )

    def silent_period_ms(self, intensity_percent: float, amt_percent: float) -> float:
        """Mean silent-period duration (pulse to EMG resumption) at an intensity, ms."""
        z = (amt_percent + self.sp_midpoint_above_amt_percent - float(intensity_percent))
        return self.sp_max_ms / (1.0 + math.exp(z / self.sp_slope_percent))


class TonicEMG:
    """Background EMG of a contracting subject, rendered sample by sample.

    An EMG amplifier holds one and asks it, for consecutive blocks of samples, to add the
    subject's voluntary EMG (:meth:`add_to`); for each discharge it reports the pulse
    sample and the subject's response (:meth:`silence`) so that the silent period that
    follows is cut out of the EMG. At rest (level 0) nothing is drawn and nothing added.

    Parameters
    ----------
    subject : object
        The virtual subject: reads ``contraction_percent_mvc`` and ``active`` (an
        :class:`ActiveStateParams`).
    channels : sequence of str
        The amplifier's channel labels, in order; the subject's first EMG channel gets the
        full RMS, the others 0.6 per position.
    fs : float
        Sampling rate, Hz.
    seed : int
        Seed of the EMG noise.
    lead_samples : int
        The interference pattern is keyed to the discharges like the amplifier's noise
        (:class:`~labkit.sim.noise.DischargeLockedNoise`): each segment starts this many
        samples before its discharge, from a filter state settled on that segment's own
        noise, so the EMG around the ``n``-th pulse is the same on every run.
    """

    #: Samples of keyed noise the filter runs over before a segment starts.
    WARMUP_S = 0.2

    def __init__(
        self, subject: Any, channels: Sequence[str], fs: float, seed: int, *,
        lead_samples: int = 0,
    ) -> None:
        self.subject = subject
        self.fs = float(fs)
        order = list(getattr(subject, "emg_channels", channels))
        self.channel_gain = np.array(
            [0.6 ** (order.index(c) if c in order else 1) for c in channels], dtype=float
        )[:, None]
        low, high = EMG_CORNERS_HZ
        self._sos = np.vstack([
            signal.butter(2, low, btype="high", fs=self.fs, output="sos"),
            signal.butter(2, min(high, 0.45 * self.fs), btype="low", fs=self.fs, output="sos"),
        ])
        impulse = np.zeros(int(self.fs))
        impulse[0] = 1.0
        self._unit = 1.0 / math.sqrt(float(np.sum(signal.sosfilt(self._sos, impulse) ** 2)))
        self._zi = np.zeros((self._sos.shape[0], len(channels), 2))
        self._noise = DischargeLockedNoise(int(seed), 17, len(channels),
                                           lead_samples=lead_samples)
        self._segment_key: int | None = None
        self._envelope = 0.0       # envelope at the last rendered sample, µV
        self._ramp_from = 0.0      # envelope when the level last changed, µV
        self._ramp_target = 0.0    # the level's envelope, µV
        self._ramp_start = 0       # sample at which the ramp to it began
        self._lock = threading.Lock()
        self._windows: list[tuple[int, int]] = []  # (silence start, resumption) samples

    def discharge(self, pulse: int, first_unsent: int) -> None:
        """A discharge at sample ``pulse``: start its noise segment (see ``lead_samples``)."""
        self._noise.discharge(pulse, first_unsent)

    def silence(self, pulse: int, response: Any) -> None:
        """Cut the silent period of ``response`` (pulse at sample ``pulse``) out of the EMG."""
        duration_ms = getattr(response, "silent_period_ms", None)
        if duration_ms is None or pulse < 0:
            return
        start = pulse + int(round(min(response.latencies_ms.values()) * self.fs / 1000.0))
        resume = pulse + int(round(float(duration_ms) * self.fs / 1000.0))
        if resume > start:
            with self._lock:
                self._windows.append((start, resume))

    def gain(self, first: int, n: int) -> np.ndarray:
        """Multiplier of the voluntary EMG for samples ``[first, first + n)`` (0 = silent)."""
        idx = np.arange(first, first + n)
        out = np.ones(n)
        half = RESUMPTION_RAMP_MS * self.fs / 2000.0
        with self._lock:
            self._windows = [w for w in self._windows if w[1] + half >= first]
            windows = list(self._windows)
        for start, resume in windows:
            ramp = np.clip((idx - (resume - half)) / (2.0 * half), 0.0, 1.0)
            g = np.where(idx < start, 1.0, ramp)
            out = np.minimum(out, g)
        return out

    def add_to(self, data: np.ndarray, first: int) -> np.ndarray:
        """Add the voluntary EMG of samples ``[first, first + n)`` to ``data`` (µV), in place."""
        level = float(getattr(self.subject, "contraction_percent_mvc", 0.0))
        n = data.shape[1]
        if level == 0.0 and self._envelope == 0.0:
            return data
        target = level / 100.0 * self.subject.active.emg_rms_at_mvc_uv
        if target != self._ramp_target:  # a new level: ramp there from where we are
            self._ramp_from, self._ramp_target, self._ramp_start = self._envelope, target, first
        ramp_n = LEVEL_LAG_MS * self.fs / 1000.0
        t = np.clip((np.arange(first, first + n) - self._ramp_start) / ramp_n, 0.0, 1.0)
        envelope = target + (self._ramp_from - target) * 0.5 * (1.0 + np.cos(np.pi * t))
        self._envelope = float(envelope[-1])
        emg = np.empty(data.shape)
        for seg in self._noise.segments(first, n):
            if seg.key != self._segment_key:  # a new segment: settle the filter on its noise
                self._segment_key = seg.key
                warm = int(self.WARMUP_S * self.fs)
                _, self._zi = signal.sosfilt(
                    self._sos, self._noise.draw_segment(seg.key, seg.origin,
                                                        seg.start - warm, seg.start),
                    axis=1, zi=np.zeros_like(self._zi))
            white = self._noise.draw_segment(seg.key, seg.origin, seg.start, seg.stop)
            emg[:, seg.start - first:seg.stop - first], self._zi = signal.sosfilt(
                self._sos, white, axis=1, zi=self._zi)
        data += emg * self._unit * self.channel_gain * envelope[None, :] * self.gain(first, n)
        return data
