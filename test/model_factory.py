"""Tiny, randomly initialised (seeded) SensorySync models exported through the real exporter.

Used by the session fixtures ``tiny_robot_model`` and ``tiny_fmnist_model`` (test/conftest.py).

- tiny robot model, modalities ``camera`` (3x32x32 rgb8 image, Laplace likelihood,
  sensor_msgs/msg/Image on camera/image_raw at 30 Hz), ``audio`` (log-mel 1x16x30 from 4000-sample
  windows of 16 kHz PCM, std_msgs/msg/Float32MultiArray on ``audio`` at 50 Hz) and ``joints``
  (position/velocity/effort of shoulder, elbow, wrist: 9 values, sensor_msgs/msg/JointState on
  joint_states at 100 Hz);
- tiny Fashion-MNIST-shaped model: ``image`` 1x28x28 Bernoulli + ``label`` 10-way categorical.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from sensorysync_training.checkpoint import save_checkpoint
from sensorysync_training.config import Config
from sensorysync_training.export import export_checkpoint
from sensorysync_training.registry import build_model

__all__ = [
    "AUDIO_FRAMES",
    "JOINT_NAMES",
    "build_checkpoint",
    "build_tiny_fmnist_checkpoint",
    "build_tiny_robot_checkpoint",
    "export_tiny_fmnist_model",
    "export_tiny_robot_model",
]

JOINT_NAMES = ("shoulder", "elbow", "wrist")
JOINT_FIELDS = ("position", "velocity", "effort")
AUDIO = {"sample_rate": 16000, "window_samples": 4000, "n_fft": 256, "hop_length": 128,
         "n_mels": 16, "loc": 0.0, "scale": 1.0}
AUDIO_FRAMES = 1 + (AUDIO["window_samples"] - AUDIO["n_fft"]) // AUDIO["hop_length"]  # 30
FASHION_CLASSES = ("t_shirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
                   "sneaker", "bag", "ankle_boot")
SEED = 0


def _modality(name: str, kind: str, shape: list[int], likelihood: str, preprocess: dict[str, Any],
              ros: tuple[str, str, float], network: dict[str, Any]) -> dict[str, Any]:
    topic, msg_type, rate_hz = ros
    return {"name": name, "kind": kind, "shape": shape, "likelihood": likelihood,
            "preprocess": preprocess, "network": network, "latent_dim": 4,
            "ros": {"topic": topic, "msg_type": msg_type, "rate_hz": rate_hz}}


def _config(data_kind: str, modalities: list[dict[str, Any]]) -> Config:
    return Config.from_dict({
        "data": {"kind": data_kind},
        "modalities": modalities,
        "model": {"type": "sensorysync", "core_hidden": [16], "core_latent_dim": 4},
        "train": {"epochs": 1, "batch_size": 8, "lr": 1e-3, "seed": SEED},
    }, source="tiny test model")


def tiny_robot_config() -> Config:
    n_joint_values = len(JOINT_NAMES) * len(JOINT_FIELDS)
    return _config("npz", [
        _modality("camera", "image", [3, 32, 32], "laplace", {"encoding": "rgb8"},
                  ("camera/image_raw", "sensor_msgs/msg/Image", 30.0),
                  {"arch": "conv", "channels": [4, 8], "hidden": [16]}),
        _modality("audio", "audio", [1, AUDIO["n_mels"], AUDIO_FRAMES], "gaussian", dict(AUDIO),
                  ("audio", "std_msgs/msg/Float32MultiArray", 50.0),
                  {"arch": "mlp", "hidden": [16]}),
        _modality("joints", "vector", [n_joint_values], "gaussian",
                  {"joint_names": list(JOINT_NAMES), "fields": list(JOINT_FIELDS),
                   "loc": [0.0] * n_joint_values, "scale": [1.0] * n_joint_values},
                  ("joint_states", "sensor_msgs/msg/JointState", 100.0),
                  {"arch": "mlp", "hidden": [16]}),
    ])


def tiny_fmnist_config() -> Config:
    return _config("fashion_mnist", [
        _modality("image", "image", [1, 28, 28], "bernoulli", {"encoding": "mono8"},
                  ("camera/image_raw", "sensor_msgs/msg/Image", 30.0),
                  {"arch": "conv", "channels": [4, 8], "hidden": [16]}),
        _modality("label", "categorical", [10], "categorical",
                  {"classes": list(FASHION_CLASSES)},
                  ("label", "std_msgs/msg/Float32MultiArray", 30.0),
                  {"arch": "mlp", "hidden": [16, 16]}),
    ])


def build_checkpoint(config: Config, path: Path) -> Path:
    """Save a seeded, untrained model of ``config`` as a training checkpoint at ``path``."""
    torch.manual_seed(SEED)
    model = build_model(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, {"model": model.state_dict(), "config": config.to_dict(), "epoch": 0})
    return path


def build_tiny_robot_checkpoint(directory: Path) -> Path:
    return build_checkpoint(tiny_robot_config(), Path(directory) / "tiny_robot.pt")


def build_tiny_fmnist_checkpoint(directory: Path) -> Path:
    return build_checkpoint(tiny_fmnist_config(), Path(directory) / "tiny_fmnist.pt")


def export_tiny_robot_model(path: Path) -> Path:
    """Build the tiny robot checkpoint beside ``path`` and export it there (+ model card)."""
    path = Path(path)
    checkpoint = build_tiny_robot_checkpoint(path.parent)
    return export_checkpoint(checkpoint, path).onnx_path


def export_tiny_fmnist_model(path: Path) -> Path:
    """Build the tiny Fashion-MNIST checkpoint beside ``path`` and export it there (+ card)."""
    path = Path(path)
    checkpoint = build_tiny_fmnist_checkpoint(path.parent)
    return export_checkpoint(checkpoint, path).onnx_path
