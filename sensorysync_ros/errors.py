"""Errors of the runtime layers. Each names the thing that is wrong and, where known, the fix."""


class SensorySyncError(Exception):
    """Base of every error raised by sensorysync_ros."""


class ManifestError(SensorySyncError):
    """A model manifest is missing, malformed or inconsistent."""


class ModelLoadError(SensorySyncError):
    """A model file cannot be loaded (missing, truncated, not ONNX, no valid manifest)."""


class CodecError(SensorySyncError, ValueError):
    """A ROS message cannot be converted to or from a model tensor."""


class BagError(SensorySyncError):
    """A rosbag is missing, corrupt, or lacks what the evaluation needs."""
