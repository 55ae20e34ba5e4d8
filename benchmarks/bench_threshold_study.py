"""Quick version of the threshold validation study for ``make bench`` (200 subjects).

Prints one JSON line per method; relative frequency (Rossini-Rothwell) in the same run is
the baseline. The full study is ``benchmarks/threshold_study.py`` (1000 subjects).
"""

from __future__ import annotations

import sys

from threshold_study import main

if __name__ == "__main__":
    sys.exit(main(["--subjects", "200", "--seed", "2026", "--json-only"]))
