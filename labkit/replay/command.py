"""``python -m labkit.replay RUN_OR_SESSION [NOTEBOOK]``: re-execute a notebook on its recording.

The notebook that produced a session runs again under ``pytest --nbval``, in a fresh
kernel whose ``labkit.open_rig(...)`` is served from the session (``LABKIT_REPLAY``, see
:mod:`labkit.replay.rig`). Its stored outputs are the reference: the command exits 0 when
nbval finds every output equal and the notebook delivered every pulse the session logged;
otherwise 1, naming the first diverging cell (nbval's numbering: code cells from 0) and,
when a pulse differed, the pulse with both values. Bad input (no session, no notebook,
a missing or truncated recording) exits 2 with the file and the last usable time.

The replayed notebook writes into a fresh folder (``LABKIT_RUN_DIR``); the recorded run
is only read.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from labkit.replay.rig import REPLAY_ENV, REPORT_ENV
from labkit.replay.source import ReplayError, load_session
from labkit.session.log import LOG_FILE

__all__ = ["ReplayResult", "find_notebook", "find_session", "main", "replay"]

#: File the pytest plugin writes the first failing cell to (JSON), named by this variable.
FAILURE_ENV = "LABKIT_REPLAY_FAILURES"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class ReplayResult:
    """What a replay found.

    Attributes
    ----------
    ok : bool
        Every output equal and every logged pulse delivered.
    verdict : str
        One line: what matched, or the first divergence (cell, pulse, both values).
    cells : int
        Code cells the notebook has (nbval checks each unless told to skip).
    failed_cell : int | None
        First failing code cell, nbval's numbering (0-based, code cells only).
    pulses_logged : int
        Pulses the session delivered.
    pulses_replayed : int
        Pulses the replayed notebook delivered.
    detail : str
        nbval's report of the failing cell (empty when all matched).
    workdir : Path
        Where the replayed run wrote its files.
    """

    ok: bool
    verdict: str
    cells: int
    failed_cell: int | None
    pulses_logged: int
    pulses_replayed: int
    detail: str
    workdir: Path


def find_session(path: str | os.PathLike) -> Path:
    """The one session folder at or under ``path`` (a session or a ``make demo`` run).

    Raises
    ------
    ReplayError
        None found, or several (they are listed).
    """
    path = Path(path)
    if not path.exists():
        raise ReplayError(f"{path}: no such run or session folder")
    if (path / LOG_FILE).is_file():
        return path
    found = sorted(p.parent for p in path.rglob(LOG_FILE))
    if not found:
        raise ReplayError(f"{path}: no session here (no {LOG_FILE} in it or below it)")
    if len(found) > 1:
        listing = ", ".join(str(p.relative_to(path)) for p in found)
        raise ReplayError(f"{path}: {len(found)} sessions here ({listing}); give one of them")
    return found[0]


def find_notebook(path: str | os.PathLike, session: Path) -> Path:
    """The executed notebook beside a run: the one ``.ipynb`` in ``path`` or above ``session``.

    Raises
    ------
    ReplayError
        None or several found (name the notebook then).
    """
    path = Path(path)
    folders = [path] if path.is_dir() else []
    folders += [p for p in session.parents if p not in folders][:4]
    for folder in folders:
        notebooks = sorted(folder.glob("*.ipynb"))
        if len(notebooks) == 1:
            return notebooks[0]
        if len(notebooks) > 1:
            names = ", ".join(n.name for n in notebooks)
            raise ReplayError(f"{folder}: several notebooks ({names}); name the one that "
                              "produced the session")
    raise ReplayError(f"{path}: no executed notebook found beside the session; name it "
                      "(python -m labkit.replay RUN_OR_SESSION NOTEBOOK)")


def _code_cells(notebook: Path) -> int:
    import nbformat

    try:
        nb = nbformat.read(notebook, as_version=4)
    except (OSError, ValueError) as exc:
        raise ReplayError(f"{notebook}: not a readable notebook: {exc}") from exc
    cells = [c for c in nb.cells if c.cell_type == "code"]
    if not any(c.get("outputs") for c in cells):
        raise ReplayError(f"{notebook}: the notebook has no stored outputs to compare; give "
                          "the executed notebook that produced the session")
    return len(cells)


def _read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def _short(detail: str, head: int = 4, tail: int = 10) -> str:
    """nbval's report without colours: its first lines and its last (the error)."""
    keep = [ln for ln in _ANSI.sub("", detail).splitlines() if ln.strip()]
    if len(keep) <= head + tail:
        return "\n".join(keep)
    return "\n".join([*keep[:head], "...", *keep[-tail:]])


