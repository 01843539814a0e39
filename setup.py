"""ament_python packaging for sensorysync_ros (runtime) and sensorysync_training (torch side)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "sensorysync_ros"

# Runtime: what a robot needs. Never torch.
RUNTIME = [
    "numpy>=1.24",
    "onnxruntime-gpu>=1.17",
    "opencv-python-headless>=4.8",
    "rosbags>=0.11",
    "pyyaml>=6",
    "tqdm>=4.60",
    "matplotlib>=3.7",
]
# ROS 2 from PyPI wheels, for machines without an apt-installed ROS 2.
ROS_WHEELS = [
    "ros-rclpy",
    "ros-rmw-fastrtps-cpp",
    "ros-std-msgs",
    "ros-sensor-msgs",
    "ros-geometry-msgs",
    "ros-diagnostic-msgs",
    "ros-lifecycle-msgs",
    "ros-rcl-interfaces",
    "ros-builtin-interfaces",
    "ros-ament-index-python",
    "ros-ament-package",
]
EXTRAS = {
    "ros": ROS_WHEELS,
    # torch is pinned by the Makefile (torch==2.13.0 CPU build installed first); a range here
    # keeps pip from pulling a multi-GB CUDA build when that build is already present.
    "train": ["torch>=2.3,<=2.13.0", "onnx>=1.16", "onnxscript>=0.1", "tensorboard>=2.14"],
    "sim": ["mujoco>=3.1"],
    "test": [
        "pytest>=8",
        "pytest-timeout>=2.3",
        "pytest-xdist>=3.5",
        "ruff>=0.6",
        "colcon-common-extensions>=0.3",
    ],
}
EXTRAS["all"] = sorted({dep for deps in EXTRAS.values() for dep in deps})

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=[*find_packages(include=[PACKAGE, f"{PACKAGE}.*"]), "sensorysync_training"],
    package_dir={"sensorysync_training": "training"},
    package_data={
        PACKAGE: ["msg/*.msg", "sim/assets/*.xml"],
        "sensorysync_training": ["configs/*.yaml"],
    },
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
        (f"share/{PACKAGE}/models", glob("models/*.onnx") + glob("models/*.md")),
        (f"share/{PACKAGE}/sample_bag", glob("data/sample_bag/*")),
    ],
    install_requires=RUNTIME,
    extras_require=EXTRAS,
    python_requires=">=3.10",
    zip_safe=True,
    maintainer="SensorySync ROS developers",
    maintainer_email="sensorysync@example.com",
    description="Multimodal VAE sensor fusion for ROS 2: reconstruct sensors that drop out.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "sensorysync_node = sensorysync_ros.node:main",
            "sensorysync-sim = sensorysync_ros.sim.cli:main",
            "sensorysync-eval = sensorysync_ros.bagtools.evaluate:main",
            "sensorysync-replay = sensorysync_ros.bagtools.replay:main",
            "sensorysync-extract = sensorysync_ros.bagtools.extract:main",
            "sensorysync-demo = sensorysync_ros.demo:main",
            "sensorysync-train = sensorysync_training.train:main",
            "sensorysync-export = sensorysync_training.export:main",
            "sensorysync-likelihood = sensorysync_training.likelihood_table:main",
        ],
    },
)
