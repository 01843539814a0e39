"""sensorysync-eval on bags the tests write with rosbags (sqlite3 and mcap), tiny real model."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer

from sensorysync_ros.bagtools.bagio import BagReader, base_typestore, time_ordered
from sensorysync_ros.bagtools.dropout import NS_PER_S, DropoutInterval, DropoutSchedule
from sensorysync_ros.bagtools.evaluate import main as eval_main
from sensorysync_ros.bagtools.evaluation import evaluate_bag
from sensorysync_ros.bagtools.results import DROPOUT, PRESENT
from sensorysync_ros.bagtools.synth import write_synthetic_bag
from sensorysync_ros.codecs import make_codec, tensor_to_pixels
from sensorysync_ros.core_msg import decode_core
from sensorysync_ros.engine import Engine
from sensorysync_ros.fusion import FusionCore

CPU = ["CPUExecutionProvider"]
RATE_HZ = 30.0


@pytest.fixture(scope="module")
def engine(tiny_robot_model: Path) -> Engine:
    return Engine(tiny_robot_model, providers=CPU)


@pytest.fixture(scope="module", params=["sqlite3", "mcap"])
def bag6(request, tmp_path_factory, engine) -> Path:
    """A 6 s synthetic bag in each storage format."""
    path = tmp_path_factory.mktemp(f"bag_{request.param}") / "run"
    return write_synthetic_bag(path, engine.manifest.modalities, 6.0, storage=request.param)


def _tree_digest(path: Path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def test_dropout_interval_yields_dropout_metrics_only_inside_it(bag6, engine):
    drop = DropoutInterval("camera", 2.0, 4.0)
    result = evaluate_bag(
        bag6, engine, intervals_for=lambda _: [drop], rate_hz=RATE_HZ, progress=False
    )
    s = result.summary
    camera = result.traces["camera"]
    cond = np.asarray(camera.condition)
    inside = result.tick_s[cond == DROPOUT]
    timeout_s = s["timeouts_s"]["camera"]
    assert inside.min() >= 2.0 and inside.max() < 4.0
    (event,) = s["dropouts"]
    assert event["modality"] == "camera" and event["source"] == "explicit"
    # stale once the last frame before 2 s is older than the timeout: at most one tick late
    assert 0 < event["detection_delay_s"] <= timeout_s + 1 / RATE_HZ + 1e-9
    assert inside.min() == pytest.approx(event["detected_s"])
    # every tick from detection to the end of the interval is a dropout tick
    assert len(inside) == pytest.approx((4.0 - event["detected_s"]) * RATE_HZ, abs=1)
    assert s["modalities"]["camera"]["dropout"]["model"]["ticks"] == len(inside)
    assert np.isfinite(np.asarray(camera.error_model)[cond == DROPOUT]).all()
    assert np.isnan(np.asarray(camera.error_model)[(cond != DROPOUT) & (cond != PRESENT)]).all()
    for name in ("audio", "joints"):
        assert s["modalities"][name]["dropout"]["model"]["ticks"] == 0
        assert DROPOUT not in result.traces[name].condition
    for key in ("hold", "mean"):
        assert s["modalities"]["camera"]["dropout"][key]["ticks"] == len(inside)
    assert "non-withheld" in s["mean_baseline"]["camera"]
    assert s["real_gaps"] == []
    assert s["ticks"] == pytest.approx(6.0 * RATE_HZ, abs=1)
    present = s["modalities"]["camera"]["ticks"]["present"]
    assert present > 100  # scored on every 3rd tick: the autoencoding reference
    assert s["modalities"]["camera"]["present"]["model"]["ticks"] == pytest.approx(
        present / 3, abs=2
    )


def _plain_fusion_reference(bag: Path, engine: Engine, drop: DropoutInterval, period_ns: int):
    """Slow reference: the node's loop written out (codecs, FusionCore.tick at batch 1)."""
    specs = engine.manifest.modalities
    codecs = {s.name: make_codec(s) for s in specs}
    core = FusionCore(engine)
    outputs = {}
    with BagReader(bag) as reader:
        bindings = reader.bind(specs)
        schedule = DropoutSchedule([drop], reader.start_ns)
        next_ns = reader.start_ns + period_ns
        for m in time_ordered(reader.messages(bindings), 200_000_000):
            while next_ns < m.stamp_ns:
                outputs[next_ns] = core.tick(next_ns)
                next_ns += period_ns
            if not schedule.dropped(m.modality, m.stamp_ns):
                sample = codecs[m.modality].decode(m.msg)
                if sample is not None:
                    core.push(m.stamp_ns, m.modality, sample)
    return outputs