def replay(run_or_session: str | os.PathLike, notebook: str | os.PathLike | None = None, *,
           workdir: str | os.PathLike | None = None, cell_timeout_s: int = 900,
           quiet: bool = True) -> ReplayResult:
    """Re-execute the notebook that produced a session against the session's recording.

    Parameters
    ----------
    run_or_session : str | os.PathLike
        A session folder, or a run folder holding one (``make demo``'s ``runs/<time>/``).
    notebook : str | os.PathLike | None
        The executed notebook whose outputs are the reference; default: the one
        ``.ipynb`` in the run folder (or above the session).
    workdir : str | os.PathLike | None
        Folder for the replayed run (default: a new temporary folder).
    cell_timeout_s : int
        nbval's per-cell timeout, s.
    quiet : bool
        Hide pytest's own output.

    Returns
    -------
    ReplayResult

    Raises
    ------
    ReplayError
        No session or notebook; a missing or truncated recording (names the file and the
        last usable time).
    """
    missing = [name for name in ("pytest", "nbval") if importlib.util.find_spec(name) is None]
    if missing:
        raise ReplayError(f"replay compares outputs with nbval under pytest; {missing} not "
                          "installed here: pip install 'labkit[test]' (or pytest nbval)")
    session = find_session(run_or_session)
    notebook = Path(notebook) if notebook is not None else find_notebook(run_or_session,
                                                                         session)
    if not notebook.is_file():
        raise ReplayError(f"{notebook}: no such notebook")
    cells = _code_cells(notebook)
    recorded = load_session(session)  # refuses missing/truncated recordings up front
    work = Path(workdir) if workdir is not None else Path(
        tempfile.mkdtemp(prefix="labkit-replay-"))
    work.mkdir(parents=True, exist_ok=True)
    run_dir = work / "run"
    run_dir.mkdir(exist_ok=True)
    copy = work / notebook.name
    shutil.copyfile(notebook, copy)
    report, failures = work / "replay-report.jsonl", work / "replay-failures.json"
    for stale in (report, failures):
        stale.unlink(missing_ok=True)
    env = dict(os.environ)
    env.update({REPLAY_ENV: str(session.resolve()), REPORT_ENV: str(report),
                FAILURE_ENV: str(failures), "LABKIT_RUN_DIR": str(run_dir)})
    env.setdefault("PYTHONHASHSEED", "0")
    cmd = [sys.executable, "-m", "pytest", "--nbval", copy.name, "-x", "-q",
           "-p", "no:cacheprovider", "-p", "labkit.replay.pytest_report",
           "--nbval-current-env", f"--nbval-cell-timeout={int(cell_timeout_s)}"]
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=quiet, text=True,
                          check=False)
    records = _read_jsonl(report)
    divergence = next((r for r in records if r.get("kind") == "divergence"), None)
    summaries = [r for r in records if r.get("kind") == "summary"]
    replayed = int(summaries[-1]["pulses_replayed"]) if summaries else 0
    logged = len(recorded.pulses)
    failure = json.loads(failures.read_text()) if failures.exists() else None
    failed_cell = failure["cell"] if failure else None
    detail = _short(failure["detail"]) if failure else ""
    where = f"cell {failed_cell}" if failed_cell is not None else "after the last cell"
    if divergence is not None:
        verdict = f"{where}, {divergence['message']}"
    elif failure is not None:
        verdict = f"{where}: {failure['summary']}"
    elif proc.returncode != 0:
        tail = (proc.stdout or "").strip().splitlines()[-3:] if quiet else []
        verdict = "nbval did not run the notebook to the end (pytest exit code " \
                  f"{proc.returncode}) {' '.join(tail)}".strip()
    elif replayed != logged:
        verdict = (f"{where}, pulse {min(replayed, logged) + 1}: the session delivered "
                   f"{logged} pulses, the notebook {replayed}")
    else:
        verdict = (f"all {cells} code cells match the recorded outputs; {replayed} of "
                   f"{logged} pulses replayed")
    ok = (proc.returncode == 0 and divergence is None and failure is None
          and replayed == logged)
    return ReplayResult(ok=ok, verdict=verdict, cells=cells, failed_cell=failed_cell,
                        pulses_logged=logged, pulses_replayed=replayed, detail=detail,
                        workdir=work)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m labkit.replay``; exit 0 equal, 1 diverged, 2 bad input."""
    parser = argparse.ArgumentParser(prog="python -m labkit.replay",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("run_or_session", type=Path,
                        help="a session folder, or a run folder (make demo) holding one")
    parser.add_argument("notebook", type=Path, nargs="?", default=None,
                        help="the executed notebook (default: the one in the run folder)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="folder for the replayed run (default: a temporary folder)")
    parser.add_argument("--verbose", action="store_true", help="show pytest's output")
    args = parser.parse_args(argv)
    try:
        result = replay(args.run_or_session, args.notebook, workdir=args.workdir,
                        quiet=not args.verbose)
    except ReplayError as exc:
        print(f"labkit replay: {exc}", file=sys.stderr)
        return 2
    stream = sys.stdout if result.ok else sys.stderr
    print(f"labkit replay: {'OK' if result.ok else 'DIVERGED'}: {result.verdict}", file=stream)
    if result.detail:
        print(result.detail, file=stream)
    print(f"replayed run: {result.workdir}", file=stream)
    return 0 if result.ok else 1
