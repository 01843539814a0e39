"""Bag tools, pure parts: dropout specs and schedules, gap finding, metrics, stamp ordering."""

from __future__ import annotations

import itertools
import math

import cv2
import numpy as np
import pytest

from sensorysync_ros.bagtools.bagio import BagMessage, parse_topic_remaps, time_ordered
from sensorysync_ros.bagtools.dropout import (
    DropoutInterval,
    DropoutSchedule,
    GapFinder,
    parse_drop_spec,
    random_dropouts,
)
from sensorysync_ros.bagtools.errors import BagError, DropoutSpecError
from sensorysync_ros.bagtools.metrics import (
    PSNR_MAX_DB,
    MetricAccumulator,
    log_spectral_distance_db,
    psnr_db,
    ssim,
)
from sensorysync_ros.manifest import ModalitySpec, RosBinding

NAMES = ("camera", "audio", "joints")
S = 1_000_000_000


def test_drop_spec_parses_seconds():
    d = parse_drop_spec("camera:10-20.5", NAMES)
    assert d == DropoutInterval("camera", 10.0, 20.5, "explicit")
    assert parse_drop_spec(" joints : 0.5 - 1 ", NAMES).length_s == 0.5


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("camera", "does not parse"),
        ("camera:10", "does not parse"),
        ("camera:a-b", "does not parse"),
        ("camera:-1-2", "does not parse"),
        ("lidar:1-2", "unknown modality 'lidar'"),
        ("camera:5-5", "must be after start"),
        ("camera:6-5", "must be after start"),
    ],
)
def test_bad_drop_specs_name_the_spec(spec, match):
    with pytest.raises(DropoutSpecError, match=match):
        parse_drop_spec(spec, NAMES)


def test_schedule_lookup_is_half_open_and_rejects_overlap():
    t0 = 100 * S
    sched = DropoutSchedule([DropoutInterval("camera", 1, 2), DropoutInterval("camera", 5, 6)], t0)
    assert not sched.dropped("camera", t0 + S - 1)
    assert sched.dropped("camera", t0 + S)
    assert sched.dropped("camera", t0 + 2 * S - 1)
    assert not sched.dropped("camera", t0 + 2 * S)
    assert sched.active("camera", t0 + 5 * S) == DropoutInterval("camera", 5, 6)
    assert not sched.dropped("audio", t0 + S)
    assert sched.modalities == {"camera"}
    with pytest.raises(DropoutSpecError, match="overlaps"):
        DropoutSchedule([DropoutInterval("audio", 1, 3), DropoutInterval("audio", 2, 4)], t0)
    with pytest.raises(DropoutSpecError, match="starts after the bag ends"):
        DropoutSchedule([DropoutInterval("audio", 30, 40)], t0).check_within(10.0)


def test_random_dropouts_are_seeded_and_cover_the_rate():
    a = random_dropouts(NAMES, 100.0, 0.2, seed=3, length_s=2.0)
    assert a == random_dropouts(NAMES, 100.0, 0.2, seed=3, length_s=2.0)
    assert a != random_dropouts(NAMES, 100.0, 0.2, seed=4, length_s=2.0)
    for name in NAMES:
        own = sorted((d for d in a if d.modality == name), key=lambda d: d.start_s)
        assert math.isclose(sum(d.length_s for d in own), 20.0)
        assert all(x.end_s <= y.start_s for x, y in itertools.pairwise(own))
        assert own[0].start_s >= 0 and own[-1].end_s <= 100.0
    DropoutSchedule(a, 0)  # no overlaps
    with pytest.raises(DropoutSpecError, match="rate"):
        random_dropouts(NAMES, 100.0, 1.5, seed=0)


def test_gap_finder_reports_gaps_longer_than_the_timeout():
    finder = GapFinder({"joints": 30_000_000}, 0)
    for t_ms in (10, 20, 30, 40, 200, 210):
        finder.see("joints", t_ms * 1_000_000)
    tail = finder.finish(500_000_000)
    assert [(g.start_ns, g.end_ns) for g in finder.gaps] == [
        (40_000_000, 200_000_000),
        (210_000_000, 500_000_000),
    ]
    assert len(tail) == 1


