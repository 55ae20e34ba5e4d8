"""The train-duration table (Rossi 2009, after Wassermann 1998 / Chen 1997) as data.

Pure lookup: which cell governs a train at a given frequency and intensity, and how long
that train may last. The values live in ``labkit/data/rossi2009_train_duration.toml``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np

from labkit.errors import ConfigError

#: The shipped table file.
ROSSI2009_PATH = Path(str(files("labkit").joinpath("data", "rossi2009_train_duration.toml")))


@dataclass(frozen=True)
class TableCell:
    """The cell of the table that limits a train.

    Attributes
    ----------
    frequency_hz : float
        Row of the table.
    intensity_rmt_percent : float
        Column of the table, % RMT.
    max_train_s : float
        The maximum train duration in that cell, s.
    longest_tested : bool
        The cell is printed with ">" in the table: the longest duration tested without
        adverse effects rather than a duration shown to be unsafe beyond.
    """

    frequency_hz: float
    intensity_rmt_percent: float
    max_train_s: float
    longest_tested: bool = False

    def describe(self, table_name: str) -> str:
        """``"Rossi 2009 table, row 20 Hz, column 120 %"`` (plus the ">" flag)."""
        text = (
            f"{table_name}, row {self.frequency_hz:g} Hz, column "
            f"{self.intensity_rmt_percent:g} %"
        )
        if self.longest_tested:
            text += (f"; '>{self.max_train_s:g}' in the table: the longest train tested, "
                     "not a proven limit")
        return text


@dataclass(frozen=True)
class TrainDurationTable:
    """Maximum single-train duration by frequency and intensity.

    Attributes
    ----------
    frequencies_hz : tuple of float
        Row labels, increasing.
    intensities_rmt_percent : tuple of float
        Column labels (% RMT), increasing.
    max_train_s : tuple of tuple of float
        ``max_train_s[row][column]`` in seconds.
    citation : str
        Where the values come from.
    short_name : str
        How messages name the table (``"Rossi 2009 table"``).
    longest_tested : tuple of tuple of bool | None
        Per cell, whether the table prints it with ">" (longest tested).
    """

    frequencies_hz: tuple[float, ...]
    intensities_rmt_percent: tuple[float, ...]
    max_train_s: tuple[tuple[float, ...], ...]
    citation: str
    short_name: str = "Rossi 2009 table"
    longest_tested: tuple[tuple[bool, ...], ...] | None = None

    def __post_init__(self) -> None:
        grid = np.asarray(self.max_train_s, dtype=float)
        if grid.shape != (len(self.frequencies_hz), len(self.intensities_rmt_percent)):
            raise ConfigError(
                f"max_train_s must be {len(self.frequencies_hz)} rows × "
                f"{len(self.intensities_rmt_percent)} columns (got shape {grid.shape})",
                field="max_train_s",
            )
        if np.any(np.diff(self.frequencies_hz) <= 0) or np.any(
            np.diff(self.intensities_rmt_percent) <= 0
        ):
            raise ConfigError("table rows and columns must be strictly increasing",
                              field="frequencies_hz")
        if not np.all(np.isfinite(grid)) or np.any(grid <= 0):
            raise ConfigError("table durations must be finite and > 0 s", field="max_train_s")
        if self.longest_tested is not None and np.shape(self.longest_tested) != grid.shape:
            raise ConfigError(f"longest_tested must have the shape of max_train_s "
                              f"{grid.shape}", field="longest_tested")

    def cell(self, frequency_hz: float, intensity_rmt_percent: float) -> TableCell | None:
        """The governing (strictest bracketing) cell, or ``None`` outside the table.

        Below the lowest frequency the first row applies, below the lowest intensity the
        first column; between table points the stricter (shorter) neighbour applies.
        Above the highest row or column there is no cell.
        """
        rows = _bracket(self.frequencies_hz, frequency_hz)
        cols = _bracket(self.intensities_rmt_percent, intensity_rmt_percent)
        if rows is None or cols is None:
            return None
        best: TableCell | None = None
        for r in rows:
            for c in cols:
                value = self.max_train_s[r][c]
                if best is None or value <= best.max_train_s:  # ties: the higher neighbour
                    tested = bool(self.longest_tested[r][c]) if self.longest_tested else False
                    best = TableCell(self.frequencies_hz[r], self.intensities_rmt_percent[c],
                                     value, tested)
        return best

    def is_within(self, other: TrainDurationTable) -> list[str]:
        """Cells where ``self`` allows more than ``other`` (empty: at least as strict).

        Checked at every row/column of both tables, so a table with a different grid is
        compared where it matters.
        """
        looser = []
        freqs = sorted(set(self.frequencies_hz) | set(other.frequencies_hz))
        ints = sorted(set(self.intensities_rmt_percent) | set(other.intensities_rmt_percent))
        for f in freqs:
            for i in ints:
                mine = self.cell(f, i)
                ref = other.cell(f, i)
                if mine is None:
                    continue
                if ref is None or mine.max_train_s > ref.max_train_s + 1e-12:
                    allowed = "nothing" if ref is None else f"{ref.max_train_s:g} s"
                    looser.append(
                        f"{f:g} Hz at {i:g} % RMT: {mine.max_train_s:g} s > {allowed} "
                        f"({other.short_name})"
                    )
        return looser

    def scaled(self, factor: float) -> TrainDurationTable:
        """A copy with every duration multiplied by ``factor`` (< 1 makes it stricter)."""
        if factor <= 0:
            raise ConfigError(f"factor must be > 0 (got {factor!r})", field="factor")
        return TrainDurationTable(
            self.frequencies_hz,
            self.intensities_rmt_percent,
            tuple(tuple(v * factor for v in row) for row in self.max_train_s),
            self.citation,
            f"{self.short_name} × {factor:g}",
            self.longest_tested,
        )


def _bracket(points: tuple[float, ...], x: float) -> tuple[int, ...] | None:
    """Indices of the table points around ``x`` (one if exact or below the first)."""
    tol = 1e-9
    if x <= points[0] + tol:
        return (0,)
    if x > points[-1] + tol:
        return None
    for i, p in enumerate(points):
        if abs(x - p) <= tol:
            return (i,)
        if p > x:
            return (i - 1, i)
    return None  # pragma: no cover - unreachable


def load_table(path: str | Path = ROSSI2009_PATH) -> TrainDurationTable:
    """Read a train-duration table from TOML.

    Parameters
    ----------
    path : str or Path
        A file with ``citation``, ``intensities_rmt_percent`` and ``[[rows]]`` of
        ``frequency_hz`` and ``max_train_s``.

    Returns
    -------
    TrainDurationTable
        The validated table.
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        rows = sorted(raw["rows"], key=lambda r: r["frequency_hz"])
        table = TrainDurationTable(
            frequencies_hz=tuple(float(r["frequency_hz"]) for r in rows),
            intensities_rmt_percent=tuple(float(v) for v in raw["intensities_rmt_percent"]),
            max_train_s=tuple(tuple(float(v) for v in r["max_train_s"]) for r in rows),
            citation=str(raw["citation"]),
            short_name=str(raw.get("short_name", path.stem)),
            longest_tested=(tuple(tuple(bool(v) for v in r["longest_tested"]) for r in rows)
                            if all("longest_tested" in r for r in rows) else None),
        )
    except ConfigError as exc:
        raise ConfigError(str(exc), file=str(path), field=exc.field) from None
    except KeyError as exc:
        raise ConfigError("missing key in train-duration table", file=str(path),
                          field=str(exc.args[0])) from None
    except (OSError, tomllib.TOMLDecodeError, TypeError, ValueError) as exc:
        raise ConfigError(f"cannot read train-duration table: {exc}", file=str(path)) from None
    return table


#: The Rossi 2009 table, loaded once.
ROSSI_2009: TrainDurationTable = load_table()
