"""Launch the SensorySync node (a managed lifecycle node that configures and activates itself).

    ros2 launch sensorysync_ros sensorysync.launch.py model:=/path/model.onnx \
        namespace:=robot1 use_sim_time:=true camera_topic:=/cam/image_raw

Arguments: model (empty: the params file's model_path, else the shipped default model),
params_file, namespace, use_sim_time, autostart, log_level, and remaps of the default sensor
topics: camera_topic, audio_topic, joints_topic. With autostart:=false a lifecycle manager (or
``ros2 lifecycle set``) drives configure/activate.
"""

from __future__ import annotations

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode
from launch_ros.substitutions import FindPackageShare

PACKAGE = "sensorysync_ros"
# Default input topics (the default model's manifest) and the launch argument remapping each.
TOPIC_ARGUMENTS = {
    "camera_topic": "camera/image_raw",
    "audio_topic": "audio",
    "joints_topic": "joint_states",
}


def _node(context: LaunchContext) -> list[LifecycleNode]:
    """Build the node once the arguments are known (model_path only passed when given)."""
    overrides: dict[str, object] = {
        "use_sim_time": LaunchConfiguration("use_sim_time").perform(context).lower() == "true",
        "autostart": LaunchConfiguration("autostart").perform(context).lower() == "true",
    }
    model = LaunchConfiguration("model").perform(context)
    if model:
        overrides["model_path"] = model
    remappings = [
        (default, LaunchConfiguration(arg).perform(context))
        for arg, default in TOPIC_ARGUMENTS.items()
        if LaunchConfiguration(arg).perform(context) != default
    ]
    return [
        LifecycleNode(
            package=PACKAGE,
            executable="sensorysync_node",
            name="sensorysync",
            namespace=LaunchConfiguration("namespace").perform(context),
            parameters=[LaunchConfiguration("params_file").perform(context), overrides],
            remappings=remappings,
            ros_arguments=["--log-level", LaunchConfiguration("log_level").perform(context)],
            output="screen",
        )
    ]


def generate_launch_description() -> LaunchDescription:
    default_params = PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "sensorysync.yaml"])
    arguments = [
        DeclareLaunchArgument(
            "model", default_value="", description="model .onnx; empty = params file / default"
        ),
        DeclareLaunchArgument(
            "params_file", default_value=default_params, description="node parameters YAML"
        ),
        DeclareLaunchArgument("namespace", default_value="", description="node namespace"),
        DeclareLaunchArgument(
            "use_sim_time", default_value="false", description="follow /clock (true|false)"
        ),
        DeclareLaunchArgument(
            "autostart", default_value="true", description="configure + activate by itself"
        ),
        DeclareLaunchArgument("log_level", default_value="info", description="ROS log level"),
        *(
            DeclareLaunchArgument(arg, default_value=topic, description=f"remap of {topic}")
            for arg, topic in TOPIC_ARGUMENTS.items()
        ),
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_node)])
