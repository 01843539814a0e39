"""sensorysync-train end to end: resume is bit-exact, torchrun ranks agree, NaN stops cleanly,
and 210 steps on real Fashion-MNIST lower the validation loss."""

from __future__ import annotations

import csv
import dataclasses
import gzip
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from sensorysync_training.checkpoint import (
    load_checkpoint,
    load_model,
    parameter_digest,
    save_checkpoint,
)
from sensorysync_training.config import load_config
from sensorysync_training.data import FASHION_MNIST_DIR, load_splits
from sensorysync_training.registry import build_model
from sensorysync_training.train import Runtime, evaluate
from sensorysync_training.train import main as train_main

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "training" / "configs"
HAVE_FMNIST = (Path(FASHION_MNIST_DIR) / "train-images-idx3-ubyte.gz").is_file()


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tests share 2 cores: torch's default 2 threads spin against each other under load."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


@pytest.fixture
def small_mnist(tmp_path: Path) -> Path:
    """A 200-sample MNIST-format dataset (random pixels) and a tiny config reading it."""
    rng = np.random.default_rng(0)
    data = tmp_path / "mnist"
    data.mkdir()
    for prefix, n in (("train", 160), ("t10k", 40)):
        _write_idx(data / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(data / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    config = yaml.safe_load((CONFIGS / "tiny.yaml").read_text())
    config["data"] = {"kind": "mnist", "dir": str(data)}
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _train(*args: str | Path) -> int:
    return train_main([str(a) for a in args] + ["--quiet"])


def test_resume_after_one_epoch_equals_an_uninterrupted_two_epoch_run(small_mnist: Path,
                                                                       tmp_path: Path):
    assert _train("--config", small_mnist, "--out", tmp_path / "full", "--epochs", "2") == 0
    assert _train("--config", small_mnist, "--out", tmp_path / "split", "--epochs", "1") == 0
    first = load_checkpoint(tmp_path / "split" / "checkpoint.pt")
    assert first["epoch"] == 1
    assert _train("--out", tmp_path / "split", "--resume", "--epochs", "2") == 0
    full = load_checkpoint(tmp_path / "full" / "checkpoint.pt")
    resumed = load_checkpoint(tmp_path / "split" / "checkpoint.pt")
    assert resumed["epoch"] == full["epoch"] == 2
    for key, value in full["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
    assert not torch.equal(first["model"]["core_encoder.loc.weight"],
                           full["model"]["core_encoder.loc.weight"])
    assert resumed["metrics"] == full["metrics"]
    rows = list(csv.DictReader((tmp_path / "split" / "metrics.csv").open()))
    assert [(r["epoch"], r["split"]) for r in rows] == [
        ("1", "train"), ("1", "val"), ("2", "train"), ("2", "val")]
    model, config = load_model(tmp_path / "split" / "checkpoint.pt")
    assert config.train.epochs == 2 and not model.training
    assert list((tmp_path / "split" / "tb").iterdir()), "no TensorBoard events written"


def test_existing_run_needs_resume_and_resume_needs_a_checkpoint(small_mnist: Path,
                                                                 tmp_path: Path, capsys):
    assert _train("--out", tmp_path / "none", "--resume") == 1
    assert "does not exist" in capsys.readouterr().err
    assert _train("--config", small_mnist, "--out", tmp_path / "r", "--epochs", "1") == 0
    capsys.readouterr()
    assert _train("--config", small_mnist, "--out", tmp_path / "r") == 1
    assert "--resume" in capsys.readouterr().err


def _npz_run(tmp_path: Path, n: int = 64) -> tuple[Path, dict[str, np.ndarray]]:
    rng = np.random.default_rng(2)
    data = tmp_path / "ds"
    data.mkdir()
    arrays = {
        "image": rng.random((n, 1, 28, 28), dtype=np.float32),
        "label": np.eye(10, dtype=np.float32)[np.arange(n) % 10],
        "stamp_ns": np.arange(n, dtype=np.int64),
    }
    np.savez(data / "samples.npz", **arrays)
    config = load_config(CONFIGS / "tiny.yaml")
    specs = [dataclasses.asdict(m.to_spec()) for m in config.modalities]
    (data / "meta.json").write_text(json.dumps({"modalities": specs}))
    raw = yaml.safe_load((CONFIGS / "tiny.yaml").read_text())
    raw["data"] = {"kind": "npz", "dir": str(data)}
    raw["train"]["batch_size"] = 16
    path = tmp_path / "npz.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path, arrays


def _failing_resume(tmp_path: Path, capsys, corrupt) -> str:
    """Train one clean epoch, corrupt (data or weights), resume: the error line; the last
    good checkpoint must be byte-identical afterwards."""
    cfg, arrays = _npz_run(tmp_path)
    assert _train("--config", cfg, "--out", tmp_path / "run", "--epochs", "1") == 0
    ckpt = tmp_path / "run" / "checkpoint.pt"
    corrupt(arrays, ckpt)
    before = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    capsys.readouterr()
    assert _train("--out", tmp_path / "run", "--resume", "--epochs", "3") == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: step 4: ") and "\n" not in err, err  # 3 steps per epoch
    assert "checkpoint.pt' is kept" in err
    assert hashlib.sha256(ckpt.read_bytes()).hexdigest() == before
    assert load_checkpoint(ckpt)["epoch"] == 1
    return err


def test_nan_in_a_batch_stops_training_naming_step_and_modality(tmp_path: Path, capsys):
    def corrupt(arrays: dict[str, np.ndarray], ckpt: Path) -> None:
        arrays["label"][5, 3] = np.nan
        arrays["label"][:, 0] = np.inf
        np.savez(tmp_path / "ds" / "samples.npz", **arrays)

    err = _failing_resume(tmp_path, capsys, corrupt)
    assert "input batch of modality 'label' contains NaN or inf" in err, err


def test_non_finite_loss_stops_training_naming_step_and_modality(tmp_path: Path, capsys):
    def corrupt(arrays: dict[str, np.ndarray], ckpt: Path) -> None:
        state = load_checkpoint(ckpt)
        state["model"]["nets.0.decoder_convs.2.bias"].fill_(float("inf"))
        save_checkpoint(ckpt, {k: v for k, v in state.items() if k != "format"})

    err = _failing_resume(tmp_path, capsys, corrupt)
    assert re.search(r"loss is (nan|inf); non-finite terms \[.*'recon/image'.*\] "
                     r"\(modality 'image'\)", err), err


def test_torchrun_two_cpu_ranks_finish_with_identical_parameters(small_mnist: Path,
                                                                  tmp_path: Path):
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "sensorysync_training.train",
         "--config", str(small_mnist), "--out", str(tmp_path / "ddp"), "--epochs", "2",
         "--device", "cpu", "--quiet"],
        capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    digests = dict(re.findall(r"rank (\d)/2: parameters sha256 ([0-9a-f]{64})", result.stdout))
    assert set(digests) == {"0", "1"}, result.stdout
    assert digests["0"] == digests["1"]
    model, _ = load_model(tmp_path / "ddp" / "checkpoint.pt")
    assert parameter_digest(model) == digests["0"]
    state = load_checkpoint(tmp_path / "ddp" / "checkpoint.pt")
    assert state["epoch"] == 2 and len(state["rng"]) == 2


@pytest.mark.skipif(not HAVE_FMNIST, reason="apt package dataset-fashion-mnist not installed")
def test_two_hundred_steps_on_fashion_mnist_lower_the_validation_loss(tmp_path: Path):
    raw = yaml.safe_load((CONFIGS / "fashion_mnist.yaml").read_text())
    raw["data"].update(train_limit=19_200, val_limit=500)
    path = tmp_path / "fm.yaml"
    path.write_text(yaml.safe_dump(raw))
    config = load_config(path)
    torch.manual_seed(config.train.seed)  # the initial weights the run starts from
    initial = evaluate(build_model(config), load_splits(config).val, config,
                       Runtime(0, 1, torch.device("cpu")))
    assert _train("--config", path, "--out", tmp_path / "run", "--epochs", "3",
                  "--max-steps", "70", "--device", "cpu") == 0
    rows = [r for r in csv.DictReader((tmp_path / "run" / "metrics.csv").open())
            if r["split"] == "val"]
    val_loss = [float(r["loss"]) for r in rows]
    assert len(val_loss) == 3
    assert val_loss[-1] < val_loss[0] < initial["loss"] - 100, (initial["loss"], val_loss)
