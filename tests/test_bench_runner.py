"""``make bench`` runs every benchmark to the end and says which failed and why."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

RUNNER = Path(__file__).resolve().parents[1] / "benchmarks" / "run_all.py"


def _bench(folder: Path, name: str, body: str) -> None:
    (folder / f"{name}.py").write_text(textwrap.dedent(body), encoding="utf-8")


def test_a_failing_or_hanging_benchmark_is_reported_and_the_others_still_run(tmp_path):
    benches = tmp_path / "benchmarks"
    benches.mkdir()
    ok = 'import json; print(json.dumps({"bench": "%s", "figure": 1}))\n'
    _bench(benches, "bench_a_ok", ok % "a")
    _bench(benches, "bench_b_raises", """
        import json
        print(json.dumps({"bench": "b", "figure": 2}), flush=True)
        def measure():
            raise TimeoutError("Timeout waiting for output\\n  refused: why\\n  ok: fine")
        measure()
    """)
    _bench(benches, "bench_c_hangs", "import time\ntime.sleep(600)\n")
    _bench(benches, "bench_d_exits", "import sys\nprint('no figure', file=sys.stderr)\n"
                                     "sys.exit(3)\n")
    _bench(benches, "bench_e_ok", ok % "e")
    _bench(benches, "helper_not_a_bench", "raise SystemExit(9)\n")
    # the ceiling stops the hanging one; the others, even on a loaded machine where an
    # interpreter takes seconds to start (3 s was seen to stop one that exits at once),
    # finish well within it
    proc = subprocess.run([sys.executable, str(RUNNER), "--dir", str(benches),
                           "--timeout-s", "20"], capture_output=True, text=True, timeout=180)
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert proc.returncode == 1
    assert [line.get("figure") for line in lines if "figure" in line] == [1, 2, 1]
    failed = {line["bench"]: line["reason"] for line in lines if line.get("status") == "failed"
              and line["bench"] != "all"}
    assert failed == {
        "bench_b_raises": "TimeoutError: Timeout waiting for output; refused: why; ok: fine",
        "bench_c_hangs": "timed out after 20 s (stopped)",
        "bench_d_exits": "exit status 3; last line: no figure",
    }
    assert lines[-1] == {"bench": "all", "status": "failed", "ran": 5,
                         "failed": ["bench_b_raises", "bench_c_hangs", "bench_d_exits"]}
    assert "Traceback" in proc.stderr  # the failing benchmark's own output is kept


def test_all_passing_exits_zero(tmp_path):
    _bench(tmp_path, "bench_only", "print('{}')\n")
    proc = subprocess.run([sys.executable, str(RUNNER), "--dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == {"bench": "all", "status": "ok",
                                                        "ran": 1, "failed": []}
