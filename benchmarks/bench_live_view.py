"""Update rate of the live MEP view, as JSON lines.

1. ``kernel``: inside a real IPython kernel (jupyter_client), a background thread adds
   5 kHz sweeps (-50..100 ms, 750 samples) to an unthrottled :class:`MEPView` as fast as
   it can; every add is a full redraw (20 overlaid sweeps + amplitude plot) sent as comm
   messages. Baseline in the same run: a plain ``Label.value`` update (no-op widget
   update). While the feeder runs, the kernel's main thread answers ``execute`` requests;
   their round-trip time shows whether the view blocks the kernel.
2. ``browser`` (when Debian's chromium and Playwright are there): the same in JupyterLab,
   counting in the page (MutationObserver) how many redraws actually reached the DOM per
   second, for the default view (throttled to 30/s) and an unthrottled one, against a
   plain Label updated as fast as possible.

Run: ``.venv/bin/python benchmarks/bench_live_view.py``.
"""

from __future__ import annotations

import json
import math
import queue
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

FEED_SECONDS = 2.0

KERNEL_SETUP = """
import threading, time, numpy as np, ipywidgets as widgets
from labkit.widgets import MEPView
t = np.arange(-50.0, 100.0, 0.2)
rng = np.random.default_rng(0)
sweeps = [np.sin(t / 3) * a + rng.normal(0, 5, t.size) for a in rng.uniform(20, 500, 50)]
view = MEPView(max_rate_hz=None)
panel_view = MEPView()         # what the panels use: at most 30 redraws/s
label = widgets.Label()
result = {}
def feed_panel_view(seconds):
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        panel_view.add_sweep(t, sweeps[n % 50], 100.0 + n); n += 1
        time.sleep(0.002)
    result["panel"] = panel_view.throttle.renders / (time.perf_counter() - t0)
def feed(kind, seconds, pause_s=0.0):
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        if kind == "mep":
            view.add_sweep(t, sweeps[n % 50], 100.0 + n)
        else:
            label.value = str(n)
        n += 1
        if pause_s:
            time.sleep(pause_s)
    result[kind] = n / (time.perf_counter() - t0)
"""


def _emit(**record) -> None:
    print(json.dumps(record, sort_keys=True), flush=True)


class _IOPubDrain(threading.Thread):
    """Reads and discards the kernel's IOPub messages, as a frontend would, in the background.

    The floods measured here (thousands of comm messages per second) queue up on IOPub
    ahead of the kernel's ``status: idle``; waiting for that status (what
    ``execute_interactive`` does) means reading the whole backlog first, which on a loaded
    machine outlasts any fixed timeout, and ZMQ drops IOPub messages beyond its high-water
    mark, so the status itself may never come. Completion is therefore taken from the
    execute reply on the shell channel (never dropped, never behind the flood), and IOPub
    is only drained.
    """

    def __init__(self, kc) -> None:
        super().__init__(daemon=True, name="iopub-drain")
        self.kc = kc
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.kc.get_iopub_msg(timeout=0.1)
            except queue.Empty:
                pass


def _execute(kc, code: str, timeout_s: float = 60.0, **options) -> dict:
    """Run ``code`` in the kernel; the content of its execute reply (shell channel)."""
    msg_id = kc.execute(code, **options)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            reply = kc.get_shell_msg(timeout=max(deadline - time.monotonic(), 0.0))
        except queue.Empty:
            raise TimeoutError(f"the kernel did not reply to {code!r} within "
                               f"{timeout_s:.0f} s") from None
        if reply["parent_header"].get("msg_id") != msg_id:
            continue
        content = reply["content"]
        if content["status"] != "ok":
            raise RuntimeError(f"{code!r} failed in the kernel: {content.get('ename')}: "
                               f"{content.get('evalue')}")
        return content


def _value(kc, expression: str) -> str:
    """``repr`` of ``expression`` evaluated in the kernel (a user expression of the reply)."""
    result = _execute(kc, "", user_expressions={"x": expression})["user_expressions"]["x"]
    if result["status"] != "ok":
        raise RuntimeError(f"{expression!r} failed in the kernel: {result.get('evalue')}")
    return result["data"]["text/plain"]


