"""sensorysync-extract: aligned samples from bags the tests write, specs from a model or YAML."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from sensorysync_ros.bagtools.dropout import NS_PER_S
from sensorysync_ros.bagtools.extract import load_modality_specs
from sensorysync_ros.bagtools.extract import main as extract_main
from sensorysync_ros.bagtools.synth import DEFAULT_START_NS, SyntheticRobot, write_synthetic_bag
from sensorysync_ros.codecs import make_codec
from sensorysync_ros.model_file import read_manifest


@pytest.fixture(scope="module")
def bags(tmp_path_factory, tiny_robot_model) -> list[Path]:
    specs = read_manifest(tiny_robot_model).modalities
    root = tmp_path_factory.mktemp("extract")
    return [
        write_synthetic_bag(root / "a", specs, 2.0, storage="sqlite3"),
        write_synthetic_bag(root / "b", specs, 2.0, storage="mcap", gaps=[("joints", 1.0, 1.5)]),
    ]


def test_extract_aligns_on_camera_frames(bags, tiny_robot_model, tmp_path, capsys):
    out = tmp_path / "dataset"
    rc = extract_main(
        [*map(str, bags), "-o", str(out), "--config", str(tiny_robot_model), "--window-ms", "20"]
    )
    assert rc == 0, capsys.readouterr().err
    data = np.load(out / "samples.npz")
    meta = json.loads((out / "meta.json").read_text())
    manifest = read_manifest(tiny_robot_model)
    assert meta["modalities"] == json.loads(manifest.to_json())["modalities"]
    n = meta["count"]
    # 2 x 60 camera frames; the first 7 of each bag precede the first audio window (0.26 s),
    # 14 of bag b fall in its joints gap (no joint sample within 20 ms)
    assert meta["skipped"] == {"audio": 14, "joints": 14}
    assert n == 2 * 60 - 14 - 14
    assert data["stamp_ns"].dtype == np.int64 and data["stamp_ns"].shape == (n,)
    for spec in manifest.modalities:
        assert data[spec.name].dtype == np.float32
        assert data[spec.name].shape == (n, *spec.shape)
    # joints: the 100 Hz sample nearest each frame (<= 3.4 ms away; 10 ms beside the gap)
    robot = SyntheticRobot()
    t_s = (data["stamp_ns"] - DEFAULT_START_NS) / NS_PER_S
    error = np.abs(data["joints"][:, :3] - np.stack([robot.joint_positions(t, 3) for t in t_s]))
    max_speed = 0.8 * 2 * np.pi * 0.34  # rad/s, fastest synthetic joint
    assert np.percentile(error, 95) < max_speed * 0.0034
    assert error.max() < max_speed * 0.0101
    # the camera sample is exactly what the codec makes of that frame
    camera = make_codec(manifest.modality("camera"))
    assert data["camera"].min() >= 0 and data["camera"].max() <= 1
    first = data["camera"][0]
    assert first.shape == (3, 32, 32) and camera.spec.shape == first.shape
    stats = meta["stats"]["joints"]
    assert len(stats["mean"]) == 9 and stats["count"] == n
    assert np.allclose(stats["mean"], data["joints"].mean(axis=0), atol=1e-6)
    assert meta["source_bags"] == [str(b.resolve()) for b in bags]
    assert "extracted" in capsys.readouterr().out


def test_extract_takes_specs_from_a_training_yaml_without_normalisation(
    bags, tiny_robot_model, tmp_path
):
    manifest = json.loads(read_manifest(tiny_robot_model).to_json())
    modalities = manifest["modalities"]
    for m in modalities:
        m["preprocess"].pop("loc", None)
        m["preprocess"].pop("scale", None)
        m["network"] = {"arch": "mlp"}  # training-only keys are ignored
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({"data": {"kind": "npz"}, "modalities": modalities}))
    specs = load_modality_specs(config)
    assert specs[2].preprocess["loc"] == [0.0] * 9 and specs[1].preprocess["scale"] == 1.0
    out = tmp_path / "ds"
    assert (
        extract_main(
            [str(bags[0]), "-o", str(out), "--config", str(config), "--reference", "joints"]
        )
        == 0
    )
    meta = json.loads((out / "meta.json").read_text())
    assert meta["reference"] == "joints"
    assert meta["count"] > 150  # ~200 joint samples, minus the audio fill-up
    assert isinstance(meta["stats"]["audio"]["mean"], float)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--config", "nope.txt"], "must be a training config"),
        (["--config", "{yaml}"], "no valid 'modalities' section"),
        (["--window-ms", "0"], "window-ms must be > 0"),
        (["--reference", "lidar"], "reference modality 'lidar'"),
    ],
)
def test_extract_bad_input(args, match, bags, tiny_robot_model, tmp_path, capsys):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("modalities:\n  - name: camera\n")
    args = [a.replace("{yaml}", str(bad_yaml)) for a in args]
    if "--config" not in args:
        args += ["--config", str(tiny_robot_model)]
    out = tmp_path / "ds"
    assert extract_main([str(bags[0]), "-o", str(out), *args]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and match in line
    assert not out.exists()
