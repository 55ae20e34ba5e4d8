"""``pip install .`` (not editable) gives a working labkit: profiles, protocols, tables, rig.

The wheel is built from a copy of the package sources (so nothing outside ``labkit/`` can
leak in and the work tree gets no ``build/``), installed with ``--no-deps`` into a fresh
virtual environment whose only link to this one is a ``.pth`` line naming this
environment's site-packages (the heavy dependencies are reused, not downloaded; that path
comes after the new environment's own site-packages, and this environment's editable
hook is not run from there). A subprocess started outside the source tree then imports
labkit from the new environment, lists the shipped profiles and protocols, checks a
protocol against the shipped safety table, and fires one pulse on the simulated rig, with
the simulated lab in that process and in a child process of its own.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import site
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHIPPED_PROFILES = {"simulated", "simulated-eeg", "magstim-200", "magstim-bistim",
                    "magstim-rapid2", "magventure-x100", "deymed-duomag-mp"}
SHIPPED_PROTOCOLS = {"m1_10hz_pain_1000", "m1_20hz", "itbs", "ctbs", "sham_m1_10hz_pain"}

CHECK = textwrap.dedent("""
    import json, sys
    import labkit
    from labkit.profiles import list_profiles, load_profile
    from labkit.protocols import list_protocols, load_protocol
    from labkit.safety import check_protocol

    protocol = load_protocol("m1_10hz_pain_1000")
    verdict = check_protocol(protocol, rmt_percent=50)
    fired, delivered, ptp_uv = [], [], []
    for where in ("inline", "child"):  # the simulated lab in this process, then in its own
        with labkit.open_rig("simulated", seed=1, sim_process=where) as rig:
            rig.stimulator.add_pulse_listener(fired.append)
            ptp_uv.append(float(rig.pulse(60).amplitude_uv))
            delivered.append(rig.pulses_delivered)
    print(json.dumps({
        "labkit": labkit.__file__,
        "profiles": list_profiles(),
        "protocols": list_protocols(),
        "profile_path": str(load_profile("magstim-200").path),
        "protocol_path": str(protocol.path),
        "protocol_ok": bool(verdict.ok),
        "ptp_uv": ptp_uv,
        "delivered": delivered,
        "fired": len(fired),
    }))
""")


def _site_packages(python: Path) -> Path:
    """The site-packages folder of the environment of ``python`` (asked from it)."""
    code = "import sysconfig; print(sysconfig.get_path('purelib'))"
    out = subprocess.run([str(python), "-c", code], check=True, capture_output=True, text=True,
                         timeout=60)
    return Path(out.stdout.strip())


def _build_wheel(src: Path, out: Path) -> Path:
    """A wheel of a copy of the package sources (pyproject, README, labkit/)."""
    src.mkdir(parents=True)
    shutil.copy2(REPO / "pyproject.toml", src / "pyproject.toml")
    shutil.copy2(REPO / "README.md", src / "README.md")
    shutil.copytree(REPO / "labkit", src / "labkit",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--no-index", "--quiet", "--wheel-dir", str(out), str(src)],
                   check=True, cwd=src, capture_output=True, text=True, timeout=180)
    (wheel,) = out.glob("labkit-*.whl")
    return wheel


def test_wheel_in_a_fresh_venv_opens_the_simulated_rig(tmp_path):
    wheel = _build_wheel(tmp_path.joinpath("src").resolve(), tmp_path / "dist")
    shipped = {Path(n) for n in zipfile.ZipFile(wheel).namelist()}
    data = REPO / "labkit" / "data"
    for path in sorted(data.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            assert Path("labkit") / path.relative_to(REPO / "labkit") in shipped, path

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    new_site = _site_packages(python)
    new_site.mkdir(parents=True, exist_ok=True)
    # this environment's dependencies, after the new environment's own site-packages
    ours = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (new_site / "zz_labkit_test_deps.pth").write_text("\n".join(ours) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                    "--no-deps", "--no-index", "--quiet", str(wheel)],
                   check=True, capture_output=True, text=True, timeout=180)

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "LABKIT_PATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")  # no lab folders of the user's
    proc = subprocess.run([str(python), "-c", CHECK], cwd=outside, env=env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])

    package = Path(result["labkit"]).resolve().parent
    assert package == (new_site / "labkit").resolve()
    assert not package.is_relative_to(REPO)
    for key in ("profile_path", "protocol_path"):
        assert Path(result[key]).resolve().is_relative_to(package / "data"), result[key]
    assert SHIPPED_PROFILES <= set(result["profiles"])
    assert SHIPPED_PROTOCOLS <= set(result["protocols"])
    assert result["protocol_ok"]
    assert result["delivered"] == [1, 1] and result["fired"] == 2
    assert all(math.isfinite(x) and x > 0 for x in result["ptp_uv"])
