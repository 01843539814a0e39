"""Datasets: bimodal MNIST / Fashion-MNIST from IDX files, and extracted robot data (npz).

The paper's split (shared with other tools, keep it bit-exact): the 60,000 training images
followed by the 10,000 test images (70,000), permuted by
``numpy.random.RandomState(0).permutation(70000)``; the first 59,500 are training (its last
10 % = 5,950 validation) and the last 10,500 the test set. npz datasets use the same fractions
on their own length.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .config import Config, ModalityConfig

__all__ = [
    "FASHION_MNIST_DIR",
    "DataError",
    "MultimodalData",
    "Splits",
    "load_splits",
    "read_idx",
    "resolve_config",
    "split_indices",
]

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
TEST_FRACTION = 0.15
VAL_FRACTION = 0.10  # of the training part
IDX_STEMS = ("train-images", "train-labels", "t10k-images", "t10k-labels")
# where each IDX data kind comes from when its files are missing
IDX_SOURCES = {
    "fashion_mnist": "install them with `sudo apt-get install dataset-fashion-mnist`",
    "mnist": "download the four MNIST IDX files (gz or raw) there",
}


class DataError(RuntimeError):
    """Training data is missing, malformed or does not match the config."""


@dataclass(frozen=True)
class MultimodalData:
    """Aligned float32 tensors, one per modality (config order), first axis = sample."""

    names: tuple[str, ...]
    tensors: tuple[Tensor, ...]

    def __len__(self) -> int:
        return int(self.tensors[0].shape[0])

    def batch(self, idx: Tensor) -> list[Tensor]:
        return [t[idx] for t in self.tensors]

    def head(self, n: int | None) -> MultimodalData:
        """The first ``n`` samples (all when ``n`` is None)."""
        return self if n is None else MultimodalData(self.names, tuple(t[:n] for t in self.tensors))


@dataclass(frozen=True)
class Splits:
    train: MultimodalData
    val: MultimodalData
    test: MultimodalData


def split_indices(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, val, test) indices: RandomState(0) permutation, 85 % / 15 %, last 10 % val."""
    perm = np.random.RandomState(0).permutation(n)
    n_trainval = round(n * (1 - TEST_FRACTION))
    n_val = round(n_trainval * VAL_FRACTION)
    return perm[: n_trainval - n_val], perm[n_trainval - n_val : n_trainval], perm[n_trainval:]


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (gz or raw) as a numpy uint8 array of its declared shape."""
    path = Path(path)
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{str(path)!r} is not an unsigned-byte IDX file (bad magic {raw[:4]!r})")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{str(path)!r} holds {data.size} bytes of data, header says {dims}")
    return data.reshape(dims)


def _idx_path(directory: Path, stem: str) -> Path | None:
    for name in (f"{stem}-idx{{}}-ubyte", f"{stem}.idx{{}}-ubyte"):
        for ndim in (1, 3):
            for suffix in (".gz", ""):
                candidate = directory / (name.format(ndim) + suffix)
                if candidate.is_file():
                    return candidate
    return None


def _load_idx_dataset(config: Config) -> tuple[np.ndarray, np.ndarray]:
    """All 70,000 images (N, 28, 28) and labels (N,), training files first."""
    kind = config.data.kind
    directory = Path(config.data.dir or FASHION_MNIST_DIR)
    paths = {stem: _idx_path(directory, stem) for stem in IDX_STEMS}
    missing = [stem for stem, p in paths.items() if p is None]
    if missing:
        raise DataError(
            f"{kind} IDX files {missing} not found in {str(directory)!r}: "
            f"{IDX_SOURCES[kind]}, or set data.dir / --data-dir"
        )
    arrays = {stem: read_idx(p) for stem, p in paths.items() if p is not None}
    images = np.concatenate([arrays["train-images"], arrays["t10k-images"]])
    labels = np.concatenate([arrays["train-labels"], arrays["t10k-labels"]])
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{str(directory)!r}: {images.shape[0]} images but {labels.shape[0]} labels"
        )
    return images, labels


def _idx_tensors(config: Config, idx: np.ndarray, images: np.ndarray, labels: np.ndarray
                 ) -> tuple[Tensor, ...]:
    image_cfg, label_cfg = config.modalities
    n_classes = label_cfg.shape[0]
    x_image = torch.from_numpy(images[idx].astype(np.float32) / 255.0).reshape(-1, *image_cfg.shape)
    x_label = torch.nn.functional.one_hot(torch.from_numpy(labels[idx].astype(np.int64)),
                                          n_classes).float()
    return x_image, x_label


def _check_idx_modalities(config: Config) -> None:
    mods = config.modalities
    if (len(mods) != 2 or mods[0].kind != "image" or tuple(mods[0].shape) != (1, 28, 28)
            or mods[1].kind != "categorical" or tuple(mods[1].shape) != (10,)):
        got = [(m.name, m.kind, list(m.shape)) for m in mods]
        raise DataError(
            f"data.kind {config.data.kind!r} provides an image (1, 28, 28) then a categorical "
            f"(10,) modality; the config declares {got}"
        )


def _npz_dir(config: Config) -> Path:
    if config.data.dir is None:
        raise DataError("data.kind 'npz' needs data.dir: a folder made by sensorysync-extract")
    return Path(config.data.dir)


def _read_meta(directory: Path) -> dict[str, Any]:
    path = directory / "meta.json"
    try:
        meta = json.loads(path.read_text())
    except OSError as err:
        raise DataError(
            f"cannot read {str(path)!r} ({err.strerror}); make the dataset with sensorysync-extract"
        ) from err
    except json.JSONDecodeError as err:
        raise DataError(f"{str(path)!r} is not valid JSON: {err}") from err
    return {m["name"]: m for m in meta.get("modalities", [])}


def _resolve_modality(m: ModalityConfig, spec: dict[str, Any] | None, where: str
                      ) -> ModalityConfig:
    if spec is None:
        raise DataError(f"modality {m.name!r} of the config is not in {where}")
    if spec["kind"] != m.kind or tuple(spec["shape"]) != tuple(m.shape):
        raise DataError(
            f"modality {m.name!r}: config says kind {m.kind!r} shape {list(m.shape)}, {where} says "
            f"kind {spec['kind']!r} shape {list(spec['shape'])}"
        )
    if m.preprocess and m.preprocess != spec["preprocess"]:
        raise DataError(
            f"modality {m.name!r}: config preprocess {m.preprocess} differs from {where} "
            f"{spec['preprocess']}; leave it empty ({{}}) to take the dataset's"
        )
    return dataclasses.replace(m, preprocess=dict(spec["preprocess"]))


def resolve_config(config: Config) -> Config:
    """The config completed from the dataset: for npz, preprocess comes from meta.json."""
    if config.data.kind != "npz":
        return config
    directory = _npz_dir(config)
    specs = _read_meta(directory)
    where = str(directory / "meta.json")
    modalities = tuple(_resolve_modality(m, specs.get(m.name), where) for m in config.modalities)
    return config.replace(modalities=modalities)


def _load_npz(config: Config) -> tuple[Tensor, ...]:
    path = _npz_dir(config) / "samples.npz"
    try:
        archive = np.load(path)
    except OSError as err:
        raise DataError(
            f"cannot read {str(path)!r}: {err}; make the dataset with sensorysync-extract"
        ) from err
    tensors = []
    with archive:
        for m in config.modalities:
            if m.name not in archive.files:
                raise DataError(f"{str(path)!r} has no array {m.name!r} (has {archive.files})")
            array = archive[m.name]
            if tuple(array.shape[1:]) != tuple(m.shape):
                raise DataError(
                    f"{str(path)!r}: array {m.name!r} is {array.shape}, "
                    f"expected (N, {', '.join(map(str, m.shape))})"
                )
            tensors.append(torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)))
    if len({t.shape[0] for t in tensors}) != 1:
        raise DataError(f"{str(path)!r}: arrays have different lengths {[len(t) for t in tensors]}")
    return tuple(tensors)


def load_splits(config: Config) -> Splits:
    """Train / validation / test data for a (resolved) config, limits applied."""
    names = config.names
    if config.data.kind == "npz":
        tensors = _load_npz(config)
        parts = [tuple(t[torch.from_numpy(i)] for t in tensors)
                 for i in split_indices(len(tensors[0]))]
    else:
        _check_idx_modalities(config)
        images, labels = _load_idx_dataset(config)
        parts = [_idx_tensors(config, i, images, labels) for i in split_indices(len(images))]
    train, val, test = (MultimodalData(names, p) for p in parts)
    return Splits(train.head(config.data.train_limit), val.head(config.data.val_limit), test)
