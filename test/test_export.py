"""The exporter: torch vs ONNX Runtime for every mask, manifest round trip, CLI, model card."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from sensorysync_training.checkpoint import load_checkpoint, load_model, save_checkpoint
from sensorysync_training.data import FASHION_MNIST_DIR, read_idx
from sensorysync_training.export import (
    MAX_ABS_ERROR,
    ExportError,
    all_masks,
    build_manifest,
    compare_with_torch,
    export_model,
    main,
    random_inputs,
)

from sensorysync_ros.engine import CPU_PROVIDER, Engine
from sensorysync_ros.manifest import (
    CORE_LOGVAR,
    CORE_MEAN,
    MASK_INPUT,
    METADATA_KEY,
    Manifest,
    recon_output,
)
from sensorysync_ros.model_card import render_model_card
from sensorysync_ros.model_file import read_manifest


def _checkpoint(model_path: Path) -> Path:
    return model_path.with_suffix(".pt")  # model_factory saves it beside the .onnx


@pytest.fixture(scope="module", params=["tiny_robot_model", "tiny_fmnist_model"])
def exported(request: pytest.FixtureRequest):
    """(onnx path, torch model, engine) for each tiny model."""
    path = request.getfixturevalue(request.param)
    model, _ = load_model(_checkpoint(path))
    return path, model, Engine(path, providers=(CPU_PROVIDER,))


def test_torch_and_onnx_runtime_agree_for_every_mask_on_random_inputs(exported):
    _, model, engine = exported
    masks = all_masks(len(engine.manifest.names))
    assert len(masks) == 2 ** len(engine.manifest.names) - 1
    rng = np.random.default_rng(10)
    for mask_row in masks:
        inputs = random_inputs(engine.manifest, 4, rng)
        error = compare_with_torch(model, engine, inputs, np.tile(mask_row, (4, 1)))
        assert error <= MAX_ABS_ERROR, f"mask {mask_row}: max abs error {error}"


def test_torch_and_onnx_runtime_agree_on_real_fashion_mnist(tiny_fmnist_model: Path):
    images_file = Path(FASHION_MNIST_DIR) / "t10k-images-idx3-ubyte.gz"
    labels_file = Path(FASHION_MNIST_DIR) / "t10k-labels-idx1-ubyte.gz"
    if not images_file.exists():
        pytest.skip(f"{images_file} missing: sudo apt-get install dataset-fashion-mnist")
    images = read_idx(images_file)[:8].astype(np.float32)[:, None] / 255.0
    labels = np.eye(10, dtype=np.float32)[read_idx(labels_file)[:8]]
    model, _ = load_model(_checkpoint(tiny_fmnist_model))
    engine = Engine(tiny_fmnist_model, providers=(CPU_PROVIDER,))
    for mask_row in all_masks(2):
        mask = np.tile(mask_row, (8, 1))
        error = compare_with_torch(model, engine, {"image": images, "label": labels}, mask)
        assert error <= MAX_ABS_ERROR, f"mask {mask_row}: max abs error {error}"


def test_comparison_detects_a_model_that_differs(tiny_robot_model: Path):
    model, _ = load_model(_checkpoint(tiny_robot_model))
    engine = Engine(tiny_robot_model, providers=(CPU_PROVIDER,))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05)
    inputs = random_inputs(engine.manifest, 2, np.random.default_rng(11))
    assert compare_with_torch(model, engine, inputs, np.ones((2, 3), np.float32)) > 1e-3


def test_graph_is_checker_clean_with_named_io_and_a_dynamic_batch(exported):
    path, _, engine = exported
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    opsets = {o.domain: o.version for o in proto.opset_import}
    assert opsets.get("", opsets.get("ai.onnx")) >= 17
    names = engine.manifest.names
    assert [i.name for i in proto.graph.input] == [*names, MASK_INPUT]
    outputs = [CORE_MEAN, CORE_LOGVAR, *(recon_output(n) for n in names)]
    assert [o.name for o in proto.graph.output] == outputs
    for value in [*proto.graph.input, *proto.graph.output]:
        batch = value.type.tensor_type.shape.dim[0]
        assert batch.dim_param and not batch.dim_value, f"{value.name}: batch axis is fixed"


def test_manifest_round_trips_through_the_file(tiny_robot_model: Path):
    state = load_checkpoint(_checkpoint(tiny_robot_model))
    _, config = load_model(_checkpoint(tiny_robot_model))
    from_file = read_manifest(tiny_robot_model)
    # the same JSON through onnx's own reader
    props = {p.key: p.value for p in onnx.load(str(tiny_robot_model)).metadata_props}
    assert Manifest.from_json(props[METADATA_KEY]) == from_file
    assert Manifest.from_json(from_file.to_json()) == from_file
    expected = build_manifest(config, from_file.provenance)
    assert from_file == expected
    camera, audio, joints = from_file.modalities
    assert (camera.shape, camera.ros.topic, camera.ros.msg_type) == (
        (3, 32, 32), "camera/image_raw", "sensor_msgs/msg/Image")
    assert audio.shape == (1, 16, 30) and audio.preprocess["window_samples"] == 4000
    assert joints.preprocess["joint_names"] == ["shoulder", "elbow", "wrist"]
    assert from_file.core_latent_dim == config.model.core_latent_dim
    prov = from_file.provenance
    assert prov["epochs"] == state["epoch"] == 0
    assert prov["dataset"] == "npz" and prov["checkpoint"] == "tiny_robot.pt"
    assert prov["code_version"].startswith("0.1.0") and prov["opset"] >= 17
    assert prov["export_time"].endswith("+00:00")


def test_cli_exports_at_opset_17_with_card_and_metrics(tiny_robot_model: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]):
    state = load_checkpoint(_checkpoint(tiny_robot_model))
    state["epoch"] = 3
    state["metrics"] = {"val": {"elbo": -123.5}, "train": {"elbo": -120.25}}
    checkpoint = tmp_path / "trained.pt"
    save_checkpoint(checkpoint, state)
    out = tmp_path / "models" / "robot.onnx"
    argv = [str(checkpoint), "-o", str(out), "--opset", "17", "--description", "A test arm.",
            "--command", "sensorysync-train --config robot.yaml", "--command", "echo done"]
    assert main(argv) == 0
    assert "max abs error" in capsys.readouterr().out
    proto = onnx.load(str(out))
    assert {o.domain: o.version for o in proto.opset_import}[""] == 17
    manifest = read_manifest(out)
    assert manifest.provenance["metrics"]["val"]["elbo"] == -123.5
    assert manifest.provenance["epochs"] == 3
    card = out.with_suffix(".md").read_text()
    assert card.startswith("# Model card: robot\n\nA test arm.\n")
    assert "```bash\nsensorysync-train --config robot.yaml\necho done\n```" in card
    assert "| camera | image | 3x32x32 | laplace | 4 | camera/image_raw |" in card
    assert "| val | elbo | -123.5 |" in card
    assert "joint_names = [\"shoulder\", \"elbow\", \"wrist\"]" in card
    assert not list(out.parent.glob(".*tmp"))  # no temporary file left behind


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["missing.pt", "-o", "m.onnx"], "error: checkpoint .*missing.pt' does not exist"),
        (["{ckpt}", "-o", "m.onnx", "--opset", "16"], "error: opset 16 is too old; use 17"),
        (["{ckpt}", "-o", "m.txt"], "error: output .*m.txt' must end in .onnx"),
    ],
)
def test_cli_errors_are_one_line(argv, expected, tiny_robot_model: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    argv = [a.format(ckpt=_checkpoint(tiny_robot_model)) for a in argv]
    assert main(argv) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert not list(tmp_path.glob("*.onnx"))
    assert re.match(expected, err), err


def test_export_rejects_a_model_without_export_forward(tiny_robot_model: Path, tmp_path: Path):
    manifest = read_manifest(tiny_robot_model)
    with pytest.raises(ExportError, match="has no export_forward"):
        export_model(torch.nn.Linear(2, 2), manifest, tmp_path / "x.onnx")


def test_model_card_is_written_beside_the_model(tiny_robot_model: Path):
    card = tiny_robot_model.with_suffix(".md").read_text()
    assert card.startswith("# Model card: tiny_robot")
    assert "## Modalities" in card and "## ONNX interface" in card
    assert "## Metrics" not in card  # an untrained checkpoint has no metrics
    assert "| epochs | 0 |" in card


def test_model_card_renders_flat_metrics_long_lists_and_extra_provenance(tiny_robot_model: Path):
    manifest = read_manifest(tiny_robot_model)
    joints = manifest.modalities[2]
    long_loc = [0.5] * 9
    joints = dataclasses.replace(joints, preprocess={**joints.preprocess, "loc": long_loc})
    manifest = dataclasses.replace(
        manifest,
        modalities=(*manifest.modalities[:2], joints),
        provenance={"name": "arm|v2", "metrics": {"psnr_db": 23.456789, "ssim": 0.81},
                    "robot": "sim arm"},
    )
    card = render_model_card(manifest, model_file="arm.onnx")
    assert card.startswith("# Model card: arm|v2")
    assert "| metric | value |\n| --- | --- |\n| psnr_db | 23.4568 |\n| ssim | 0.81 |" in card
    assert "loc = [0.5, 0.5, 0.5, 0.5, ... (9 values)]" in card
    assert "| robot | sim arm |" in card
    assert "arm\\|v2" not in card  # the name is the title, not an (escaped) provenance row
