"""Shared fixtures: ROS environment isolation (own domain id per test, logs in a temp dir)."""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# ROS 2 from PyPI wheels: the ament index lives in the venv; logs must not go to ~/.ros.
os.environ.setdefault("AMENT_PREFIX_PATH", sys.prefix)
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("MUJOCO_GL", "osmesa")

_domain_counter = itertools.count()


def _worker_index() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(worker[2:]) if worker[2:].isdigit() else 0


@pytest.fixture(autouse=True)
def ros_isolation(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Give every test its own ROS_DOMAIN_ID (distinct across xdist workers) and log folder."""
    domain = 1 + (_worker_index() * 50 + next(_domain_counter)) % 100
    log_dir = tmp_path_factory.mktemp("ros_log")
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain))
    monkeypatch.setenv("ROS_HOME", str(log_dir))
    monkeypatch.setenv("ROS_LOG_DIR", str(log_dir))
    yield domain


@pytest.fixture(scope="session")
def tiny_robot_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a tiny seeded robot model (camera, audio, joints) exported by the real exporter.

    Modalities and ROS bindings: see test/model_factory.py. Built once per xdist worker.
    """
    from model_factory import export_tiny_robot_model  # torch is imported only when needed

    return export_tiny_robot_model(tmp_path_factory.mktemp("tiny_robot") / "tiny_robot.onnx")


@pytest.fixture(scope="session")
def tiny_fmnist_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a tiny seeded Fashion-MNIST-shaped model (image 1x28x28, label 10)."""
    from model_factory import export_tiny_fmnist_model

    return export_tiny_fmnist_model(tmp_path_factory.mktemp("tiny_fmnist") / "tiny_fmnist.onnx")


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One torch intra-op thread during the test, restored after.

    CI runs ``pytest -n 2`` on 2 cores: small-tensor torch tests with the default thread count
    oversubscribe them and run several times slower (test_likelihood + test_baselines on the
    loaded 2-core box: about 1 min with one thread, 3 min with the default).
    """
    import torch  # only tests that use torch pay for the import

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
