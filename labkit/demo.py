"""``make demo``: run a full simulated session headless and leave a report under ``runs/``.

The session is a notebook executed top to bottom on the simulated rig (no hardware, no
browser). The executed notebook is saved next to an HTML rendering of it, the session
data and the BIDS export; the notebook drops a ``summary.json`` that is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

RUN_DIR_ENV = "LABKIT_RUN_DIR"
REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_NOTEBOOKS = ("04_rtms_session.ipynb", "01_single_pulse.ipynb")


def run_dir() -> Path | None:
    """The demo's output folder when running under ``make demo``, else ``None``."""
    value = os.environ.get(RUN_DIR_ENV)
    return Path(value) if value else None


def record_summary(summary: dict) -> None:
    """Merge ``summary`` into the demo's ``summary.json`` (no-op outside a demo run)."""
    folder = run_dir()
    if folder is None:
        return
    path = folder / "summary.json"
    current = json.loads(path.read_text()) if path.exists() else {}
    current.update(summary)
    path.write_text(json.dumps(current, indent=2, sort_keys=True, default=str))


def _default_notebook() -> Path:
    for name in DEMO_NOTEBOOKS:
        path = REPO_ROOT / "notebooks" / name
        if path.exists():
            return path
    raise SystemExit("no demo notebook found under notebooks/")


def execute_notebook(notebook: Path, out_dir: Path, timeout_s: int = 900) -> Path:
    """Execute ``notebook`` with ``LABKIT_RUN_DIR=out_dir``; write .ipynb and .html there.

    Returns
    -------
    Path
        The HTML report.
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
        report = out_dir / (notebook.stem + ".html")
        report.write_text(html, encoding="utf-8")
    return report


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
    print(f"\nReport:   {report}")
    print(f"Notebook: {out_dir / notebook.name}")
    print(f"Run dir:  {out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
