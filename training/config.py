"""Training configuration: frozen dataclasses loaded from YAML.

Every key is checked: unknown keys and missing required keys are reported together in one
``ConfigError``; then the values are checked (kinds, likelihoods, shapes, probabilities) and all
problems are again reported together. ``Config.to_dict()`` gives the resolved config in the same
key layout as the YAML file; it is stored in every checkpoint so a model can be rebuilt from the
checkpoint alone (``Config.from_dict``).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from sensorysync_ros.manifest import KINDS, LIKELIHOODS, ModalitySpec, RosBinding

__all__ = [
    "ACTIVATIONS",
    "ARCHS",
    "DATA_KINDS",
    "MODEL_TYPES",
    "Config",
    "ConfigError",
    "DataConfig",
    "ModalityConfig",
    "ModelConfig",
    "NetworkConfig",
    "TrainConfig",
    "load_config",
]

ARCHS = ("conv", "mlp")
ACTIVATIONS = ("swish", "relu", "leaky_relu", "tanh")
DATA_KINDS = ("fashion_mnist", "mnist", "npz")
MODEL_TYPES = ("sensorysync", "jmvae", "mvae")


class ConfigError(ValueError):
    """A training config is malformed: unknown or missing keys, or invalid values."""


@dataclass(frozen=True)
class NetworkConfig:
    """Layer sizes of one modality network (encoder; the decoder mirrors it)."""

    arch: str  # "conv" (input shape (C, H, W), each conv layer halves H and W) or "mlp"
    hidden: tuple[int, ...]  # linear layer widths after the convs; the last one is h_i
    channels: tuple[int, ...] = ()  # conv channels (arch "conv" only), e.g. (32, 64)
    activation: str = "swish"
    batch_norm: bool = False  # BatchNorm after every hidden layer (paper's MNIST image net)


@dataclass(frozen=True)
class ModalityConfig:
    """One modality: what the manifest needs plus its network and loss weights."""

    name: str
    kind: str  # image | categorical | vector | audio
    shape: tuple[int, ...]  # per-sample tensor shape, e.g. (1, 28, 28)
    likelihood: str  # bernoulli | gaussian | laplace | categorical
    preprocess: dict[str, Any]  # copied verbatim to the manifest
    ros: dict[str, Any]  # {"topic": str, "msg_type": str, "rate_hz": float}
    network: NetworkConfig
    latent_dim: int  # size of z_i^m
    lambda_: float = field(default=1.0, metadata={"key": "lambda"})  # reconstruction weight
    beta_m: float = 1.0  # weight of KL(q(z_i^m|x_i) || p(z_i^m|z^c))
    drop_prob: float = 0.5  # w_i: probability that h_i is zeroed by the dropout

    def to_spec(self) -> ModalitySpec:
        """The manifest's description of this modality."""
        return ModalitySpec(
            name=self.name,
            kind=self.kind,
            shape=self.shape,
            likelihood=self.likelihood,
            preprocess=dict(self.preprocess),
            ros=RosBinding(
                topic=str(self.ros["topic"]),
                msg_type=str(self.ros["msg_type"]),
                rate_hz=float(self.ros["rate_hz"]),
            ),
        )


@dataclass(frozen=True)
class ModelConfig:
    """Model type and the sizes and weights that are not per modality."""

    type: str  # sensorysync | jmvae | mvae (see registry.py)
    core_hidden: tuple[int, ...]  # core encoder widths; the core decoders mirror them
    core_latent_dim: int  # size of z^c
    core_activation: str = "swish"
    beta_c: float = 1.0  # weight of KL(q(z^c|h^d) || N(0, I))
    warmup_modality_epochs: float = 0.0  # U_m: modality KL weight ramps 0 -> beta_m
    warmup_core_epochs: float = 0.0  # U_c: core KL weight ramps 0 -> beta_c
    warmup_baseline_epochs: float = 0.0  # U_b: the baselines' single KL warm-up
    baseline_latent_dim: int = 26  # the baselines' single joint latent
    jmvae_alpha: float = 0.01  # JMVAE-kl weight of the unimodal KL terms


