"""Binding the controller to one EEG stream and building its spatial filter."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pylsl

from labkit.errors import ConfigError
from labkit.kernels import hjorth_weights
from labkit.streams import LowLatencyInlet

HJORTH_CENTER = "C3"
HJORTH_NEIGHBOURS = ("FC1", "FC5", "CP1", "CP5")


def open_eeg(
    eeg: str | LowLatencyInlet, source_id: str | None, stype: str | None, timeout_s: float
) -> tuple[LowLatencyInlet, bool]:
    """The low-latency inlet to read, and whether the caller owns (must close) it.

    A stream given by name must come with its ``source_id``: the controller fires from
    network input, so it binds to exactly one stream and refuses anything else.
    """
    if isinstance(eeg, LowLatencyInlet):
        if source_id is not None and eeg.info.source_id() != source_id:
            raise ConfigError(
                f"the inlet is bound to source_id {eeg.info.source_id()!r}, not {source_id!r}",
                field="source_id",
            )
        return eeg, False
    if not isinstance(eeg, str) or not eeg:
        raise ConfigError(
            f"must be an LSL stream name (str) or a LowLatencyInlet, got {eeg!r}", field="eeg"
        )
    if not source_id:
        raise ConfigError(
            f"stream {eeg!r} given without its source_id: the closed loop only binds to a "
            "stream identified by name and source_id (e.g. rig.hardware.eeg_stream.source_id)",
            field="source_id",
        )
    return LowLatencyInlet(eeg, source_id=source_id, stype=stype, timeout_s=timeout_s), True


def channel_labels(inlet: LowLatencyInlet, timeout_s: float = 5.0) -> list[str]:
    """Channel labels from the stream description (``desc/channels/channel/label``).

    A resolved stream info carries no description, so the full one is fetched through a
    short-lived inlet on the same stream. Unlabelled streams get ``ch0``, ``ch1``...
    """
    probe = pylsl.StreamInlet(inlet.info)
    try:
        full = probe.info(timeout=timeout_s)
    finally:
        probe.close_stream()
    labels = []
    ch = full.desc().child("channels").child("channel")
    while not ch.empty() and len(labels) < inlet.n_channels:
        labels.append(ch.child_value("label"))
        ch = ch.next_sibling("channel")
    if len(labels) != inlet.n_channels:
        return [f"ch{i}" for i in range(inlet.n_channels)]
    return labels


def montage(
    labels: Sequence[str],
    weights=None,
    center: str = HJORTH_CENTER,
    neighbours: Sequence[str] = HJORTH_NEIGHBOURS,
) -> np.ndarray:
    """Spatial weights ``(1, n_channels)``: explicit ``weights`` or Hjorth ``center``."""
    if weights is None:
        return hjorth_weights(labels, center, neighbours)
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if w.shape != (1, len(labels)):
        raise ConfigError(
            f"must have {len(labels)} values (one per stream channel {list(labels)}), "
            f"got shape {np.shape(weights)}",
            field="weights",
        )
    return w


def as_chunk(data: np.ndarray) -> np.ndarray:
    """``(n_samples, n_channels)`` inlet data → C-contiguous float64 ``(n_channels, n)``."""
    return np.ascontiguousarray(data.T, dtype=np.float64)
