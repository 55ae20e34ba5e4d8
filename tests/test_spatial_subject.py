"""Spatial virtual subject: hotspot, preferred current direction, the operator's hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from labkit.navigation.pose import CoilPose
from labkit.sim.coil_hand import HandHeldCoil, HandParams
from labkit.sim.events import Discharge
from labkit.sim.spatial import C3_DIRECTION, SpatialExcitability, SphericalHead
from labkit.sim.subject import VirtualSubject


class _Fixed:
    """A coil holder that holds one pose forever."""

    def __init__(self, pose: CoilPose) -> None:
        self.pose = pose

    def pose_at(self, time_s: float) -> CoilPose:
        return self.pose


def _spatial(seed: int = 0) -> SpatialExcitability:
    return SpatialExcitability.sample(np.random.default_rng(seed))


def test_head_geometry_walks_along_the_scalp():
    head = SphericalHead()
    c3 = head.radius_mm * C3_DIRECTION
    p = head.point(c3, 20.0, 0.0)
    assert np.linalg.norm(p) == pytest.approx(90.0)
    assert head.scalp_distance_mm(c3, p) == pytest.approx(20.0)
    assert p[1] > 0  # anterior
    q = head.point(c3, 0.0, 10.0)
    assert q[0] > c3[0]  # to the right (medial for the left hemisphere)
    pose = head.pose(c3, 45.0, lift_mm=3.0)
    assert head.angle_deg(pose) == pytest.approx(45.0)
    assert head.lift_mm(pose.position) == pytest.approx(3.0)
    assert pose.normal @ head.up(c3) == pytest.approx(-1.0)  # coil normal into the head


@pytest.mark.parametrize("seed", range(10))
def test_hotspot_is_near_c3_and_current_is_anteromedial(seed):
    sp = _spatial(seed)
    head = sp.head
    c3 = head.radius_mm * C3_DIRECTION
    ant, right = head.tangent_axes(c3)
    d = sp.hotspot - c3
    assert -1.0 <= d @ ant <= 16.0 and -16.0 <= d @ right <= 1.0
    assert 15.0 < sp.preferred_deg < 75.0
    assert sp.efficacy(sp.optimal_pose()) == pytest.approx(1.0, abs=1e-9)


def test_efficacy_factors_match_their_formulas():
    sp = SpatialExcitability(hotspot_mm=tuple(90.0 * C3_DIRECTION), preferred_deg=45.0,
                             sigma_mm=25.0)
    head = sp.head
    # position: a Gaussian of the scalp distance
    at_sigma = head.pose(head.point(sp.hotspot, 25.0, 0.0), 45.0)
    assert sp.efficacy(at_sigma) == pytest.approx(math.exp(-0.5), rel=1e-6)
    # direction: PA < LM < AP thresholds (efficacy 1, 0.88, 0.84)
    assert sp.efficacy(head.pose(sp.hotspot, 45.0 + 90.0)) == pytest.approx(0.88)
    assert sp.efficacy(head.pose(sp.hotspot, 45.0 - 90.0)) == pytest.approx(0.88)
    assert sp.efficacy(head.pose(sp.hotspot, 45.0 + 180.0)) == pytest.approx(0.84)
    assert 0.95 < sp.efficacy(head.pose(sp.hotspot, 45.0 + 45.0)) < 0.96
    # lift halves the efficacy over 15 mm
    assert sp.efficacy(head.pose(sp.hotspot, 45.0, lift_mm=15.0)) == pytest.approx(0.5)
    # tilt: cosine of the angle between the coil normal and the scalp normal
    flat = sp.optimal_pose()
    ant, _ = head.tangent_axes(sp.hotspot)
    tilted = CoilPose.from_axes(flat.position_mm, flat.normal + math.tan(math.radians(20)) * ant,
                                flat.current_direction)
    assert sp.efficacy(tilted) == pytest.approx(math.cos(math.radians(20)), rel=1e-3)


def test_meps_fall_off_away_from_the_hotspot_and_with_the_wrong_direction():
    sp = _spatial(3)
    head = sp.head
    poses = {
        "hotspot": sp.optimal_pose(),
        "15 mm": head.pose(head.point(sp.hotspot, 15.0, 0.0), sp.preferred_deg),
        "30 mm": head.pose(head.point(sp.hotspot, 0.0, 30.0), sp.preferred_deg),
        "AP": head.pose(sp.hotspot, sp.preferred_deg + 180.0),
    }
    medians = {}
    for name, pose in poses.items():
        subject = VirtualSubject(seed=8, spatial=sp, coil=_Fixed(pose))
        x = round(1.2 * subject.resting_motor_threshold_percent)
        amps = [subject.respond(Discharge(float(k), x, "test")).amplitude_uv for k in range(200)]
        medians[name] = float(np.median(amps))
        assert subject.responses[-1].efficacy == pytest.approx(sp.efficacy(pose))
        assert subject.responses[-1].coil_pose == pose
    assert medians["hotspot"] > 2 * medians["15 mm"] > 2 * medians["30 mm"]
    assert medians["hotspot"] > 2 * medians["AP"]


def test_spatial_true_draws_from_the_seed_and_plain_subject_is_unchanged():
    a, b = VirtualSubject(seed=4, spatial=True), VirtualSubject(seed=4, spatial=True)
    assert a.spatial == b.spatial and a.spatial != VirtualSubject(seed=5, spatial=True).spatial
    plain = VirtualSubject(seed=4)
    on_spot = VirtualSubject(seed=4, spatial=True)
    on_spot.coil = _Fixed(on_spot.spatial.optimal_pose())
    for k in range(20):
        d = Discharge(float(k), 40.0 + k, "test")
        a_uv, b_uv = plain.respond(d).amplitudes_uv, on_spot.respond(d).amplitudes_uv
        assert a_uv == pytest.approx(b_uv, rel=1e-9)  # efficacy 1 to float precision


def _hand(seed: int = 0, **kw) -> tuple[HandHeldCoil, SpatialExcitability]:
    sp = _spatial(seed)
    return HandHeldCoil(sp.head, sp.optimal_pose(), seed=seed, params=HandParams(**kw)), sp


def test_hand_is_a_pure_function_of_time_and_seed():
    hand_a, _ = _hand(1)
    hand_b, _ = _hand(1)
    times = np.linspace(0.0, 30.0, 50)
    forward = [hand_a.pose_at(t) for t in times]
    backward = [hand_b.pose_at(t) for t in times[::-1]][::-1]
    assert [p.position_mm for p in forward] == [p.position_mm for p in backward]
    hand_c, _ = _hand(2)
    assert hand_c.pose_at(5.0).position_mm != forward[0].position_mm


def test_hand_drift_and_tremor_have_the_stated_size():
    hand, sp = _hand(3, drift_sd_mm=1.0, tremor_mm=0.0, drift_angle_sd_deg=2.0)
    ref = hand.pose_at(0.0)
    times = np.arange(0.0, 600.0, 0.25)
    poses = [hand.pose_at(t) for t in times]
    offsets = np.array([p.offset_in_plane_mm(sp.optimal_pose()) for p in poses])
    radial = np.hypot(offsets[:, 0], offsets[:, 1])
    assert np.sqrt(np.mean(radial ** 2)) == pytest.approx(math.sqrt(2.0), rel=0.25)
    angles = np.array([sp.head.angle_deg(p) for p in poses]) - sp.preferred_deg
    assert np.std(angles) == pytest.approx(2.0, rel=0.3)
    assert ref.time_s == 0.0
    # tremor alone: 8-12 Hz, 0.3 mm RMS per axis
    still, sp2 = _hand(3, drift_sd_mm=0.0, drift_angle_sd_deg=0.0, tilt_sd_deg=0.0,
                       tremor_mm=0.3)
    t = np.arange(0.0, 4.0, 0.002)
    along = np.array([still.pose_at(x).offset_in_plane_mm(sp2.optimal_pose())[0] for x in t])
    spectrum = np.abs(np.fft.rfft(along - along.mean()))
    peak_hz = np.fft.rfftfreq(t.size, 0.002)[np.argmax(spectrum)]
    assert 7.5 <= peak_hz <= 12.5
    assert 0.1 < np.sqrt(np.mean(along ** 2)) < 0.5


def test_hand_moves_to_a_target_and_lands_within_the_placement_error():
    hand, sp = _hand(4)
    target = sp.head.pose(sp.head.point(sp.hotspot, 10.0, -10.0), sp.preferred_deg + 30.0)
    hand.move_to(target, 100.0)
    assert hand.pose_at(100.0).tangential_distance_mm(target) == pytest.approx(
        math.hypot(10.0, 10.0), abs=3.0)
    assert not hand.settled(100.1)
    assert hand.settled(103.0)
    errors = []
    for k in range(40):
        hand.move_to(target, 200.0 + 10.0 * k)
        errors.append(hand.pose_at(205.0 + 10.0 * k).tangential_distance_mm(target))
    assert np.median(errors) < 3.0
    assert abs(hand.pose_at(205.0).rotation_deg(target)) < 8.0