@dataclass(frozen=True)
class DataConfig:
    """Where the training data comes from."""

    kind: str  # fashion_mnist | mnist | npz
    dir: str | None = None  # None: /usr/share/datasets/fashion-mnist for fashion_mnist
    train_limit: int | None = None  # use only the first N training samples (tests, smoke runs)
    val_limit: int | None = None  # use only the first N validation samples


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings."""

    epochs: int
    batch_size: int
    lr: float
    seed: int = 0
    val_batch_size: int = 512


@dataclass(frozen=True)
class Config:
    """A whole training run."""

    data: DataConfig
    modalities: tuple[ModalityConfig, ...]
    model: ModelConfig
    train: TrainConfig

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.modalities)

    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON/YAML data, in the file's key layout."""
        return _to_data(self)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "config") -> Config:
        """Build and validate a config; raise ConfigError listing every problem."""
        problems: list[str] = []
        config = _build(cls, data, "", problems)
        if problems:
            raise ConfigError(f"{source}: " + "; ".join(problems))
        assert isinstance(config, Config)
        value_problems = _check_values(config)
        if value_problems:
            raise ConfigError(f"{source}: " + "; ".join(value_problems))
        return config

    def replace(self, **sections: Any) -> Config:
        """A copy with whole sections replaced (e.g. ``train=...``)."""
        return dataclasses.replace(self, **sections)


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML training config."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"cannot read config {str(path)!r}: {err.strerror}") from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"config {str(path)!r} is not valid YAML: {err}") from err
    return Config.from_dict(data, source=str(path))


def _key(f: dataclasses.Field[Any]) -> str:
    return str(f.metadata.get("key", f.name))