def test_cli_outputs_bag_untouched_and_batched_pass_equals_plain_fusion(
    bag6, engine, tiny_robot_model, tmp_path
):
    before = _tree_digest(bag6)
    out = tmp_path / "eval"
    rc = eval_main(
        [
            str(bag6),
            "--model",
            str(tiny_robot_model),
            "--drop",
            "camera:2-4",
            "--drop",
            "joints:4.5-5.5",
            "--write-bag",
            "--out",
            str(out),
            "--providers",
            CPU[0],
        ]
    )
    assert rc == 0
    assert _tree_digest(bag6) == before, "the input bag changed"
    names = {p.name for p in out.iterdir()}
    assert {
        "metrics.json",
        "report.md",
        "error_camera.png",
        "frames_camera.png",
        "trajectories_joints.png",
        f"{bag6.name}_sensorysync",
    } <= names
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "staging left behind"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["storage"] == BagReader(bag6).storage
    assert "camera | dropout |" in (out / "report.md").read_text()

    # The written bag: originals byte for byte, plus core + reconstructions from the batched
    # pass, which must equal the plain batch-1 fusion loop tick for tick.
    written = out / f"{bag6.name}_sensorysync"
    reference = _plain_fusion_reference(
        bag6, engine, DropoutInterval("camera", 2.0, 4.0), round(NS_PER_S / RATE_HZ)
    )
    dc, n = engine.manifest.core_latent_dim, len(engine.manifest.names)
    cores, recons = {}, {}
    with BagReader(written) as reader, BagReader(bag6) as original:
        assert set(original.topics.items()) < set(reader.topics.items())
        for conn, recv_ns, raw in reader.raw_messages():
            if conn.topic == "/sensorysync/core":
                core = decode_core(reader.deserialize(raw, conn, recv_ns), dc, n)
                cores[core.stamp_ns] = core
            elif conn.topic == "/sensorysync/camera/reconstruction":
                msg = reader.deserialize(raw, conn, recv_ns)
                recons[msg.header.stamp.sec * NS_PER_S + msg.header.stamp.nanosec] = msg
        n_original = sum(
            1 for c, _, _ in reader.raw_messages() if not c.topic.startswith("/sensorysync")
        )
        assert n_original == sum(1 for _ in original.raw_messages())
    # joints:4.5-5.5 is in the CLI run but not the reference: compare ticks before 4.5 s
    t0 = min(reference)
    compared = [t for t in reference if t < t0 + 4.4 * NS_PER_S and reference[t] is not None]
    assert len(compared) > 120
    for t in compared:
        ref = reference[t]
        assert np.allclose(cores[t].mean, ref.core_mean, atol=1e-5)
        assert np.allclose(cores[t].variance, ref.core_var, rtol=1e-5)
        assert list(cores[t].present) == [ref.present[k] for k in engine.manifest.names]
        if not ref.present["camera"]:
            pixels = np.asarray(recons[t].data).reshape(32, 32, 3)
            assert np.abs(pixels.astype(int) - tensor_to_pixels(ref.recon["camera"])).max() <= 1
    assert sorted(recons) == sorted(t for t in cores if not cores[t].present[0])
    assert len(recons) > 50


def test_real_gaps_are_reported_apart_from_dropouts(tmp_path, engine):
    bag = write_synthetic_bag(
        tmp_path / "gappy", engine.manifest.modalities, 4.0, gaps=[("joints", 2.0, 3.0)]
    )
    result = evaluate_bag(
        bag,
        engine,
        intervals_for=lambda _: [],
        rate_hz=RATE_HZ,
        timeouts_s={"joints": 0.2},  # as the node's timeout parameter (default 0.03 s)
        progress=False,
    )
    s = result.summary
    assert s["timeouts_s"]["joints"] == 0.2
    assert s["dropouts"] == []
    (gap,) = s["real_gaps"]
    assert gap["modality"] == "joints" and gap["source"] == "gap"
    assert gap["start_s"] == pytest.approx(1.99, abs=0.011)
    assert gap["end_s"] == pytest.approx(3.0, abs=0.011)
    timeout_s = s["timeouts_s"]["joints"]
    assert timeout_s - 0.01 < gap["detection_delay_s"] <= timeout_s + 1 / RATE_HZ + 1e-9
    joints = s["modalities"]["joints"]
    assert joints["dropout"]["model"]["ticks"] == 0
    assert joints["ticks"]["missing"] == pytest.approx((1.0 - timeout_s) * RATE_HZ, abs=2)


def test_random_dropouts_from_the_cli_are_seeded(tmp_path, engine, tiny_robot_model):
    bag = write_synthetic_bag(tmp_path / "b", engine.manifest.modalities, 6.0, storage="mcap")
    args = [
        str(bag),
        "--model",
        str(tiny_robot_model),
        "--random-dropout",
        "0.3",
        "--seed",
        "7",
        "--dropout-length-s",
        "1",
        "--providers",
        CPU[0],
        "--out",
    ]
    assert eval_main([*args, str(tmp_path / "a")]) == 0
    first = json.loads((tmp_path / "a" / "metrics.json").read_text())["dropouts"]
    assert len(first) == 3 * 2 and {d["source"] for d in first} == {"random"}
    assert eval_main([*args, str(tmp_path / "a")]) == 0  # replaces the old report
    again = json.loads((tmp_path / "a" / "metrics.json").read_text())["dropouts"]
    assert [(d["start_s"], d["end_s"]) for d in again] == [
        (d["start_s"], d["end_s"]) for d in first
    ]


