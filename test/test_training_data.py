"""Datasets: the paper split bit-exact, IDX reading (gz and raw), npz datasets, error messages."""

from __future__ import annotations

import dataclasses
import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from sensorysync_training.config import Config, load_config
from sensorysync_training.data import (
    FASHION_MNIST_DIR,
    DataError,
    load_splits,
    read_idx,
    resolve_config,
    split_indices,
)
from sensorysync_training.train import main as train_main

CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"
HAVE_FMNIST = (Path(FASHION_MNIST_DIR) / "train-images-idx3-ubyte.gz").is_file()


def test_paper_split_is_the_randomstate0_permutation_cut_85_15_with_last_10pct_val():
    train, val, test = split_indices(70_000)
    assert (len(train), len(val), len(test)) == (53_550, 5_950, 10_500)
    perm = np.random.RandomState(0).permutation(70_000)
    assert np.array_equal(np.concatenate([train, val, test]), perm)
    assert np.array_equal(val, perm[59_500 - 5_950 : 59_500])
    assert np.array_equal(test, perm[59_500:])
    assert len(set(train) | set(val) | set(test)) == 70_000


def _write_idx(path: Path, array: np.ndarray, *, gz: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


def _fake_mnist(directory: Path, *, gz: bool, n_train: int = 80, n_test: int = 20) -> None:
    rng = np.random.default_rng(0)
    directory.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28))
        labels = (np.arange(n) + (0 if prefix == "train" else 3)) % 10
        _write_idx(directory / f"{prefix}-images-idx3-ubyte{suffix}", images, gz=gz)
        _write_idx(directory / f"{prefix}-labels-idx1-ubyte{suffix}", labels, gz=gz)


def _config(kind: str, directory: Path) -> Config:
    config = load_config(CONFIGS / "tiny.yaml")
    return config.replace(data=dataclasses.replace(
        config.data, kind=kind, dir=str(directory), train_limit=None, val_limit=None))


def test_idx_gz_and_raw_give_identical_splits_in_the_paper_order(tmp_path: Path):
    _fake_mnist(tmp_path / "gz", gz=True)
    _fake_mnist(tmp_path / "raw", gz=False)
    a = load_splits(_config("mnist", tmp_path / "gz"))
    b = load_splits(_config("mnist", tmp_path / "raw"))
    images = np.concatenate([read_idx(tmp_path / "raw" / "train-images-idx3-ubyte"),
                             read_idx(tmp_path / "raw" / "t10k-images-idx3-ubyte")])
    train_idx, val_idx, test_idx = split_indices(100)
    for split_a, split_b, idx in ((a.train, b.train, train_idx), (a.val, b.val, val_idx),
                                  (a.test, b.test, test_idx)):
        for ta, tb in zip(split_a.tensors, split_b.tensors):
            assert ta.dtype == tb.dtype and bool((ta == tb).all())
        np.testing.assert_array_equal(np.rint(split_a.tensors[0].numpy()[:, 0] * 255), images[idx])
    assert a.train.tensors[1].sum(1).eq(1).all()


def test_missing_dataset_dir_is_one_line_naming_dir_and_apt_package(tmp_path: Path, capsys):
    config = yaml.safe_load((CONFIGS / "tiny.yaml").read_text())
    config["data"]["dir"] = str(tmp_path / "nowhere")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    code = train_main(["--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err.startswith("error: ") and "\n" not in err
    assert str(tmp_path / "nowhere") in err and "dataset-fashion-mnist" in err
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_corrupt_idx_file_is_named(tmp_path: Path):
    _fake_mnist(tmp_path, gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"\x01\x02\x03\x04rubbish")
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.*bad magic"):
        load_splits(_config("mnist", tmp_path))


def _npz_dataset(directory: Path, n: int = 40) -> dict:
    rng = np.random.default_rng(1)
    directory.mkdir()
    arrays = {
        "image": rng.random((n, 1, 28, 28), dtype=np.float32),
        "label": np.eye(10, dtype=np.float32)[np.arange(n) % 10],
        "stamp_ns": np.arange(n, dtype=np.int64) * 33_000_000,
    }
    np.savez(directory / "samples.npz", **arrays)
    config = load_config(CONFIGS / "tiny.yaml")
    specs = [dataclasses.asdict(m.to_spec()) for m in config.modalities]
    specs[0]["preprocess"] = {"encoding": "rgb8"}
    (directory / "meta.json").write_text(json.dumps({"modalities": specs}))
    return arrays


def test_npz_dataset_takes_preprocess_from_meta_and_splits_like_the_paper(tmp_path: Path):
    arrays = _npz_dataset(tmp_path / "ds")
    config = _config("npz", tmp_path / "ds")
    blank = config.replace(modalities=(
        dataclasses.replace(config.modalities[0], preprocess={}), config.modalities[1]))
    resolved = resolve_config(blank)
    assert resolved.modalities[0].preprocess == {"encoding": "rgb8"}
    splits = load_splits(resolved)
    train_idx, _, test_idx = split_indices(40)
    np.testing.assert_array_equal(splits.train.tensors[0].numpy(), arrays["image"][train_idx])
    np.testing.assert_array_equal(splits.test.tensors[1].numpy(), arrays["label"][test_idx])
    with pytest.raises(DataError, match="differs from"):
        resolve_config(config)  # tiny.yaml says mono8, the dataset says rgb8


def test_npz_dataset_shape_mismatch_is_named(tmp_path: Path):
    _npz_dataset(tmp_path / "ds")
    config = _config("npz", tmp_path / "ds")
    wrong = config.replace(modalities=(
        dataclasses.replace(config.modalities[0], shape=(1, 32, 32)), config.modalities[1]))
    with pytest.raises(DataError, match=r"'image'.*\[1, 32, 32\]"):
        resolve_config(wrong)


@pytest.mark.skipif(not HAVE_FMNIST, reason="apt package dataset-fashion-mnist not installed")
def test_real_fashion_mnist_splits_are_bit_exact():
    config = load_config(CONFIGS / "fashion_mnist.yaml")
    splits = load_splits(config)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (53_550, 5_950, 10_500)
    d = Path(FASHION_MNIST_DIR)
    images = np.concatenate([read_idx(d / "train-images-idx3-ubyte.gz"),
                             read_idx(d / "t10k-images-idx3-ubyte.gz")])
    labels = np.concatenate([read_idx(d / "train-labels-idx1-ubyte.gz"),
                             read_idx(d / "t10k-labels-idx1-ubyte.gz")])
    perm = np.random.RandomState(0).permutation(70_000)
    for split, idx in ((splits.train, perm[:53_550]), (splits.test, perm[59_500:])):
        image, label = split.tensors
        assert image.shape[1:] == (1, 28, 28)
        np.testing.assert_array_equal(
            np.rint(image[:50].numpy()[:, 0] * 255).astype(np.uint8), images[idx[:50]])
        np.testing.assert_array_equal(label.numpy().argmax(1), labels[idx])
