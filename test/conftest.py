"""Shared fixtures: ROS environment isolation (own domain id per test, logs in a temp dir)."""

from __future__ import annotations

import itertools
import os
import sys
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