def bench_kernel() -> None:
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3")
    drain = _IOPubDrain(kc)
    drain.start()
    try:
        _execute(kc, KERNEL_SETUP)
        rates = {}
        for kind in ("label", "mep", "panel"):
            target = ("feed_panel_view, args=(" if kind == "panel"
                      else f"feed, args=({kind!r}, ")
            _execute(kc, f"th = threading.Thread(target={target}{FEED_SECONDS},)); th.start()",
                     timeout_s=30)
            rtts = [math.nan]
            # an unpaced flood of updates holds the GIL and starves the kernel (that is why
            # the panels throttle): time the kernel only while the panel's view is fed
            t_end = time.perf_counter() + (FEED_SECONDS - 0.2 if kind == "panel" else 0.0)
            while time.perf_counter() < t_end:
                t0 = time.perf_counter()
                _execute(kc, "1 + 1")
                rtts.append((time.perf_counter() - t0) * 1000.0)
            _execute(kc, "th.join()")
            rate = float(_value(kc, f"result[{kind!r}]"))
            rtts = [x for x in rtts if x == x] or [math.nan]
            rates[kind] = (rate, statistics.median(rtts), max(rtts), len(rtts))
        _emit(bench="live_view", where="kernel", figure="updates_per_s",
              mep_view_unthrottled=round(rates["mep"][0], 1),
              mep_view_panel_default=round(rates["panel"][0], 1),
              baseline_label=round(rates["label"][0], 1),
              execute_rtt_median_ms_during_panel_view=round(rates["panel"][1], 2),
              execute_rtt_max_ms_during_panel_view=round(rates["panel"][2], 2),
              n_sweeps_overlaid=20, samples_per_sweep=750)
    finally:
        drain.stopped.set()
        drain.join(timeout=5)
        kc.stop_channels()
        km.shutdown_kernel(now=True)


BROWSER_CELL = KERNEL_SETUP + """
throttled = MEPView()          # what the panels use: at most 30 redraws/s
throttled.add_class("bench-throttled"); view.add_class("bench-unthrottled")
label.add_class("bench-label")
def feed_throttled(seconds):
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        throttled.add_sweep(t, sweeps[n % 50], 100.0 + n); n += 1
        time.sleep(0.002)
    result["throttled"] = n / (time.perf_counter() - t0)
def run_all():
    # offered load: one update every ~2 ms in every phase (a flood of 10,000 label
    # updates per second would only measure how long the browser takes to drain it)
    time.sleep(4.0)            # the page installs its observers meanwhile
    feed_throttled(FEED_S); time.sleep(0.5)
    feed("mep", FEED_S, 0.002); time.sleep(0.5)
    feed("label", FEED_S, 0.002)
    time.sleep(1.0)
    done.value = "bench done"
done = widgets.Label("bench running"); done.add_class("bench-done")
threading.Thread(target=run_all, daemon=True).start()
widgets.VBox([done, label, throttled, view])
""".replace("FEED_S", str(FEED_SECONDS))

OBSERVE_JS = """
() => {
  window.benchTimes = {};
  const watch = (name, selector) => {
    const el = document.querySelector(selector);
    window.benchTimes[name] = [];
    new MutationObserver(() => window.benchTimes[name].push(performance.now()))
      .observe(el, {childList: true, characterData: true, subtree: true});
  };
  watch('throttled', '.bench-throttled .labkit-mep-summary');
  watch('unthrottled', '.bench-unthrottled .labkit-mep-summary');
  watch('label', '.bench-label');
  return true;
}
"""


def _rate(times_ms: list[float]) -> float:
    """DOM updates per second of feeding (the browser may batch them: count, not span)."""
    return len(times_ms) / FEED_SECONDS


def bench_browser() -> None:
    sys.path.insert(0, str(REPO))
    from tests.browser_helpers import CHROMIUM, jupyter_lab, launch_chromium, wait_kernel_idle

    if not Path(CHROMIUM).exists():
        _emit(bench="live_view", where="browser", skipped=f"no chromium at {CHROMIUM}")
        return
    import nbformat
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(BROWSER_CELL)])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                     "language": "python"}
        path = Path(tmp) / "bench_live_view.ipynb"
        nbformat.write(nb, path)
        with jupyter_lab([path], Path(tmp) / "lab") as server, sync_playwright() as pw:
            browser = launch_chromium(pw)
            try:
                page = browser.new_page(viewport={"width": 1200, "height": 1600})
                server.start_kernel_session(path.name)
                page.goto(server.url(f"lab/tree/{path.name}"))
                page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=90_000)
                wait_kernel_idle(page)
                page.wait_for_timeout(1500)
                page.locator(".jp-CodeCell").first.click()
                page.keyboard.press("Shift+Enter")
                page.wait_for_selector(".bench-label", timeout=60_000)
                page.wait_for_selector(".bench-unthrottled .labkit-mep-summary")
                page.evaluate(OBSERVE_JS)
                page.locator(".bench-done", has_text="bench done").wait_for(timeout=60_000)
                page.wait_for_timeout(500)
                times = page.evaluate("() => window.benchTimes")
            finally:
                browser.close()
    _emit(bench="live_view", where="browser", figure="dom_updates_per_s",
          offered_every_ms=2,
          mep_view_throttled_30hz=round(_rate(times["throttled"]), 1),
          mep_view_unthrottled=round(_rate(times["unthrottled"]), 1),
          baseline_label=round(_rate(times["label"]), 1),
          n_updates={k: len(v) for k, v in times.items()})


if __name__ == "__main__":
    bench_kernel()
    bench_browser()
