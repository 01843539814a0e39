"""`colcon build` of this ament_python package produces the install tree ROS 2 tools expect."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COLCON = shutil.which("colcon") or str(Path(sys.executable).with_name("colcon"))


def console_scripts() -> list[str]:
    """Executable names declared in setup.py's console_scripts."""
    text = (REPO / "setup.py").read_text()
    return re.findall(r'"([\w-]+) = [\w.]+:main"', text)


def test_setup_cfg_puts_scripts_where_ros2_run_looks():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    assert cfg["develop"]["script_dir"] == "$base/lib/sensorysync_ros"
    assert cfg["install"]["install_scripts"] == "$base/lib/sensorysync_ros"


@pytest.mark.skipif(not Path(COLCON).exists(), reason="colcon-common-extensions not installed")
def test_colcon_build_install_tree(tmp_path: Path):
    source = tmp_path / "src" / "sensorysync_ros"
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "build", "install", "log", "*.egg-info", "__pycache__",
            "data_local", "runs", "demo_out",
        ),
    )
    result = subprocess.run(
        [COLCON, "--log-base", str(tmp_path / "log"), "build",
         "--base-paths", str(tmp_path / "src"),
         "--build-base", str(tmp_path / "build"), "--install-base", str(tmp_path / "install")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    prefix = tmp_path / "install" / "sensorysync_ros"
    scripts = console_scripts()
    assert "sensorysync_node" in scripts
    for exe in scripts:
        assert (prefix / "lib" / "sensorysync_ros" / exe).is_file(), exe
    share = prefix / "share" / "sensorysync_ros"
    assert (share / "package.xml").is_file()
    for folder in ("launch", "config", "models"):
        assert (share / folder).is_dir(), folder
    assert sorted(p.name for p in (share / "launch").iterdir()) == sorted(
        p.name for p in (REPO / "launch").glob("*.launch.py")
    )
    marker = prefix / "share" / "ament_index" / "resource_index" / "packages" / "sensorysync_ros"
    assert marker.is_file()
    site = next((prefix / "lib").glob("python3*/site-packages"))
    assert (site / "sensorysync_ros" / "manifest.py").is_file()
    assert (site / "sensorysync_training" / "__init__.py").is_file()
