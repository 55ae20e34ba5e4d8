"""Hotspot hunting: grid, randomised order, map, centre of gravity, area, hotspot rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from labkit.hotspot import HotspotHunt, OrientationScan, make_grid
from labkit.navigation.pose import CoilPose
from labkit.sim.coil_hand import HandHeldCoil
from labkit.sim.offline import run_hotspot_hunt, run_orientation_scan
from labkit.sim.spatial import C3_DIRECTION
from labkit.sim.subject import VirtualSubject

CENTER = CoilPose.from_axes((-50.0, 5.0, 72.0), (0.55, 0.0, -0.8), (0.3, 0.9, 0.2))


def _fill(hunt: HotspotHunt, amplitude) -> None:
    """Record ``amplitude(site)`` for every planned pulse."""
    while not hunt.done:
        site = hunt.next_site()
        hunt.record(site.index, amplitude(site))


def test_grid_lies_in_the_plane_of_the_starting_pose():
    sites = make_grid(CENTER, spacing_mm=10.0, n=5)
    assert len(sites) == 25 and sites[12].along_mm == 0 == sites[12].across_mm
    for s in sites:
        along, across, depth = s.pose.offset_in_plane_mm(CENTER)
        assert (along, across) == pytest.approx((s.along_mm, s.across_mm), abs=1e-9)
        assert depth == pytest.approx(0.0, abs=1e-9)
        assert s.pose.rotation_deg(CENTER) == pytest.approx(0.0, abs=1e-9)
    cap = make_grid(None, n=3, landmark="C3")
    assert cap[0].pose is None and cap[0].label == "C3 -10 mm anterior, -10 mm lateral"
    with pytest.raises(ValueError, match="odd"):
        make_grid(CENTER, n=4)
    with pytest.raises(ValueError, match="5-20 mm"):
        make_grid(CENTER, spacing_mm=30)


def test_order_is_randomised_seeded_and_complete():
    sites = make_grid(CENTER, n=3)
    a = HotspotHunt(sites, n_per_site=4, seed=1)
    b = HotspotHunt(sites, n_per_site=4, seed=1)
    c = HotspotHunt(sites, n_per_site=4, seed=2)
    assert a.order == b.order != c.order
    assert sorted(a.order) == sorted(list(range(9)) * 4)
    # sites in random order, pulses of one site consecutive
    firsts = a.order[::4]
    assert all(a.order[k:k + 4] == [a.order[k]] * 4 for k in range(0, 36, 4))
    assert firsts != sorted(firsts)
    mixed = HotspotHunt(sites, n_per_site=4, seed=1, interleave=True)
    assert sorted(mixed.order) == sorted(a.order)
    assert any(mixed.order[k] != mixed.order[k + 1] for k in range(0, 36, 4))
    with pytest.raises(ValueError, match="plan's next site"):
        a.record((a.next_site().index + 1) % 9, 10.0)
    with pytest.raises(ValueError, match="1-20"):
        HotspotHunt(sites, n_per_site=0)


def test_centre_of_gravity_and_areas_by_hand():
    sites = make_grid(CENTER, spacing_mm=10.0, n=3)
    amps = {4: 400.0, 5: 200.0, 7: 100.0, 1: 60.0}  # centre, +across, +along, -along
    hunt = HotspotHunt(sites, n_per_site=2, seed=3)
    _fill(hunt, lambda s: amps.get(s.index, 10.0))
    r = hunt.result()
    # CoG over sites >= 50 µV: (400·(0,0) + 200·(0,10) + 100·(10,0) + 60·(-10,0)) / 760
    assert r.cog_mm == pytest.approx((400.0 / 760.0, 2000.0 / 760.0))
    assert r.area_sites_mm2 == 4 * 100.0
    assert 0 < r.area_interpolated_mm2 < 9 * 100
    assert r.best_site == 4
    np.testing.assert_array_equal(r.n_trials, 2)


def test_quadratic_vertex_finds_an_exact_gaussian_peak_between_sites():
    peak = (3.2, -4.1)

    def gaussian(site):
        d2 = (site.along_mm - peak[0]) ** 2 + (site.across_mm - peak[1]) ** 2
        return 2000.0 * math.exp(-d2 / (2 * 12.0 ** 2))

    hunt = HotspotHunt(make_grid(CENTER, n=5), n_per_site=1)
    _fill(hunt, gaussian)
    r = hunt.result()
    assert r.rule == "quadratic vertex"
    assert r.hotspot_mm == pytest.approx(peak, abs=1e-6)
    expected = CENTER.moved(*peak)
    assert r.hotspot_pose.distance_mm(expected) == pytest.approx(0.0, abs=1e-6)


def test_measured_poses_replace_the_planned_positions():
    hunt = HotspotHunt(make_grid(CENTER, n=3), n_per_site=1)
    while not hunt.done:
        site = hunt.next_site()
        hunt.record(site.index, 100.0, site.pose.moved(1.5, -0.5))
    r = hunt.result()
    planned = np.array([[s.along_mm, s.across_mm] for s in r.sites])
    np.testing.assert_allclose(r.positions_mm, planned + [1.5, -0.5], atol=1e-9)


def test_flat_or_silent_maps_fall_back_and_say_so():
    hunt = HotspotHunt(make_grid(CENTER, n=3), n_per_site=1)
    _fill(hunt, lambda s: 300.0 if s.index == 0 else 5.0)  # a corner spike: not concave
    r = hunt.result()
    assert r.rule in ("centre of gravity", "best site")
    silent = HotspotHunt(make_grid(CENTER, n=3), n_per_site=1)
    _fill(silent, lambda s: 5.0 + s.index)
    assert silent.result().cog_mm is None and silent.result().area_sites_mm2 == 0


def _subject_and_hand(seed):
    subject = VirtualSubject(seed=seed, spatial=True)
    head = subject.spatial.head
    c3 = head.center + head.radius_mm * C3_DIRECTION
    # the grid centre: 7.5 mm anterior and lateral of C3, current at 45° (anteromedial)
    start = head.pose(head.point(c3, 7.5, -7.5), 45.0)
    return subject, HandHeldCoil(head, start, seed=seed), start


def test_hotspot_recovered_within_5_mm_across_simulated_subjects():
    """5 × 5 sites, 10 mm, 5 pulses each at 120 % RMT, navigated; 20 subjects."""
    errors, rules = [], []
    for seed in range(20):
        subject, hand, start = _subject_and_hand(seed)
        hunt = HotspotHunt(make_grid(start, spacing_mm=10.0, n=5), n_per_site=5, seed=seed)
        run_hotspot_hunt(subject, hand, hunt, round(1.2 * subject.resting_motor_threshold_percent))
        r = hunt.result()
        errors.append(subject.spatial.head.scalp_distance_mm(r.hotspot_pose.position,
                                                             subject.spatial.hotspot))
        rules.append(r.rule)
    errors = np.array(errors)
    assert np.mean(errors <= 5.0) >= 0.9, errors.round(1)
    assert np.median(errors) <= 3.0 and errors.max() <= 8.0, errors.round(1)


def test_orientation_scan_exact_parabola_and_simulated_subjects():
    scan = OrientationScan(CENTER, angles_deg=(-40, -20, 0, 20, 40), n_per_angle=1)
    while not scan.done:
        _, angle = scan.next_angle()
        scan.record(10 ** (3.0 - ((angle - 12.5) / 40.0) ** 2))
    r = scan.result()
    assert r.rule == "parabola vertex" and r.best_deg == pytest.approx(12.5)
    assert r.best_pose.rotation_deg(CENTER) == pytest.approx(12.5)
    with pytest.raises(ValueError, match="3 angles"):
        OrientationScan(CENTER, angles_deg=(0, 10))
    errors = []
    for seed in range(12):
        subject, hand, start = _subject_and_hand(seed)
        at_spot = subject.spatial.head.pose(subject.spatial.hotspot, 45.0)
        scan = OrientationScan(at_spot, angles_deg=(-60, -30, 0, 30, 60), n_per_angle=8,
                               seed=seed)
        run_orientation_scan(subject, hand, scan,
                             round(1.2 * subject.resting_motor_threshold_percent))
        best = subject.spatial.head.angle_deg(scan.result().best_pose)
        errors.append(abs(best - subject.spatial.preferred_deg))
    assert np.median(errors) <= 15.0, np.round(errors, 1)


def test_grid_projected_onto_the_scalp():
    subject, _, start = _subject_and_hand(1)
    head = subject.spatial.head
    sites = make_grid(start, spacing_mm=10.0, n=5, project=head.project)
    for s in sites:
        assert head.lift_mm(s.pose.position) == pytest.approx(0.0, abs=1e-9)
        assert s.pose.normal @ head.up(s.pose.position) == pytest.approx(-1.0)
        along, across, _ = s.pose.offset_in_plane_mm(start)
        # radial projection pulls the corners in a little on a 90 mm head
        assert math.hypot(along - s.along_mm, across - s.across_mm) < 1.5
        assert head.angle_deg(s.pose) == pytest.approx(45.0, abs=3.0)