def _wrong_type_bag(path: Path) -> Path:
    store = base_typestore()
    with Writer(path, version=9, storage_plugin=StoragePlugin.SQLITE3) as writer:
        for topic, msgtype in (
            ("/camera/image_raw", "sensor_msgs/msg/Image"),
            ("/audio", "std_msgs/msg/Float32MultiArray"),
            ("/joint_states", "std_msgs/msg/String"),
        ):
            conn = writer.add_connection(topic, msgtype, typestore=store)
            if msgtype == "std_msgs/msg/String":
                msg = store.types[msgtype](data="not joints")
                writer.write(conn, NS_PER_S, store.serialize_cdr(msg, msgtype))
    return path


@pytest.fixture(scope="module")
def good_bag(tmp_path_factory, engine) -> Path:
    path = tmp_path_factory.mktemp("good") / "bag"
    return write_synthetic_bag(path, engine.manifest.modalities, 2.0)


def _corrupt(kind: str, good: Path, tmp: Path, engine: Engine) -> Path:
    if kind == "missing":
        return tmp / "no_such_bag"
    if kind == "wrong_type":
        return _wrong_type_bag(tmp / "wrong")
    if kind == "missing_topic":
        specs = [s for s in engine.manifest.modalities if s.name != "audio"]
        return write_synthetic_bag(tmp / "noaudio", specs, 1.0)
    bag = shutil.copytree(good, tmp / "corrupt")
    if kind == "corrupt_metadata":
        (bag / "metadata.yaml").write_text("rosbag2_bagfile_information: [unclosed\n")
    else:
        (db,) = bag.glob("*.db3")
        db.write_bytes(db.read_bytes()[:3000])
    return bag


@pytest.mark.parametrize(
    ("kind", "extra", "match"),
    [
        ("missing", [], "does not exist"),
        ("corrupt_metadata", [], "metadata.yaml"),
        ("corrupt_storage", [], "corrupt|cannot be"),
        ("missing_topic", [], "has no topic '/audio'"),
        ("wrong_type", [], "'/joint_states'.*std_msgs/msg/String"),
        ("good", ["--drop", "camera:ten-20"], "does not parse"),
        ("good", ["--drop", "lidar:1-2"], "unknown modality 'lidar'"),
        ("good", ["--drop", "camera:30-40"], "starts after the bag ends"),
        ("good", ["--topic", "radar=/x"], "unknown modality"),
        ("good", ["--timeout", "camera=-1"], "--timeout 'camera=-1'"),
        ("good", ["--random-dropout", "1.5"], "rate 1.5 must be a fraction"),
    ],
)
def test_bad_input_gives_one_error_line_and_no_output(
    kind, extra, match, good_bag, engine, tiny_robot_model, tmp_path, capsys
):
    bag = good_bag if kind == "good" else _corrupt(kind, good_bag, tmp_path, engine)
    before = _tree_digest(good_bag)
    out = tmp_path / "out" / "eval"
    rc = eval_main(
        [
            str(bag),
            "--model",
            str(tiny_robot_model),
            *extra,
            "--out",
            str(out),
            "--providers",
            CPU[0],
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert re.search(match, err[0]), err[0]
    assert not out.exists()
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    assert _tree_digest(good_bag) == before


def test_console_script_exit_status_and_single_line(tmp_path, tiny_robot_model):
    exe = Path(sys.executable).with_name("sensorysync-eval")
    result = subprocess.run(
        [
            str(exe),
            str(tmp_path / "none"),
            "--model",
            str(tiny_robot_model),
            "--out",
            str(tmp_path / "o"),
            "--providers",
            CPU[0],
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: bag {str(tmp_path / 'none')!r} does not exist; pass a rosbag2 directory"
    ]
    assert result.stdout == "" and not (tmp_path / "o").exists()


def test_interrupted_run_leaves_no_output(tmp_path, tiny_robot_model, engine):
    bag = write_synthetic_bag(tmp_path / "long", engine.manifest.modalities, 60.0, storage="mcap")
    out = tmp_path / "results" / "eval"
    exe = Path(sys.executable).with_name("sensorysync-eval")
    process = subprocess.Popen(
        [
            str(exe),
            str(bag),
            "--model",
            str(tiny_robot_model),
            "--drop",
            "camera:5-55",
            "--write-bag",
            "--out",
            str(out),
            "--providers",
            CPU[0],
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not list(out.parent.glob(".eval.partial-*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "finished before it could be interrupted"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert err.strip().splitlines()[-1] == "error: interrupted; no output written"
    assert list(out.parent.iterdir()) == []
