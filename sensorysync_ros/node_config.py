"""The node's configuration: every ROS parameter, its default, and its validation.

The node reads its parameters once per ``configure`` transition into a plain mapping and calls
:func:`build_node_config` with it and the model's manifest: that one function decides every
setting and raises :class:`NodeConfigError` naming the parameter, the value and the fix. No
rclpy in here, so the rules are tested without a ROS graph.

Per-modality parameters live under ``modalities.<name>.<field>`` (``<name>`` from the model's
manifest; an unknown name is an error, so a typo cannot silently leave a sensor unconfigured).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import SensorySyncError
from .fusion import DEFAULT_TIMEOUT_PERIODS
from .manifest import Manifest, ModalitySpec

__all__ = [
    "MODALITY_FIELDS",
    "MODALITY_PREFIX",
    "PARAMETERS",
    "QOS_PRESETS",
    "InputConfig",
    "NodeConfig",
    "NodeConfigError",
    "build_node_config",
]

QOS_PRESETS = ("sensor_data", "default", "reliable")
MODALITY_PREFIX = "modalities."
# Parameters rclpy declares or interprets itself; they pass validation untouched.
ROS_OWN_PARAMETERS = ("use_sim_time", "start_type_description_service")
ROS_OWN_PREFIXES = ("qos_overrides.",)


@dataclass(frozen=True)
class ParameterSpec:
    """A node-wide parameter: its default (which also fixes its type) and what it does."""

    default: Any
    description: str


PARAMETERS: dict[str, ParameterSpec] = {
    "autostart": ParameterSpec(True, "configure and activate the lifecycle node at start-up"),
    "model_path": ParameterSpec(
        "", "exported .onnx model; empty = the shipped default model (models/default.onnx)"
    ),
    "providers": ParameterSpec(
        ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
        "ONNX Runtime execution providers in priority order (CPU is always the last resort)",
    ),
    "require_gpu": ParameterSpec(False, "fail configure when the session runs on the CPU"),
    "intra_op_threads": ParameterSpec(0, "ONNX Runtime intra-op threads; 0 = its default"),
    "fusion_rate_hz": ParameterSpec(30.0, "fusion timer rate in Hz (> 0)"),
    "fusion_timer": ParameterSpec(True, "tick on the timer (false: only on trigger_modality)"),
    "trigger_modality": ParameterSpec(
        "", "also tick on every decoded sample of this modality; empty = timer only"
    ),
    "publish_present_reconstructions": ParameterSpec(
        False, "publish reconstructions of present modalities too (missing ones always)"
    ),
    "diagnostics_period_s": ParameterSpec(1.0, "period of /diagnostics in seconds (> 0)"),
}

# modalities.<name>.<field>: a default of None means "from the manifest / the modality kind".
MODALITY_FIELDS: dict[str, ParameterSpec] = {
    "topic": ParameterSpec(None, "input topic (relative names follow the node's namespace)"),
    "msg_type": ParameterSpec(None, "input message type, e.g. sensor_msgs/msg/CompressedImage"),
    "timeout_s": ParameterSpec(
        0.0, f"staleness timeout in s; 0 = {DEFAULT_TIMEOUT_PERIODS:g} x the sensor's period"
    ),
    "qos": ParameterSpec("sensor_data", f"input QoS preset, one of {list(QOS_PRESETS)}"),
    "qos_depth": ParameterSpec(
        0, "input queue depth; 0 = 1 (newest sample only), audio: 10 (chunks must not be lost)"
    ),
    "sample_rate_hz": ParameterSpec(
        0, "audio only: PCM rate of messages that do not carry one; 0 = the model's rate"
    ),
}
AUDIO_QOS_DEPTH = 10


class NodeConfigError(SensorySyncError, ValueError):
    """A node parameter is unknown, mistyped or out of range."""


@dataclass(frozen=True)
class InputConfig:
    """How one modality is subscribed and when it counts as missing."""

    modality: str
    topic: str
    msg_type: str  # "pkg/msg/Name"
    timeout_s: float
    qos: str  # one of QOS_PRESETS
    qos_depth: int
    sample_rate_hz: int | None = None  # audio input PCM rate; None = the model's rate


@dataclass(frozen=True)
class NodeConfig:
    """Everything the node needs besides the model itself."""

    model_path: str  # as given; empty = the default model (resolved by the node)
    providers: tuple[str, ...]
    require_gpu: bool
    intra_op_threads: int | None  # None = ONNX Runtime's default
    fusion_rate_hz: float
    fusion_timer: bool
    trigger_modality: str | None
    publish_present_reconstructions: bool
    diagnostics_period_s: float
    inputs: tuple[InputConfig, ...]  # manifest order

    @property
    def fusion_period_s(self) -> float:
        return 1.0 / self.fusion_rate_hz

    def input(self, modality: str) -> InputConfig:
        for item in self.inputs:
            if item.modality == modality:
                return item
        raise KeyError(modality)


def _number(params: Mapping[str, Any], name: str, default: float) -> float:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise NodeConfigError(f"parameter {name!r} must be a number, got {value!r}")
    return float(value)


def _integer(params: Mapping[str, Any], name: str, default: int) -> int:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise NodeConfigError(f"parameter {name!r} must be an integer, got {value!r}")
    return value


def _flag(params: Mapping[str, Any], name: str, default: bool) -> bool:
    value = params.get(name, default)
    if not isinstance(value, bool):
        raise NodeConfigError(f"parameter {name!r} must be true or false, got {value!r}")
    return value


def _text(params: Mapping[str, Any], name: str, default: str) -> str:
    value = params.get(name, default)
    if not isinstance(value, str):
        raise NodeConfigError(f"parameter {name!r} must be a string, got {value!r}")
    return value


def _positive(params: Mapping[str, Any], name: str, unit: str) -> float:
    value = _number(params, name, PARAMETERS[name].default)
    if not value > 0 or math.isinf(value):
        raise NodeConfigError(
            f"parameter {name!r} must be a finite number > 0 {unit}, got {value!r}; "
            f"the default is {PARAMETERS[name].default!r}"
        )
    return value


def _check_names(params: Mapping[str, Any], manifest: Manifest) -> None:
    """Reject unknown parameter names, unknown modalities and unknown per-modality fields."""
    for name in params:
        if name in PARAMETERS or name in ROS_OWN_PARAMETERS or name.startswith(ROS_OWN_PREFIXES):
            continue
        if not name.startswith(MODALITY_PREFIX):
            raise NodeConfigError(
                f"unknown parameter {name!r}; known: {sorted(PARAMETERS)} and "
                f"'{MODALITY_PREFIX}<modality>.<field>' with fields {list(MODALITY_FIELDS)}"
            )
        modality, _, field = name[len(MODALITY_PREFIX) :].partition(".")
        if modality not in manifest.names:
            raise NodeConfigError(
                f"parameter {name!r} names modality {modality!r}, which the model does not "
                f"have; its modalities are {list(manifest.names)}"
            )
        if field not in MODALITY_FIELDS:
            raise NodeConfigError(
                f"parameter {name!r}: unknown field {field!r}; per-modality fields are "
                f"{list(MODALITY_FIELDS)}"
            )


def _input_config(params: Mapping[str, Any], spec: ModalitySpec) -> InputConfig:
    prefix = f"{MODALITY_PREFIX}{spec.name}."
    topic = _text(params, prefix + "topic", spec.ros.topic) or spec.ros.topic
    msg_type = _text(params, prefix + "msg_type", spec.ros.msg_type) or spec.ros.msg_type
    if msg_type.count("/") != 2:
        raise NodeConfigError(
            f"parameter {prefix}msg_type is {msg_type!r}; expected 'pkg/msg/Name', "
            "e.g. 'sensor_msgs/msg/CompressedImage'"
        )
    timeout_s = _number(params, prefix + "timeout_s", 0.0)
    if timeout_s < 0 or math.isinf(timeout_s):
        raise NodeConfigError(
            f"parameter {prefix}timeout_s must be >= 0 s (0 = default "
            f"{DEFAULT_TIMEOUT_PERIODS:g} / {spec.ros.rate_hz:g} Hz), got {timeout_s!r}"
        )
    if timeout_s == 0.0:
        timeout_s = DEFAULT_TIMEOUT_PERIODS / spec.ros.rate_hz
    qos = _text(params, prefix + "qos", "sensor_data")
    if qos not in QOS_PRESETS:
        raise NodeConfigError(
            f"parameter {prefix}qos is {qos!r}; choose one of {list(QOS_PRESETS)}"
        )
    depth = _integer(params, prefix + "qos_depth", 0)
    if depth < 0:
        raise NodeConfigError(f"parameter {prefix}qos_depth must be >= 0 (0 = auto), got {depth}")
    if depth == 0:
        depth = AUDIO_QOS_DEPTH if spec.kind == "audio" else 1
    rate_hz = _integer(params, prefix + "sample_rate_hz", 0)
    if rate_hz < 0 or (rate_hz and spec.kind != "audio"):
        raise NodeConfigError(
            f"parameter {prefix}sample_rate_hz is {rate_hz}; it must be >= 0 (0 = the model's "
            f"rate) and is only valid for audio modalities ({spec.name!r} is {spec.kind!r})"
        )
    return InputConfig(spec.name, topic, msg_type, timeout_s, qos, depth, rate_hz or None)


def build_node_config(params: Mapping[str, Any], manifest: Manifest) -> NodeConfig:
    """Validate the node's parameter values against the model and build its config.

    Args:
        params: parameter name -> value (what the node has declared or was given); missing
            names take their defaults from :data:`PARAMETERS` / the manifest.
        manifest: the model's manifest (modality names, default topics, types and rates).

    Raises:
        NodeConfigError: naming the first bad parameter, its value and the fix.
    """
    _check_names(params, manifest)
    providers = params.get("providers", PARAMETERS["providers"].default)
    if (
        not isinstance(providers, (list, tuple))
        or not providers
        or not all(isinstance(p, str) and p for p in providers)
    ):
        raise NodeConfigError(
            f"parameter 'providers' must be a non-empty list of provider names, got "
            f"{providers!r}; e.g. ['CUDAExecutionProvider', 'CPUExecutionProvider']"
        )
    threads = _integer(params, "intra_op_threads", 0)
    if threads < 0:
        raise NodeConfigError(
            f"parameter 'intra_op_threads' must be >= 0 (0 = ONNX Runtime's default), got {threads}"
        )
    trigger = _text(params, "trigger_modality", "")
    if trigger and trigger not in manifest.names:
        raise NodeConfigError(
            f"parameter 'trigger_modality' is {trigger!r}, which the model does not have; "
            f"choose one of {list(manifest.names)} or '' for the timer only"
        )
    fusion_timer = _flag(params, "fusion_timer", True)
    if not fusion_timer and not trigger:
        raise NodeConfigError(
            "parameter 'fusion_timer' is false and 'trigger_modality' is empty: nothing would "
            "ever trigger fusion; set fusion_timer:=true or name a trigger_modality"
        )
    return NodeConfig(
        model_path=_text(params, "model_path", ""),
        providers=tuple(providers),
        require_gpu=_flag(params, "require_gpu", False),
        intra_op_threads=threads or None,
        fusion_rate_hz=_positive(params, "fusion_rate_hz", "Hz"),
        fusion_timer=fusion_timer,
        trigger_modality=trigger or None,
        publish_present_reconstructions=_flag(params, "publish_present_reconstructions", False),
        diagnostics_period_s=_positive(params, "diagnostics_period_s", "s"),
        inputs=tuple(_input_config(params, spec) for spec in manifest.modalities),
    )