def test_time_ordered_restores_stamp_order_within_the_lookahead():
    stamps = [0, 30, 10, 20, 50, 40, 100]
    msgs = [BagMessage("m", s, k, b"") for k, s in enumerate(stamps)]
    assert [m.stamp_ns for m in time_ordered(msgs, 25)] == sorted(stamps)


def test_topic_remaps():
    assert parse_topic_remaps(["camera=/front/image"]) == {"camera": "/front/image"}
    with pytest.raises(BagError, match="MODALITY=/topic"):
        parse_topic_remaps(["camera"])


# ---------------------------------------------------------------- metrics


def _reference_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """Slow reference: explicit 11x11 Gaussian window (sigma 1.5) per pixel, mirrored edges."""
    g = cv2.getGaussianKernel(11, 1.5)
    window = g @ g.T
    c1, c2 = 0.01**2, 0.03**2
    values = []
    for a, b in zip(x.astype(np.float64), y.astype(np.float64)):
        pa = np.pad(a, 5, mode="symmetric")
        pb = np.pad(b, 5, mode="symmetric")
        for i in range(a.shape[0]):
            for j in range(a.shape[1]):
                wa, wb = pa[i : i + 11, j : j + 11], pb[i : i + 11, j : j + 11]
                mx, my = (window * wa).sum(), (window * wb).sum()
                vx = (window * wa * wa).sum() - mx * mx
                vy = (window * wb * wb).sum() - my * my
                cov = (window * wa * wb).sum() - mx * my
                num = (2 * mx * my + c1) * (2 * cov + c2)
                values.append(num / ((mx * mx + my * my + c1) * (vx + vy + c2)))
    return float(np.mean(values))


def test_ssim_matches_a_slow_reference_and_is_one_for_identical_images():
    rng = np.random.default_rng(0)
    x = rng.random((2, 3, 16, 16), dtype=np.float32)
    y = np.clip(x + 0.2 * rng.standard_normal(x.shape).astype(np.float32), 0, 1)
    got = ssim(x, y)
    assert got.shape == (2,)
    for k in range(2):
        assert got[k] == pytest.approx(_reference_ssim(x[k], y[k]), abs=2e-4)
    assert ssim(x, x) == pytest.approx([1.0, 1.0], abs=1e-5)
    assert got[0] < 0.9


def test_psnr_known_value_and_cap():
    x = np.zeros((1, 1, 4, 4), np.float32)
    assert psnr_db(x, x + 0.1)[0] == pytest.approx(20.0, abs=1e-4)  # mse 0.01
    assert psnr_db(x, x)[0] == PSNR_MAX_DB


def test_log_spectral_distance_of_a_constant_log_offset():
    x = np.zeros((3, 1, 16, 5), np.float32)
    assert log_spectral_distance_db(x, x + 1.0) == pytest.approx([10 / math.log(10)] * 3)


def _joint_spec() -> ModalitySpec:
    return ModalitySpec(
        "joints",
        "vector",
        (4,),
        "gaussian",
        {
            "joint_names": ["a", "b"],
            "fields": ["position", "velocity"],
            "loc": [1.0] * 4,
            "scale": [2.0, 2.0, 10.0, 10.0],
        },
        RosBinding("joint_states", "sensor_msgs/msg/JointState", 100.0),
    )


def test_joint_rmse_is_in_physical_units_per_joint_and_field():
    acc = MetricAccumulator(_joint_spec())
    truth = np.zeros((2, 4), np.float32)
    recon = np.array([[0.1, 0.0, 0.0, 0.0], [0.1, 0.0, 0.0, 0.3]], np.float32)
    per_tick = acc.add(truth, recon)
    assert per_tick[0] == pytest.approx(math.sqrt(0.2**2 / 4))
    s = acc.summary()
    assert s["ticks"] == 2
    assert s["rmse_per_joint"]["position"]["a"] == pytest.approx(0.2)  # 0.1 * scale 2
    assert s["rmse_per_joint"]["velocity"]["b"] == pytest.approx(math.sqrt(9.0 / 2))
    assert s["rmse_per_joint"]["position"]["b"] == 0.0
    assert s["rmse"] == pytest.approx(math.sqrt((0.04 * 2 + 9.0) / 8))
    with pytest.raises(ValueError, match="joints"):
        acc.add(truth[:, :3], recon[:, :3])
