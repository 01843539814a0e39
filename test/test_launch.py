"""launch/sensorysync.launch.py and config/sensorysync.yaml agree with the node.

The structural checks run everywhere; building the launch description needs ROS 2's `launch` and
`launch_ros` (apt packages, not on PyPI) and skips cleanly without them.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path

import pytest
import yaml

from sensorysync_ros.model_file import read_manifest
from sensorysync_ros.node_config import PARAMETERS, build_node_config

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILE = REPO / "launch" / "sensorysync.launch.py"
PARAMS_FILE = REPO / "config" / "sensorysync.yaml"
ARGUMENTS = {
    "model", "params_file", "namespace", "use_sim_time", "autostart", "log_level",
    "camera_topic", "audio_topic", "joints_topic",
}


def _declared_arguments(tree: ast.Module) -> set[str]:
    """Names given to DeclareLaunchArgument literally or through the TOPIC_ARGUMENTS dict."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "DeclareLaunchArgument"
                and isinstance(node.args[0], ast.Constant)):
            names.add(node.args[0].value)
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "TOPIC_ARGUMENTS":
            names |= set(ast.literal_eval(node.value))
    return names


def test_launch_file_compiles_and_declares_the_documented_arguments():
    source = LAUNCH_FILE.read_text()
    tree = ast.parse(source, filename=str(LAUNCH_FILE))
    compile(tree, str(LAUNCH_FILE), "exec")
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in functions
    assert _declared_arguments(tree) == ARGUMENTS
    assert "LifecycleNode" in source and '"sensorysync_node"' in source


def test_params_file_lists_every_node_parameter_with_its_default(tiny_robot_model):
    document = yaml.safe_load(PARAMS_FILE.read_text())
    params = document["/**"]["ros__parameters"]
    assert set(params) == set(PARAMETERS)
    for name, spec in PARAMETERS.items():
        assert params[name] == spec.default, name
    build_node_config(params, read_manifest(tiny_robot_model))  # valid as shipped


def _ros_launch_available() -> bool:
    # The repository's own launch/ folder shadows a missing `launch` package as a namespace
    # package, so check for the real thing.
    if importlib.util.find_spec("launch_ros") is None:
        return False
    return hasattr(importlib.import_module("launch"), "LaunchDescription")


@pytest.mark.skipif(not _ros_launch_available(), reason="ROS 2 launch/launch_ros not installed")
def test_launch_description_builds_a_lifecycle_node():
    from launch import LaunchContext, LaunchDescription
    from launch_ros.actions import LifecycleNode

    spec = importlib.util.spec_from_file_location("sensorysync_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    assert isinstance(description, LaunchDescription)
    assert {arg.name for arg in description.get_launch_arguments()} == ARGUMENTS
    context = LaunchContext()
    context.launch_configurations.update(
        {"model": "/m.onnx", "params_file": str(PARAMS_FILE), "namespace": "robot1",
         "use_sim_time": "true", "autostart": "true", "log_level": "info",
         "camera_topic": "/cam/image", "audio_topic": "audio", "joints_topic": "joint_states"}
    )
    (node,) = module._node(context)
    assert isinstance(node, LifecycleNode)
