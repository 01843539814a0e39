"""The model manifest: the JSON that every exported SensorySync ONNX file carries in its metadata.

It is the contract between training and the robot (docs/ARCHITECTURE.md, "Model file"): the
node, the codecs and the bag tools configure themselves from it. Pure Python, no numpy needed.

Tensor layout per modality kind (``preprocess`` keys):

- ``image``: shape ``(C, H, W)`` float32 in [0, 1], channels RGB (C=3) or mono (C=1).
  ``{"encoding": "rgb8" | "mono8"}``: the encoding reconstructions are published in.
- ``categorical``: shape ``(K,)`` one-hot. ``{"classes": [name, ...]}`` (K names).
- ``vector``: joint states, shape ``(len(fields) * J,)`` laid out field-major
  (all positions, then all velocities, ...), normalised ``(raw - loc) / scale``.
  ``{"joint_names": [...], "fields": ["position", "velocity", "effort"], "loc": [...],
  "scale": [...]}`` with ``loc``/``scale`` of the tensor's length.
- ``audio``: mono PCM at ``sample_rate``; the model sees the last ``window_samples`` samples,
  as log-mel features computed by ``sensorysync_ros.codecs`` (shape ``(1, n_mels, frames)``,
  no centre padding: ``frames = 1 + (window_samples - n_fft) // hop_length``), normalised
  ``(log_mel - loc) / scale``. Default ROS type: std_msgs/msg/Float32MultiArray PCM chunks.
  ``{"sample_rate": 16000, "window_samples": int, "n_fft": int, "hop_length": int,
  "n_mels": int, "loc": float, "scale": float}``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import ManifestError

__all__ = [
    "CORE_LOGVAR",
    "CORE_MEAN",
    "FORMAT",
    "KINDS",
    "MASK_INPUT",
    "METADATA_KEY",
    "Manifest",
    "ModalitySpec",
    "RosBinding",
    "recon_output",
]

FORMAT = "sensorysync-manifest/1"
METADATA_KEY = "sensorysync_manifest"
KINDS = ("image", "categorical", "vector", "audio")
LIKELIHOODS = ("bernoulli", "gaussian", "laplace", "categorical")
REQUIRED_PREPROCESS = {
    "image": ("encoding",),
    "categorical": ("classes",),
    "vector": ("joint_names", "fields", "loc", "scale"),
    "audio": ("sample_rate", "window_samples", "n_fft", "hop_length", "n_mels", "loc", "scale"),
}

# ONNX tensor names. Inputs: one per modality, named after the modality, plus MASK_INPUT.
MASK_INPUT = "mask"
CORE_MEAN = "core_mean"
CORE_LOGVAR = "core_logvar"


def recon_output(modality: str) -> str:
    """Name of the ONNX output holding the reconstruction of ``modality``."""
    return f"recon_{modality}"


@dataclass(frozen=True)
class RosBinding:
    """Default ROS wiring of one modality (all remappable by node parameters)."""

    topic: str
    msg_type: str  # e.g. "sensor_msgs/msg/Image"
    rate_hz: float  # expected sensor rate; staleness timeouts default to a multiple of 1/rate


@dataclass(frozen=True)
class ModalitySpec:
    """One modality: tensor shape, likelihood, preprocessing and ROS defaults."""

    name: str
    kind: str
    shape: tuple[int, ...]
    likelihood: str
    preprocess: dict[str, Any]
    ros: RosBinding

    @property
    def size(self) -> int:
        """Number of scalars in one sample."""
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass(frozen=True)
class Manifest:
    """Everything the runtime needs to know about an exported model."""

    modalities: tuple[ModalitySpec, ...]
    core_latent_dim: int
    modality_latent_dims: tuple[int, ...]
    provenance: dict[str, Any] = field(default_factory=dict)
    model_type: str = "sensorysync"
    format: str = FORMAT

    def __post_init__(self) -> None:
        self.validate()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.modalities)

    def index(self, name: str) -> int:
        """Position of modality ``name`` in the mask."""
        try:
            return self.names.index(name)
        except ValueError:
            msg = f"unknown modality {name!r}; the model has {list(self.names)}"
            raise ManifestError(msg) from None

    def modality(self, name: str) -> ModalitySpec:
        return self.modalities[self.index(name)]

    def validate(self) -> None:
        """Raise ManifestError naming the first inconsistency found."""
        if self.format != FORMAT:
            raise ManifestError(f"manifest format {self.format!r} is not {FORMAT!r}")
        if len(self.modalities) < 2:
            raise ManifestError(f"a model needs >= 2 modalities, got {len(self.modalities)}")
        if len(set(self.names)) != len(self.names):
            raise ManifestError(f"duplicate modality names in {list(self.names)}")
        if len(self.modality_latent_dims) != len(self.modalities):
            raise ManifestError(
                f"modality_latent_dims has {len(self.modality_latent_dims)} entries "
                f"for {len(self.modalities)} modalities"
            )
        if self.core_latent_dim <= 0 or any(d <= 0 for d in self.modality_latent_dims):
            raise ManifestError("latent sizes must be positive")
        for m in self.modalities:
            where = f"modality {m.name!r}"
            if m.name == MASK_INPUT or not m.name.isidentifier():
                raise ManifestError(f"{where}: name must be an identifier other than 'mask'")
            if m.kind not in KINDS:
                raise ManifestError(f"{where}: kind {m.kind!r} is not one of {KINDS}")
            if m.likelihood not in LIKELIHOODS:
                raise ManifestError(
                    f"{where}: likelihood {m.likelihood!r} is not one of {LIKELIHOODS}"
                )
            if not m.shape or any(int(d) <= 0 for d in m.shape):
                raise ManifestError(f"{where}: shape {m.shape} must be non-empty and positive")
            missing = [k for k in REQUIRED_PREPROCESS[m.kind] if k not in m.preprocess]
            if missing:
                raise ManifestError(f"{where}: preprocess lacks {missing}")
            if m.ros.rate_hz <= 0:
                raise ManifestError(f"{where}: ros.rate_hz must be > 0, got {m.ros.rate_hz}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        try:
            modalities = tuple(
                ModalitySpec(
                    name=m["name"],
                    kind=m["kind"],
                    shape=tuple(int(d) for d in m["shape"]),
                    likelihood=m["likelihood"],
                    preprocess=dict(m["preprocess"]),
                    ros=RosBinding(**m["ros"]),
                )
                for m in data["modalities"]
            )
            return cls(
                modalities=modalities,
                core_latent_dim=int(data["core_latent_dim"]),
                modality_latent_dims=tuple(int(d) for d in data["modality_latent_dims"]),
                provenance=dict(data.get("provenance", {})),
                model_type=data.get("model_type", "sensorysync"),
                format=data.get("format", ""),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ManifestError(f"malformed manifest: {type(err).__name__}: {err}") from err

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ManifestError(f"manifest is not valid JSON: {err}") from err
        if not isinstance(data, dict):
            raise ManifestError("manifest JSON must be an object")
        return cls.from_dict(data)
