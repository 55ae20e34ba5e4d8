"""Subprocess for the kill -9 test: stream, record and log until killed.

Usage: ``python tests/helpers_crash.py ROOT STREAM_NAME``

Publishes a 2-channel 2 kHz "EMG" stream whose first channel is a running sample
counter (so gaps are detectable) and a marker stream, records both with a
:class:`labkit.session.Session`, and logs a pulse every 100 ms. Prints ``ready`` once the
recorders run, then keeps going until it is killed (or 60 s pass, as a safety net).
"""

from __future__ import annotations

import json
import sys
import time
import uuid

import numpy as np
import pylsl

from labkit.session import Session

FS_HZ = 2000.0
CHUNK = 20  # 10 ms


def _outlets(name: str) -> tuple[pylsl.StreamOutlet, pylsl.StreamOutlet]:
    info = pylsl.StreamInfo(name, "EMG", 2, FS_HZ, pylsl.cf_float32, uuid.uuid4().hex)
    channels = info.desc().append_child("channels")
    for label in ("FDI", "APB"):
        ch = channels.append_child("channel")
        ch.append_child_value("label", label)
        ch.append_child_value("unit", "microvolts")
        ch.append_child_value("type", "EMG")
    markers = pylsl.StreamInfo(
        name + "-markers", "Markers", 1, pylsl.IRREGULAR_RATE, pylsl.cf_string, uuid.uuid4().hex
    )
    return pylsl.StreamOutlet(info), pylsl.StreamOutlet(markers)


def main(root: str, name: str) -> None:
    emg, markers = _outlets(name)
    session = Session(root, "01", "01")
    session.record(name, "emg", duplicate_wait_s=0.0)
    session.record(name + "-markers", "markers", duplicate_wait_s=0.0)
    time.sleep(0.3)  # let the inlets connect before the first sample
    print("ready", flush=True)
    counter = 0
    pulse = 0
    start = pylsl.local_clock()
    next_pulse = start
    while pylsl.local_clock() - start < 60.0:
        now = pylsl.local_clock()
        block = np.zeros((CHUNK, 2), dtype=np.float32)
        block[:, 0] = np.arange(counter, counter + CHUNK)
        block[:, 1] = np.sin(block[:, 0] / 20.0) * 50.0
        emg.push_chunk(block, now)
        counter += CHUNK
        if now >= next_pulse:
            session.log_pulse(time_s=now, intensity_percent=50, index=pulse)
            markers.push_sample([json.dumps({"event": "pulse", "index": pulse})], now)
            pulse += 1
            next_pulse += 0.1
        time.sleep(CHUNK / FS_HZ)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
