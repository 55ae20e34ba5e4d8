"""Helpers of the real-browser test: a throw-away JupyterLab server and a headless Chromium.

The server runs from this virtualenv on 127.0.0.1, on a free port, with a random token,
on a temporary copy of the notebooks, and with its own config/runtime/settings/workspace
folders so that nothing from the user's Jupyter set-up leaks in (or is changed).
Chromium is Debian's ``/usr/bin/chromium`` driven by Playwright for Python; a browser
download by Playwright is never attempted.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = os.environ.get("LABKIT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
]
REPO_ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO_ROOT / "test-artifacts"
ERROR_OUTPUT = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _quiet_lab_settings(settings_dir: Path) -> None:
    """No news toasts, no update checks (no internet; toasts cover buttons), no windowing."""
    target = settings_dir / "@jupyterlab" / "apputils-extension"
    target.mkdir(parents=True, exist_ok=True)
    (target / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    # keep every cell in the DOM: with windowing, cells scrolled out of view are detached
    # and the panels the test clicks would come and go with the scroll position
    notebook = settings_dir / "@jupyterlab" / "notebook-extension"
    notebook.mkdir(parents=True, exist_ok=True)
    (notebook / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))


def _copy_without_outputs(src: Path, dst: Path) -> None:
    """Copy a notebook with its outputs cleared, so that only this run's outputs show."""
    data = json.loads(src.read_text(encoding="utf-8"))
    for cell in data.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    data.get("metadata", {}).pop("widgets", None)
    dst.write_text(json.dumps(data, indent=1), encoding="utf-8")


class LabServer:
    """A running JupyterLab; ``url(path)`` gives an authenticated address."""

    def __init__(self, proc: subprocess.Popen, port: int, token: str, root: Path, log: Path):
        self.proc, self.port, self.token, self.root, self.log = proc, port, token, root, log

    def url(self, path: str = "lab") -> str:
        sep = "&" if "?" in path else "?"
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}{sep}token={self.token}"

    def start_kernel_session(self, notebook_name: str, kernel: str = "python3") -> dict:
        """Create the notebook's kernel session through the REST API before the page opens.

        JupyterLab then attaches to it instead of (sometimes) asking "Select Kernel".
        """
        body = json.dumps({"path": notebook_name, "name": notebook_name, "type": "notebook",
                           "kernel": {"name": kernel}}).encode()
        req = urllib.request.Request(self.url("api/sessions"), data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read())

    def log_tail(self, n_chars: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n_chars:]
        except OSError:
            return ""


@contextmanager
def jupyter_lab(notebooks: list[Path], workdir: Path, *, timeout_s: float = 60.0):
    """Start JupyterLab on a copy of ``notebooks`` inside ``workdir``; stop it on exit."""
    root = workdir / "notebooks"
    root.mkdir(parents=True, exist_ok=True)
    for nb in notebooks:
        _copy_without_outputs(nb, root / nb.name)
    for sub in ("config", "runtime", "settings", "workspaces"):
        (workdir / sub).mkdir(exist_ok=True)
    _quiet_lab_settings(workdir / "settings")
    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ)
    env.update({
        "JUPYTER_CONFIG_DIR": str(workdir / "config"),
        "JUPYTER_RUNTIME_DIR": str(workdir / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(workdir / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(workdir / "workspaces"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "PYTHONHASHSEED": "0",
        "MPLBACKEND": "Agg",
    })
    log = workdir / "jupyterlab.log"
    cmd = [
        sys.executable, "-m", "jupyterlab",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
        "--ServerApp.open_browser=False", f"--ServerApp.root_dir={root}",
        "--LabApp.news_url=", "--ServerApp.terminals_enabled=False",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI containers run as root
        cmd.append("--allow-root")
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log_file,
                                stderr=subprocess.STDOUT)
    server = LabServer(proc, port, token, root, log)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited ({proc.returncode}):\n{server.log_tail()}")
            try:
                with urllib.request.urlopen(server.url("api/status"), timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"JupyterLab not up after {timeout_s:.0f} s:\n"
                                   f"{server.log_tail()}")
            time.sleep(0.3)
        yield server
    finally:
        _shutdown(server)


def _shutdown(server: LabServer) -> None:
    """Ask the server to stop (it shuts its kernels down), then make sure it did."""
    try:
        req = urllib.request.Request(server.url("api/shutdown"), method="POST", data=b"")
        urllib.request.urlopen(req, timeout=5).close()
    except OSError:
        pass
    try:
        server.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.proc.terminate()
        try:
            server.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(timeout=5)


def launch_chromium(playwright):
    """Debian's Chromium, headless, with no network side-traffic."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                      headless=True)


def accept_dialogs(page) -> int:
    """Press the default button of any open JupyterLab dialog (e.g. "Select Kernel")."""
    buttons = page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept")
    n = buttons.count()
    for i in range(n):
        try:
            buttons.nth(i).click(timeout=2000)
        except Exception:  # the dialog closed by itself meanwhile
            pass
    return n


def wait_kernel_idle(page, timeout_s: float = 90.0) -> None:
    """Wait until the notebook's kernel reports idle, answering dialogs on the way."""
    indicator = page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        accept_dialogs(page)
        if indicator.count():
            return
        page.wait_for_timeout(250)
    raise TimeoutError(f"the kernel did not become idle within {timeout_s:.0f} s")


def run_all_cells(page) -> None:
    """Run > Run All Cells from JupyterLab's menu bar."""
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator('.lm-Menu-item[data-command="runmenu:run-all"]').click()


def screenshot(page, name: str) -> Path:
    """Full-page screenshot under ``test-artifacts/``."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@contextmanager
def notebook_page(playwright, server: LabServer, notebook_name: str, failure_name: str):
    """Open ``notebook_name`` in a fresh Chromium page, attached to its kernel and idle.

    On any failure inside the block: a screenshot ``<failure_name>.png``, the tail of the
    server log and the notebook's error outputs are written out before the error goes on.
    The browser is closed on exit.
    """
    browser = launch_chromium(playwright)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(30_000)
    try:
        server.start_kernel_session(notebook_name)
        page.goto(server.url(f"lab/tree/{notebook_name}"))
        page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=90_000)
        wait_kernel_idle(page)
        page.wait_for_timeout(1500)  # let the page finish attaching to the kernel
        yield page
    except BaseException:
        screenshot(page, failure_name)
        print(server.log_tail())
        for text in page.locator(ERROR_OUTPUT).all_inner_texts():
            print("notebook error output:", text[-2000:])
        raise
    finally:
        browser.close()
