"""Statistical model of motor-evoked potentials (MEPs) for virtual subjects.

The structure follows the statistical MEP model of Goetz et al. (2014, 2019):

- **stimulus-axis variability**: on every trial the effective stimulus is shifted by a
  Gaussian term ``eps_x ~ N(0, sigma_x_percent)`` (%MSO) before it enters the
  recruitment curve -- the trial-to-trial fluctuation of cortical excitability;
- a **sigmoid in log-amplitude space** (recruitment curve), between a lower bound of
  0.1 µV and a saturation amplitude::

      log10(S_uv) = low + (high - low) / (1 + (midpoint / x_eff) ** slope) + eps_y
      x_eff       = max(intensity + excitability - offset + eps_x, 0)

- **response-axis variability**: ``eps_y ~ N(0, sigma_y_log10)``, i.e. multiplicative
  log-normal variability of the response;
- an **additive noise floor** ``N``: the peak-to-peak amplitude the recording shows
  without any MEP, drawn from a generalised extreme-value (GEV) distribution
  (location ~8 µV, scale ~1.5 µV, shape ~0.14).

One trial's peak-to-peak amplitude is ``max(S + N, 0)`` in µV.

Sources of the numbers
----------------------
S. M. Goetz, B. Luber, S. H. Lisanby, A. V. Peterchev, "A novel model incorporating two
variability sources for describing motor evoked potentials", Brain Stimulation 7(4),
541-552, 2014; S. M. Goetz, S. M. M. Alavi, Z. Deng, A. V. Peterchev, "Statistical model
of motor-evoked potentials", IEEE TNSRE 27(8), 1539-1545, 2019 (doi:10.1109/TNSRE.2019.
2926543). The population distribution of the shape parameters below (means and
covariances of the log10-transformed parameters, with correlations only between the
curve's scale, exponent and offset) is the one published with the public MATLAB model
(sgoetzduke/Statistical-MEP-Model, ``virtualsubjectEIVGenerateSubject``), re-expressed in
µV and %MSO. That population's thresholds are high for a figure-of-eight coil on a
Magstim; labkit therefore re-centres each drawn subject's stimulus-axis offset so that its
resting motor threshold (50 µV criterion) follows a truncated normal distribution, mean
48 %MSO, SD 7 %MSO, limited to 35-65 %MSO (typical of published RMT distributions, e.g.
Rossini et al. 2015, Clin Neurophysiol 126:1071). Subjects whose curves are implausible
(saturation outside 0.5-15 mV, midpoint outside 5-60 %MSO, exponent outside 1.2-8) are
redrawn, as the reference model also redraws implausible curves.

Everything here is pure: no clock, no I/O; randomness comes only from the generator
passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.optimize import brentq
from scipy.special import ndtr

__all__ = ["MEPModelParams", "StatisticalMEPModel", "sample_population"]

#: log10 of the lower bound of the recruitment curve, µV (0.1 µV; Goetz 2019).
LOW_LOG10_UV = -1.0

#: Population means of the log10-parameters (Goetz 2019 / public model), in the units of
#: the reference (volts, %MSO); order: noise location [log10 V], saturation [log10 V],
#: log10(scale), log10(exponent), log10(offset %MSO), log10(sigma_y), log10(sigma_x %MSO).
_POP_MEAN = np.array([-5.081764824125, -2.467735071, 3.646550162125, 0.4263900355,
                      1.66648713475, -0.96453346025, 0.688273244])
_POP_COV = np.zeros((7, 7))
_POP_COV[0, 0] = 0.003570541967
_POP_COV[1, 1] = 0.126168431583
_POP_COV[2, 2:5] = [7.202738820058, 0.569742608764, -0.197461987887]
_POP_COV[3, 2:5] = [0.569742608764, 0.047425817251, -0.015113039713]
_POP_COV[4, 2:5] = [-0.197461987887, -0.015113039713, 0.007107112788]
_POP_COV[5, 5] = 0.022758778017
_POP_COV[6, 6] = 0.023671071119

#: Resting-motor-threshold distribution of the labkit population, %MSO.
RMT_MEAN_PERCENT = 48.0
RMT_SD_PERCENT = 7.0
RMT_RANGE_PERCENT = (35.0, 65.0)

# Integration grids for the exact probability (stimulus-axis and noise-floor axes).
_N_X_NODES = 241
_X_SPAN_SD = 7.0
_N_NOISE_NODES = 160
_NOISE_TAIL = 1e-7


@dataclass(frozen=True)
class MEPModelParams:
    """Parameters of one virtual subject's MEP model.

    Attributes
    ----------
    offset_percent : float
        Stimulus-axis offset, %MSO: below it (without variability) no fibres are
        recruited. Goetz's ``p5``, re-centred for the labkit RMT distribution.
    midpoint_percent : float
        Effective stimulus (above the offset), %MSO, at which the log-amplitude sigmoid is
        half-way between its bounds. Goetz's ``p3 ** (1 / p4)``.
    slope : float
        Exponent of the sigmoid (dimensionless). Goetz's ``p4``; population median ~2.7.
    saturation_uv : float
        Upper plateau of the noise-free curve, µV. Goetz's ``10 ** p2`` V; median ~3.4 mV.
    sigma_x_percent : float
        SD of the per-trial stimulus-axis shift, %MSO. Goetz's ``p7``; median ~4.9 %MSO.
    sigma_y_log10 : float
        SD of the per-trial response-axis factor, in log10 units. Goetz's ``p6``; median
        ~0.11 (a factor ~1.28).
    noise_location_uv : float
        Location of the GEV noise floor, µV peak-to-peak. Goetz's ``10 ** p1`` V (~8 µV).
    noise_scale_uv : float
        Scale of the GEV noise floor, µV. Goetz: 1.55 µV · 1.5**N(0, 1).
    noise_shape : float
        GEV shape parameter (> 0, heavy upper tail). Goetz: 0.14 · 2**N(0, 1).
    """

    offset_percent: float = 25.0
    midpoint_percent: float = 19.0
    slope: float = 2.7
    saturation_uv: float = 3300.0
    sigma_x_percent: float = 4.9
    sigma_y_log10: float = 0.11
    noise_location_uv: float = 8.3
    noise_scale_uv: float = 1.55
    noise_shape: float = 0.14

    def __post_init__(self) -> None:
        checks = {
            "midpoint_percent": (self.midpoint_percent, 0.0, 200.0),
            "slope": (self.slope, 0.0, 50.0),
            "saturation_uv": (self.saturation_uv, 0.1, 1e6),
            "sigma_x_percent": (self.sigma_x_percent, 0.0, 100.0),
            "sigma_y_log10": (self.sigma_y_log10, 0.0, 5.0),
            "noise_scale_uv": (self.noise_scale_uv, 0.0, 1e3),
            "noise_shape": (self.noise_shape, 0.0, 2.0),
        }
        for name, (value, low, high) in checks.items():
            if not (np.isfinite(value) and low < value <= high):
                raise ValueError(
                    f"MEPModelParams.{name} = {value!r} is outside the allowed range "
                    f"({low}, {high}]"
                )
        if not np.isfinite(self.offset_percent) or not np.isfinite(self.noise_location_uv):
            raise ValueError("MEPModelParams.offset_percent and noise_location_uv must be finite")

    def with_offset(self, offset_percent: float) -> MEPModelParams:
        """Return a copy with another stimulus-axis offset (shifts the whole curve)."""
        values = dict(self.__dict__)
        values["offset_percent"] = float(offset_percent)
        return MEPModelParams(**values)


def _draw_shape(rng: np.random.Generator) -> MEPModelParams:
    """Draw one plausible set of Goetz population parameters (offset not yet centred)."""
    while True:
        v = rng.multivariate_normal(_POP_MEAN, _POP_COV)
        slope = 10.0 ** v[3]
        midpoint = (10.0 ** v[2]) ** (1.0 / slope)
        saturation_uv = 10.0 ** (v[1] + 6.0)
        params = dict(
            offset_percent=0.0,
            midpoint_percent=float(midpoint),
            slope=float(slope),
            saturation_uv=float(saturation_uv),
            sigma_x_percent=float(10.0 ** v[6]),
            sigma_y_log10=float(10.0 ** v[5]),
            noise_location_uv=float(10.0 ** (v[0] + 6.0)),
            noise_scale_uv=float(1.55 * 1.5 ** rng.standard_normal()),
            noise_shape=float(0.14 * 2.0 ** rng.standard_normal()),
        )
        if (500.0 <= saturation_uv <= 15000.0 and 5.0 <= midpoint <= 60.0 and 1.2 <= slope <= 8
                and params["noise_shape"] <= 2.0):  # about 1 draw in 16000 exceeds it
            return MEPModelParams(**params)


class StatisticalMEPModel:
    """One virtual subject's MEP model (Goetz et al. 2014/2019 structure).

    Parameters
    ----------
    params : MEPModelParams
        The subject's parameters.

    Examples
    --------
    >>> model = StatisticalMEPModel.sample(np.random.default_rng(1))
    >>> rmt = model.true_threshold_percent()
    >>> float(model.probability_of_mep(rmt))  # doctest: +ELLIPSIS
    0.5...
    """

    #: A pure function of its parameters: the simulator process hands out copies, so that
    #: ``model.amplitude_uv(x, rng)`` draws from the caller's ``rng`` (labkit.sim.server).
    rpc_by_value = True

    def __init__(self, params: MEPModelParams) -> None:
        self.params = params

    def __repr__(self) -> str:
        return f"StatisticalMEPModel({self.params!r})"

    # -- construction ------------------------------------------------------------------
    @classmethod
    def sample(cls, rng: np.random.Generator) -> StatisticalMEPModel:
        """Draw one subject from the population distribution.

        Shape and variability parameters come from the Goetz population; the offset is
        then set so that the subject's 50 µV resting motor threshold follows a normal
        distribution (48 ± 7 %MSO) truncated to 35-65 %MSO.

        Parameters
        ----------
        rng : numpy.random.Generator
            Source of randomness (seed it for a reproducible subject).

        Returns
        -------
        StatisticalMEPModel
        """
        shape = _draw_shape(rng)
        low, high = RMT_RANGE_PERCENT
        while True:
            target = rng.normal(RMT_MEAN_PERCENT, RMT_SD_PERCENT)
            if low <= target <= high:
                break
        base = cls(shape).true_threshold_percent()
        return cls(shape.with_offset(target - base))

    # -- the curve ---------------------------------------------------------------------
    def median_log10_uv(self, effective_percent: np.ndarray) -> np.ndarray:
        """Noise-free log10 amplitude (µV) of the recruitment curve.

        Parameters
        ----------
        effective_percent : array_like
            Effective stimulus above the offset, %MSO (already including any shift).
        """
        p = self.params
        x = np.maximum(np.asarray(effective_percent, dtype=float), 1e-12)
        high = np.log10(p.saturation_uv)
        with np.errstate(over="ignore"):
            ratio = (p.midpoint_percent / x) ** p.slope
        return LOW_LOG10_UV + (high - LOW_LOG10_UV) / (1.0 + ratio)

    def _noise_quantile(self, u: np.ndarray) -> np.ndarray:
        p = self.params
        return p.noise_location_uv + p.noise_scale_uv / p.noise_shape * (
            (-np.log(u)) ** (-p.noise_shape) - 1.0
        )

    def _noise_cdf(self, n_uv: np.ndarray) -> np.ndarray:
        p = self.params
        z = 1.0 + p.noise_shape * (np.asarray(n_uv, float) - p.noise_location_uv) / (
            p.noise_scale_uv
        )
        z = np.maximum(z, 1e-300)
        return np.exp(-(z ** (-1.0 / p.noise_shape)))

    # -- sampling ------------------------------------------------------------------------
    def amplitudes_uv(
        self,
        intensity_percent: np.ndarray,
        rng: np.random.Generator,
        excitability: float | np.ndarray = 0.0,
        signal_gain: float = 1.0,
    ) -> np.ndarray:
        """Draw one trial's peak-to-peak amplitude per intensity (vectorised).

        Parameters
        ----------
        intensity_percent : array_like
            Stimulator output, %MSO.
        rng : numpy.random.Generator
            Source of the trial-to-trial variability.
        excitability : float or array_like
            Additive shift of the stimulus axis, %MSO (positive = more excitable).
        signal_gain : float
            Factor on the evoked signal (not on the noise floor), e.g. a paired-pulse
            inhibition or facilitation; 1 = none.

        Returns
        -------
        numpy.ndarray
            Peak-to-peak amplitudes, µV, same shape as ``intensity_percent``.
        """
        p = self.params
        x = np.asarray(intensity_percent, dtype=float)
        if not np.all(np.isfinite(x)):
            raise ValueError(f"intensity_percent must be finite, got {intensity_percent!r}")
        shape = x.shape
        eps_x = rng.standard_normal(shape) * p.sigma_x_percent
        eps_y = rng.standard_normal(shape) * p.sigma_y_log10
        u = rng.random(shape)
        u = np.clip(u, 1e-300, 1.0 - 1e-16)
        effective = x + excitability - p.offset_percent + eps_x
        signal = 10.0 ** (self.median_log10_uv(effective) + eps_y)
        if signal_gain != 1.0:
            signal = signal * float(signal_gain)
        total = signal + self._noise_quantile(u)
        return np.maximum(total, 0.0)

    def amplitude_uv(
        self, intensity_percent: float, rng: np.random.Generator, excitability: float = 0.0,
        signal_gain: float = 1.0,
    ) -> float:
        """Draw one trial's peak-to-peak MEP amplitude.

        Parameters
        ----------
        intensity_percent : float
            Stimulator output, %MSO.
        rng : numpy.random.Generator
            Source of the trial-to-trial variability.
        excitability : float
            Additive shift of the stimulus axis, %MSO (e.g. from the mu phase); 0 = neutral.
        signal_gain : float
            Factor on the evoked signal (paired-pulse effects); 1 = none.

        Returns
        -------
        float
            Peak-to-peak amplitude, µV.
        """
        return float(self.amplitudes_uv(np.asarray(float(intensity_percent)), rng, excitability,
                                        signal_gain))

    def mean_amplitude_uv(self, intensity_percent: float, excitability: float = 0.0,
                          signal_gain: float = 1.0) -> float:
        """Expected peak-to-peak amplitude of one trial, µV (exact, no sampling).

        ``gain · E[10^(g(x + s + εx) + εy)] + E[noise]``: the stimulus-axis shift is integrated
        by quadrature (±7 SD), the response-axis factor in closed form
        (``E[10^εy] = exp((σy·ln 10)² / 2)``) and the GEV noise floor by its mean
        (``μ + σ(Γ(1 − ξ) − 1)/ξ``). The clipping at 0 µV of the sampled amplitudes is
        negligible (amplitudes are positive by construction).
        """
        from scipy.special import gamma

        p = self.params
        ex, wx, _, _ = self._grids
        g = self.median_log10_uv(float(intensity_percent) + excitability - p.offset_percent
                                 + ex)
        signal = float(wx @ 10.0 ** g) * float(np.exp((p.sigma_y_log10 * np.log(10.0)) ** 2
                                                      / 2.0))
        noise = p.noise_location_uv + p.noise_scale_uv * (gamma(1.0 - p.noise_shape) - 1.0) / (
            p.noise_shape)
        return float(signal_gain) * signal + float(noise)

    # -- exact probabilities --------------------------------------------------------------
    @cached_property
    def _grids(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Quadrature nodes and weights over the stimulus shift and the noise floor."""
        p = self.params
        if p.sigma_x_percent > 0:
            z = np.linspace(-_X_SPAN_SD, _X_SPAN_SD, _N_X_NODES)
            wx = np.exp(-0.5 * z * z)
            wx /= wx.sum()
            ex = z * p.sigma_x_percent
        else:
            ex, wx = np.zeros(1), np.ones(1)
        # Noise floor: nodes between extreme quantiles, weights = exact CDF increments.
        u = np.linspace(_NOISE_TAIL, 1.0 - _NOISE_TAIL, _N_NOISE_NODES + 1)
        edges = self._noise_quantile(u)
        cdf = self._noise_cdf(edges)
        wn = np.diff(cdf)
        nodes = 0.5 * (edges[1:] + edges[:-1])
        return ex, wx, nodes, wn / wn.sum()

    def probability_of_mep(
        self,
        intensity_percent: float | np.ndarray,
        criterion_uv: float = 50.0,
        excitability: float = 0.0,
    ) -> float | np.ndarray:
        """Probability that one trial's amplitude reaches the criterion.

        Computed by numerical integration over the stimulus-axis shift (Gaussian
        quadrature on ±7 SD) and over the noise floor (its exact CDF increments); the
        response-axis variability is integrated in closed form (normal CDF in log10).

        Parameters
        ----------
        intensity_percent : float or array_like
            Stimulator output, %MSO.
        criterion_uv : float
            Peak-to-peak criterion, µV (50 µV at rest).
        excitability : float
            Additive stimulus-axis shift, %MSO.

        Returns
        -------
        float or numpy.ndarray
            P(amplitude >= criterion) per intensity.
        """
        if not criterion_uv > 0:
            raise ValueError(f"criterion_uv must be > 0, got {criterion_uv!r}")
        p = self.params
        x = np.asarray(intensity_percent, dtype=float)
        scalar = x.ndim == 0
        ex, wx, nodes, wn = self._grids
        # Needed signal so that signal + noise >= criterion; non-positive => always.
        need = criterion_uv - nodes  # (B,)
        positive = need > 0
        log_need = np.log10(np.where(positive, need, 1.0))
        flat = x.reshape(-1)
        out = np.empty(flat.shape)
        for i, xi in enumerate(flat):
            g = self.median_log10_uv(xi + excitability - p.offset_percent + ex)  # (A,)
            if p.sigma_y_log10 > 0:
                ps = ndtr((g[:, None] - log_need[None, :]) / p.sigma_y_log10)
            else:
                ps = (g[:, None] >= log_need[None, :]).astype(float)
            ps = np.where(positive[None, :], ps, 1.0)
            out[i] = float(wx @ ps @ wn)
        out = np.clip(out, 0.0, 1.0)
        return float(out[0]) if scalar else out.reshape(x.shape)

    def true_threshold_percent(self, criterion_uv: float = 50.0) -> float:
        """Intensity (%MSO) at which P(amplitude >= criterion) = 0.5.

        Parameters
        ----------
        criterion_uv : float
            Peak-to-peak criterion, µV.

        Returns
        -------
        float
            The threshold, %MSO (not rounded to the stimulator grid; may exceed 100).
        """
        key = float(criterion_uv)
        cache = self.__dict__.setdefault("_threshold_cache", {})
        if key not in cache:
            def f(x: float) -> float:
                return self.probability_of_mep(x, key) - 0.5

            low = self.params.offset_percent - 10 * self.params.sigma_x_percent - 1.0
            high = self.params.offset_percent + 400.0
            if f(low) >= 0 or f(high) <= 0:
                raise ValueError(
                    f"criterion_uv = {criterion_uv} µV is never (or always) reached by this "
                    f"subject between {low:.0f} and {high:.0f} %MSO"
                )
            cache[key] = float(brentq(f, low, high, xtol=1e-6))
        return cache[key]


def sample_population(n: int, seed: int) -> list[StatisticalMEPModel]:
    """Draw ``n`` virtual subjects, reproducibly.

    Parameters
    ----------
    n : int
        Number of subjects (>= 0).
    seed : int
        Seed of the population; the same seed gives the same subjects.

    Returns
    -------
    list of StatisticalMEPModel
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    return [StatisticalMEPModel.sample(rng) for _ in range(n)]
