"""Self-describing checkpoints: weights, optimizer, RNG states, epoch and the resolved config.

Files are written atomically (temporary file in the same folder, then ``os.replace``), so an
interrupted or failed run always leaves the last complete checkpoint in place.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import Config, ConfigError
from .registry import build_model

__all__ = ["CheckpointError", "load_checkpoint", "load_model", "parameter_digest",
           "save_checkpoint"]

FORMAT = "sensorysync-checkpoint/1"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable or not a SensorySync checkpoint."""


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` (see train.py: model, optimizer, rng, epoch, config) atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save({"format": FORMAT, **state}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw checkpoint dict; raises CheckpointError naming the file on any problem."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist; train one first")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises many types for corrupt files
        raise CheckpointError(f"checkpoint {str(path)!r} is unreadable: {err}") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a SensorySync checkpoint ({FORMAT})")
    return state


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, Config]:
    """Rebuild the model from the checkpoint's config alone and load its weights (eval mode)."""
    state = load_checkpoint(path)
    try:
        config = Config.from_dict(state["config"], source=f"config in {str(path)!r}")
    except ConfigError as err:
        raise CheckpointError(str(err)) from err
    model = build_model(config)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), config


def parameter_digest(model: nn.Module) -> str:
    """SHA-256 over every parameter and buffer (state_dict order): equal iff bit-identical."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
