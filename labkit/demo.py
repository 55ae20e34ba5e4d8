"""``make demo``: run a full simulated session headless and leave a report under ``runs/``.

The session is a notebook executed top to bottom on the simulated rig (no hardware, no
browser). It writes the session data, the BIDS export and the **session record**
(``session_report.html``, the page a PI signs, and a PDF of it where Chromium is
installed) into the run folder, and a ``summary.json`` whose paths are relative to that
folder. The executed notebook and an HTML rendering of it are kept as the lab notebook.
The demo ends by printing the report's path and the BIDS validator's result.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

RUN_DIR_ENV = "LABKIT_RUN_DIR"
#: Where the demo notebook is looked for when none is given: ``notebooks/`` of the current
#: folder (a clone of the repository), then of the source tree this module runs from (a
#: development install; an installed package ships no notebooks).
NOTEBOOK_DIRS = (Path("notebooks"), Path(__file__).resolve().parents[1] / "notebooks")
DEMO_NOTEBOOKS = ("04_rtms_session.ipynb", "01_single_pulse.ipynb")
#: The session record the demo notebook writes into the run folder.
REPORT_NAME = "session_report.html"


def run_dir() -> Path | None:
    """The demo's output folder when running under ``make demo``, else ``None``."""
    value = os.environ.get(RUN_DIR_ENV)
    return Path(value) if value else None


def _relative(value: object, folder: Path) -> object:
    """Paths (and path strings) under ``folder`` made relative to it, recursively."""
    if isinstance(value, dict):
        return {k: _relative(v, folder) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_relative(v, folder) for v in value]
    if isinstance(value, (str, Path)):
        text = str(value)
        if os.path.isabs(text):
            try:
                return Path(text).resolve().relative_to(folder.resolve()).as_posix()
            except ValueError:
                raise ValueError(f"summary.json takes paths inside the run folder only, got "
                                 f"{text!r}") from None
    return value


def record_summary(summary: dict) -> None:
    """Merge ``summary`` into the demo's ``summary.json`` (no-op outside a demo run).

    Paths are stored relative to the run folder (a path outside it is refused), so the
    folder can be moved or shared without leaking the machine's layout.
    """
    folder = run_dir()
    if folder is None:
        return
    path = folder / "summary.json"
    current = json.loads(path.read_text()) if path.exists() else {}
    current.update(_relative(summary, folder))
    path.write_text(json.dumps(current, indent=2, sort_keys=True, default=str))


def _default_notebook() -> Path:
    for folder in NOTEBOOK_DIRS:
        for name in DEMO_NOTEBOOKS:
            path = folder / name
            if path.exists():
                return path
    searched = ", ".join(str(folder.resolve()) for folder in NOTEBOOK_DIRS)
    raise SystemExit(f"no demo notebook ({', '.join(DEMO_NOTEBOOKS)}) in {searched}; run "
                     "from a clone of the repository or pass --notebook PATH")


def execute_notebook(notebook: Path, out_dir: Path, timeout_s: int = 900) -> Path:
    """Execute ``notebook`` with ``LABKIT_RUN_DIR=out_dir``; write .ipynb and .html there.

    Returns
    -------
    Path
        The session record (``session_report.html``) when the notebook wrote one, else the
        HTML rendering of the executed notebook.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    nb = nbformat.read(notebook, as_version=4)
    os.environ[RUN_DIR_ENV] = str(out_dir)
    client = NotebookClient(nb, timeout=timeout_s, kernel_name="python3",
                            resources={"metadata": {"path": str(notebook.parent)}})
    try:
        client.execute()
    finally:
        nbformat.write(nb, out_dir / notebook.name)
        html, _ = HTMLExporter().from_notebook_node(nb)
        rendered = out_dir / (notebook.stem + ".html")
        rendered.write_text(html, encoding="utf-8")
    report = out_dir / REPORT_NAME
    return report if report.exists() else rendered


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m labkit.demo``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebook", type=Path, default=None,
                        help="notebook to run (default: the full-session notebook)")
    parser.add_argument("--runs", type=Path, default=Path("runs"),
                        help="folder that receives one sub-folder per run")
    args = parser.parse_args(argv)
    notebook = (args.notebook or _default_notebook()).resolve()
    out_dir = (args.runs / time.strftime("%Y%m%d-%H%M%S")).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"labkit demo: running {notebook.name} on the simulated rig ...", flush=True)
    started = time.monotonic()
    try:
        report = execute_notebook(notebook, out_dir)
    except Exception as exc:
        print(f"labkit demo FAILED: {exc}", file=sys.stderr)
        print(f"partial report: {out_dir}", file=sys.stderr)
        return 1
    summary_path = out_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    print(f"\nSession finished in {time.monotonic() - started:.0f} s")
    for key, value in summary.items():
        if isinstance(value, dict):
            print(f"  {key}:")
            for sub_key, sub_value in value.items():
                print(f"    {sub_key}: {sub_value}")
        else:
            print(f"  {key}: {value}")
    print(f"\nNotebook: {out_dir / notebook.name}")
    print(f"Run dir:  {out_dir}")
    pdf = report.with_suffix(".pdf")
    if pdf.exists():
        print(f"PDF:      {pdf}")
    print(f"Report:   {report}")
    print(f"BIDS validator: {summary.get('bids_validator', 'not run')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
