"""Robots run without torch: every runtime module must import with torch unimportable."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import sensorysync_ros

BLOCK_TORCH = """
import importlib.abc, sys
class _NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked: robots run without torch")
sys.meta_path.insert(0, _NoTorch())
"""


def runtime_modules() -> list[str]:
    return sorted(
        info.name
        for info in pkgutil.walk_packages(sensorysync_ros.__path__, prefix="sensorysync_ros.")
    )


def test_runtime_module_list_is_not_empty():
    assert "sensorysync_ros.manifest" in runtime_modules()


def test_every_runtime_module_imports_without_torch():
    modules = runtime_modules()
    code = BLOCK_TORCH + "\n".join(
        [
            "import importlib",
            f"for name in {modules!r}:",
            "    importlib.import_module(name)",
            "assert 'torch' not in sys.modules, 'torch was imported'",
            "print('imported', len(" + repr(modules) + "))",
        ]
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_torch_blocker_really_blocks():
    code = BLOCK_TORCH + "import torch\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0
    assert "torch is blocked" in result.stderr
