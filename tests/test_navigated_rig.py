"""A navigated session on the simulated rig: gate, pose per pulse, MEPs to the navigator."""

from __future__ import annotations

import time

import pytest

import labkit
from labkit.errors import NavigationError
from labkit.navigation import LocaliteClient, TargetGate
from labkit.navigation.pulses import NavigatedPulser
from labkit.sim.coil_hand import HandParams
from labkit.sim.navigation import attach_navigation


def test_navigated_pulses_log_the_true_pose_and_hold_while_disconnected(tmp_path):
    from labkit.session import Session
    from labkit.session.log import read_log

    session = Session(tmp_path, "P01", 1)
    with labkit.open_rig("simulated", seed=7) as rig:
        nav = attach_navigation(rig, rate_hz=50.0, hand=HandParams(settle_tau_s=0.6))
        client = LocaliteClient(*nav.address, max_pose_age_s=0.2, reconnect_interval_s=0.1)
        x = int(round(1.2 * rig.subject.resting_motor_threshold_percent))
        with client:
            client.wait_for_pose()
            target = nav.spatial.optimal_pose()
            nav.emulator.targets[1] = target
            client.set_target(1, target)
            pulser = NavigatedPulser(rig, client, TargetGate(max_distance_mm=3.0),
                                     hold_timeout_s=5.0, session=session)
            trials = [pulser.pulse(x) for _ in range(3)]
            # the coil travels from C3 to the hotspot (~1 s): the first pulse was held
            assert trials[0].held_s > 0.0 and pulser.holds[0]["fired"]
            for trial, response in zip(trials, rig.subject.responses, strict=True):
                assert trial.pose.status == "ok" and trial.pose.age_s <= 0.2
                assert trial.pose.target_distance_mm <= 3.0
                # the logged pose is the navigator's, at most one period + tremor away
                assert trial.pose.pose.distance_mm(response.coil_pose) < 1.0
                assert response.efficacy > 0.97
            assert len(pulser.log) == 3 and pulser.log[0]["pose_status"] == "ok"
            deadline = time.monotonic() + 3.0  # the last MEP may still be on the wire
            while len(nav.emulator.responses) < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(nav.emulator.responses) == 3  # every MEP went back to the navigator
            assert nav.emulator.pulses == 3  # and every discharge reached it (didt)
            # the navigator goes away: firing is held, then given up; nothing is fired
            nav.emulator.refuse()
            deadline = time.monotonic() + 3.0
            while client.connected and time.monotonic() < deadline:
                time.sleep(0.01)
            with pytest.raises(NavigationError, match="held"):
                pulser.wait_on_target(timeout_s=0.5)
            short = NavigatedPulser(rig, client, TargetGate(), hold_timeout_s=0.3)
            with pytest.raises(NavigationError, match="disconnected"):
                short.pulse(x)
            assert len(rig.subject.responses) == 3
            nav.emulator.accept()
            client.wait_for_pose(timeout_s=3.0)
            assert short.pulse(x).pose.status == "ok"
        assert "disconnected" in [e.kind for e in client.events]
    session.close()
    pulses = [r.payload for r in read_log(session.log.path, kind="pulse")]
    assert len(pulses) == 3 and all(p["pose_status"] == "ok" for p in pulses)
    assert pulses[0]["coil_x_mm"] == pytest.approx(pulser.log[0]["coil_x_mm"])
    nav_events = [r.payload["event"] for r in read_log(session.log.path, kind="navigation")]
    assert "hold" in nav_events and "disconnected" in nav_events