def _build(tp: Any, data: Any, where: str, problems: list[str]) -> Any:
    """Convert plain data to ``tp``, appending every problem found to ``problems``."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build_dataclass(tp, data, where, problems)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if data is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _build(inner, data, where, problems)
    if origin is tuple:
        inner = typing.get_args(tp)[0]
        if not isinstance(data, (list, tuple)):
            problems.append(f"{where} must be a list, got {data!r}")
            return ()
        return tuple(_build(inner, v, f"{where}[{i}]", problems) for i, v in enumerate(data))
    if origin is dict:
        if not isinstance(data, dict):
            problems.append(f"{where} must be a mapping, got {data!r}")
            return {}
        return dict(data)
    return _build_scalar(tp, data, where, problems)


def _build_scalar(tp: Any, data: Any, where: str, problems: list[str]) -> Any:
    if tp is bool:
        if isinstance(data, bool):
            return data
    elif tp is int:
        if isinstance(data, int) and not isinstance(data, bool):
            return data
    elif tp is float:
        if isinstance(data, (int, float)) and not isinstance(data, bool):
            return float(data)
        if isinstance(data, str):  # PyYAML reads "1e-3" (no dot) as a string
            try:
                return float(data)
            except ValueError:
                pass
    elif tp is str and isinstance(data, str):
        return data
    problems.append(f"{where} must be {tp.__name__}, got {data!r}")
    return data


def _build_dataclass(cls: Any, data: Any, where: str, problems: list[str]) -> Any:
    if not isinstance(data, dict):
        problems.append(f"{where or 'the config'} must be a mapping, got {data!r}")
        return None
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    known = {_key(f) for f in fields}
    prefix = f"{where}." if where else ""
    n_problems = len(problems)
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        problems.append(f"unknown keys {[prefix + k for k in unknown]}")
    missing = [
        prefix + _key(f)
        for f in fields
        if _key(f) not in data
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        problems.append(f"missing keys {missing}")
    kwargs = {
        f.name: _build(hints[f.name], data[_key(f)], prefix + _key(f), problems)
        for f in fields
        if _key(f) in data
    }
    return None if len(problems) > n_problems else cls(**kwargs)


def _to_data(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {_key(f): _to_data(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple):
        return [_to_data(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _to_data(v) for k, v in obj.items()}
    return obj


def _check_values(config: Config) -> list[str]:
    """Every value-level problem of an otherwise well-formed config."""
    problems: list[str] = []
    if config.data.kind not in DATA_KINDS:
        problems.append(f"data.kind {config.data.kind!r} is not one of {DATA_KINDS}")
    if config.model.type not in MODEL_TYPES:
        problems.append(f"model.type {config.model.type!r} is not one of {MODEL_TYPES}")
    if len(config.modalities) < 2:
        problems.append(f"need >= 2 modalities, got {len(config.modalities)}")
    if len(set(config.names)) != len(config.names):
        problems.append(f"duplicate modality names in {list(config.names)}")
    sizes = {
        "model.core_latent_dim": config.model.core_latent_dim,
        "model.baseline_latent_dim": config.model.baseline_latent_dim,
        "train.epochs": config.train.epochs,
        "train.batch_size": config.train.batch_size,
        "train.val_batch_size": config.train.val_batch_size,
        **{f"model.core_hidden[{i}]": w for i, w in enumerate(config.model.core_hidden)},
    }
    problems += [f"{k} must be > 0, got {v}" for k, v in sizes.items() if v <= 0]
    if config.model.core_activation not in ACTIVATIONS:
        problems.append(
            f"model.core_activation {config.model.core_activation!r} is not one of {ACTIVATIONS}"
        )
    if not config.train.lr > 0:
        problems.append(f"train.lr must be > 0, got {config.train.lr}")
    for i, m in enumerate(config.modalities):
        problems += [f"modalities[{i}] ({m.name!r}): {p}" for p in _check_modality(m)]
    return problems


def _check_modality(m: ModalityConfig) -> list[str]:
    problems: list[str] = []
    if not m.name.isidentifier() or m.name == "mask":
        problems.append("name must be a Python identifier other than 'mask'")
    if m.kind not in KINDS:
        problems.append(f"kind {m.kind!r} is not one of {KINDS}")
    if m.likelihood not in LIKELIHOODS:
        problems.append(f"likelihood {m.likelihood!r} is not one of {LIKELIHOODS}")
    if (m.kind == "categorical") != (m.likelihood == "categorical"):
        problems.append(f"kind {m.kind!r} and likelihood {m.likelihood!r}: categorical goes "
                        "with categorical only")
    if m.likelihood == "bernoulli" and m.kind != "image":
        problems.append("bernoulli likelihood is for [0, 1] images only")
    if not m.shape or any(d <= 0 for d in m.shape):
        problems.append(f"shape {list(m.shape)} must be non-empty and positive")
    elif m.kind == "categorical" and len(m.shape) != 1:
        problems.append(f"categorical shape must be (K,), got {list(m.shape)}")
    missing_ros = [k for k in ("topic", "msg_type", "rate_hz") if k not in m.ros]
    if missing_ros:
        problems.append(f"ros lacks {missing_ros}")
    if m.latent_dim <= 0:
        problems.append(f"latent_dim must be > 0, got {m.latent_dim}")
    if not 0.0 <= m.drop_prob < 1.0:
        problems.append(f"drop_prob must be in [0, 1), got {m.drop_prob}")
    if not all(math.isfinite(v) and v >= 0 for v in (m.lambda_, m.beta_m)):
        problems.append(f"lambda {m.lambda_} and beta_m {m.beta_m} must be finite and >= 0")
    problems += _check_network(m.network, m.shape)
    return problems


def _check_network(net: NetworkConfig, shape: tuple[int, ...]) -> list[str]:
    problems: list[str] = []
    if net.arch not in ARCHS:
        problems.append(f"network.arch {net.arch!r} is not one of {ARCHS}")
    if net.activation not in ACTIVATIONS:
        problems.append(f"network.activation {net.activation!r} is not one of {ACTIVATIONS}")
    if not net.hidden or any(w <= 0 for w in net.hidden):
        problems.append(f"network.hidden {list(net.hidden)} must be non-empty and positive")
    if net.arch == "conv":
        factor = 2 ** len(net.channels)
        if not net.channels or any(c <= 0 for c in net.channels):
            problems.append(f"network.channels {list(net.channels)} must be non-empty, positive")
        elif len(shape) != 3 or shape[1] % factor or shape[2] % factor:
            problems.append(
                f"conv net with {len(net.channels)} layers needs shape (C, H, W) with H and W "
                f"divisible by {factor}, got {list(shape)}"
            )
    elif net.channels:
        problems.append("network.channels is for arch 'conv' only")
    return problems
