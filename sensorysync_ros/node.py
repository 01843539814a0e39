"""The SensorySync ROS 2 node: live sensor fusion, dropout detection, reconstruction.

A managed (lifecycle) node; docs/node.md lists its topics and parameters.

- ``configure``: reads and validates the parameters against the model's manifest
  (:mod:`sensorysync_ros.node_config`), loads the model (ONNX Runtime session), builds one codec
  per modality, the fusion core and the (lifecycle) publishers. Any problem -> FAILURE with a
  one-line reason in ``failure_reason`` and the log.
- ``activate``: subscribes to every modality and starts the fusion and diagnostics timers.
- ``deactivate``: drops the subscriptions and timers. ``cleanup`` / ``shutdown``: drop the rest.

Callbacks only decode (codec) and push into the fusion core, stamped with the node clock at
arrival (so staleness follows ``use_sim_time``; sensor header stamps are not trusted to share the
node's clock). Inference runs in the fusion timer (and, with ``trigger_modality``, on arrival of
that modality). Everything runs on one single-threaded executor: callbacks are short, inputs
keep only the newest sample(s) (QoS depth), so a flooding sensor cannot build a queue.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.clock import Clock, ClockType
from rclpy.event_handler import QoSRequestedIncompatibleQoSInfo, SubscriptionEventCallbacks
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecyclePublisher, LifecycleState
from rclpy.lifecycle import TransitionCallbackReturn as Ret
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from rclpy.qos_overriding_options import QoSOverridingOptions
from rclpy.subscription import Subscription
from rclpy.timer import Timer
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from .codecs import Codec, make_codec, resolve_msg_class
from .core_msg import CORE_FRAME_ID, core_layout, encode_core
from .engine import CPU_PROVIDER, Engine
from .errors import ModelLoadError, SensorySyncError
from .fusion import FusionCore
from .manifest import Manifest
from .model_file import read_manifest
from .node_config import (
    PARAMETERS,
    InputConfig,
    NodeConfig,
    NodeConfigError,
    build_node_config,
)
from .node_diagnostics import (
    MISSING_AFTER_TIMEOUTS,
    FusionReport,
    LatencyWindow,
    SensorStats,
    fusion_status,
    sensor_status,
)

__all__ = [
    "CORE_TOPIC",
    "NODE_NAME",
    "OUTPUT_QOS_DEPTH",
    "SensorySyncNode",
    "default_model_path",
    "main",
    "reconstruction_topic",
]

NODE_NAME = "sensorysync"
PACKAGE = "sensorysync_ros"
OUTPUT_QOS_DEPTH = 5
CORE_TOPIC = "sensorysync/core"
DIAGNOSTICS_TOPIC = "/diagnostics"


def reconstruction_topic(modality: str) -> str:
    return f"sensorysync/{modality}/reconstruction"


def default_model_path() -> Path:
    """The shipped default model: the installed share folder's, else this source checkout's.

    Raises:
        ModelLoadError: neither exists (the message names both places and the fix).
    """
    candidates = []
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory(PACKAGE)) / "models" / "default.onnx")
    except (ImportError, LookupError, OSError):  # not installed into an ament prefix
        pass
    candidates.append(Path(__file__).resolve().parents[1] / "models" / "default.onnx")
    for path in candidates:
        if path.is_file():
            return path
    raise ModelLoadError(
        f"no default model at {[str(p) for p in candidates]}; pass model_path:=<file.onnx> "
        "(export one with sensorysync-export)"
    )


# Input QoS presets (node_config.QOS_PRESETS) -> reliability; history keep-last, volatile.
INPUT_RELIABILITY = {
    "sensor_data": qos_profile_sensor_data.reliability,  # best effort
    "default": ReliabilityPolicy.SYSTEM_DEFAULT,
    "reliable": ReliabilityPolicy.RELIABLE,
}


def _input_qos(item: InputConfig) -> QoSProfile:
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=item.qos_depth,
        reliability=INPUT_RELIABILITY[item.qos],
        durability=DurabilityPolicy.VOLATILE,
    )


OUTPUT_QOS = QoSProfile(depth=OUTPUT_QOS_DEPTH, reliability=ReliabilityPolicy.RELIABLE)


def _stamp(stamp_ns: int) -> Time:
    return Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)


@dataclass
class _Input:
    """One subscribed modality: its config, codec, message class, counters and last frame."""

    config: InputConfig
    codec: Codec
    msg_cls: type
    stats: SensorStats
    publisher: LifecyclePublisher | None = None
    subscription: Subscription | None = None
    frame_id: str = ""  # of the last valid message: reconstructions carry it
    last_ok_ns: int | None = None  # node clock at the last valid message (decoded or filling)

    @property
    def timeout_ns(self) -> int:
        return round(self.config.timeout_s * 1e9)

    @property
    def reset_after_ns(self) -> int:
        """A gap this long is a dropout (the sensor is reported missing), not jitter."""
        return round(self.config.timeout_s * 1e9 * MISSING_AFTER_TIMEOUTS)


class SensorySyncNode(LifecycleNode):
    """Fuses the live sensors into a core latent and reconstructs the ones that drop out."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(
            node_name, automatically_declare_parameters_from_overrides=True, **kwargs
        )
        for name, spec in PARAMETERS.items():
            if not self.has_parameter(name):
                self.declare_parameter(name, spec.default)
        self.failure_reason: str | None = None
        self.config: NodeConfig | None = None
        self.engine: Engine | None = None
        self._manifest: Manifest | None = None
        self._fusion: FusionCore | None = None
        self._inputs: dict[str, _Input] = {}
        self._core_pub: LifecyclePublisher | None = None
        self._diag_pub: LifecyclePublisher | None = None
        self._fusion_timer: Timer | None = None
        self._diag_timer: Timer | None = None
        self._latency = LatencyWindow()
        self._ticks = 0
        self._outputs = 0
        self._diag_last_ns = 0
        self._steady = Clock(clock_type=ClockType.STEADY_TIME)

    @property
    def autostart(self) -> bool:
        value = self.get_parameter("autostart").value
        if not isinstance(value, bool):
            raise NodeConfigError(f"parameter 'autostart' must be true or false, got {value!r}")
        return value

    # -- lifecycle ------------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> Ret:
        """Validate parameters, load the model, build codecs, fusion core and publishers.

        SUCCESS -> inactive; FAILURE (bad parameter, missing/invalid model, no GPU while
        ``require_gpu``) -> stays unconfigured with ``failure_reason`` set and logged.
        """
        self.failure_reason = None
        try:
            self._configure()
        except (SensorySyncError, ValueError) as err:
            self._release_all()
            self.failure_reason = str(err).splitlines()[0]
            self.get_logger().error(f"configure failed: {self.failure_reason}")
            return Ret.FAILURE
        return Ret.SUCCESS

    def _configure(self) -> None:
        params = {name: p.value for name, p in self.get_parameters_by_prefix("").items()}
        model_value = params.get("model_path") or ""
        model_path = Path(model_value) if model_value else default_model_path()
        manifest = read_manifest(model_path)
        config = build_node_config(params, manifest)
        engine = Engine(
            model_path, providers=config.providers, threads=config.intra_op_threads
        )
        if config.require_gpu and engine.provider == CPU_PROVIDER:
            raise SensorySyncError(
                f"require_gpu is true but model {str(model_path)!r} runs on {engine.provider} "
                f"(requested {list(config.providers)}); install a GPU-enabled onnxruntime "
                "with its CUDA libraries, or set require_gpu:=false"
            )
        inputs = {}
        for item in config.inputs:
            spec = manifest.modality(item.modality)
            stats = SensorStats(item.modality, self.resolve_topic_name(item.topic))
            options = {"sample_rate_hz": item.sample_rate_hz} if item.sample_rate_hz else {}
            inputs[item.modality] = _Input(
                item, make_codec(spec, **options), resolve_msg_class(item.msg_type), stats
            )
        self.config, self.engine, self._manifest, self._inputs = config, engine, manifest, inputs
        self._fusion = FusionCore(
            engine, timeouts_ns={name: item.timeout_ns for name, item in inputs.items()}
        )
        overriding = QoSOverridingOptions.with_default_policies()
        self._core_pub = self.create_lifecycle_publisher(
            Image, CORE_TOPIC, OUTPUT_QOS, qos_overriding_options=overriding
        )
        for item in inputs.values():
            item.publisher = self.create_lifecycle_publisher(
                item.msg_cls,
                reconstruction_topic(item.config.modality),
                OUTPUT_QOS,
                qos_overriding_options=overriding,
            )
        self._diag_pub = self.create_lifecycle_publisher(
            DiagnosticArray, DIAGNOSTICS_TOPIC, OUTPUT_QOS
        )
        self.get_logger().info(
            f"model {str(model_path)!r} on {engine.provider}; fusion at "
            f"{config.fusion_rate_hz:g} Hz (timer {'on' if config.fusion_timer else 'off'}, "
            f"trigger {config.trigger_modality or 'none'}); inputs: "
            + "; ".join(
                f"{i.modality} <- {self.resolve_topic_name(i.topic)} [{i.msg_type}, "
                f"{i.qos}/{i.qos_depth}, timeout {i.timeout_s:g} s]"
                for i in config.inputs
            )
        )

    def on_activate(self, state: LifecycleState) -> Ret:
        """Subscribe to every modality and start the timers; then enable the publishers."""
        assert self.config is not None and self._fusion is not None
        self._fusion.reset()
        for item in self._inputs.values():
            item.stats = SensorStats(item.stats.modality, item.stats.topic)
            item.last_ok_ns = None
            item.codec.reset()
            item.subscription = self.create_subscription(
                item.msg_cls,
                item.config.topic,
                partial(self._on_message, item),
                _input_qos(item.config),
                event_callbacks=SubscriptionEventCallbacks(
                    incompatible_qos=partial(self._on_incompatible_qos, item)
                ),
                qos_overriding_options=QoSOverridingOptions.with_default_policies(),
            )
        self._ticks = self._outputs = 0
        self._latency = LatencyWindow()
        if self.config.fusion_timer:
            self._fusion_timer = self.create_timer(self.config.fusion_period_s, self._tick)
        self._diag_last_ns = self._steady.now().nanoseconds
        self._diag_timer = self.create_timer(
            self.config.diagnostics_period_s, self._publish_diagnostics, clock=self._steady
        )
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> Ret:
        """Drop subscriptions and timers; then disable the publishers."""
        self._release_inputs()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> Ret:
        """Release the model, codecs, fusion core and publishers."""
        self._release_all()
        return Ret.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> Ret:
        """Release everything, from whichever state."""
        self._release_all()
        return Ret.SUCCESS

    def _release_inputs(self) -> None:
        for item in self._inputs.values():
            if item.subscription is not None:
                self.destroy_subscription(item.subscription)
                item.subscription = None
        for timer in (self._fusion_timer, self._diag_timer):
            if timer is not None:
                self.destroy_timer(timer)
        self._fusion_timer = self._diag_timer = None

    def _release_all(self) -> None:
        self._release_inputs()
        publishers = [self._core_pub, self._diag_pub, *(i.publisher for i in self._inputs.values())]
        for pub in publishers:
            if pub is not None:
                self.destroy_lifecycle_publisher(pub)
        self._core_pub = self._diag_pub = None
        self._inputs = {}
        self.config = self.engine = self._manifest = self._fusion = None

    # -- data path ------------------------------------------------------------------------------

    def _on_message(self, item: _Input, msg: Any) -> None:
        """Decode one sensor message and push it into the fusion core (malformed: count, skip)."""
        assert self._fusion is not None and self.config is not None
        stats = item.stats
        stats.received += 1
        now_ns = self.get_clock().now().nanoseconds
        if item.last_ok_ns is not None and now_ns < item.last_ok_ns:
            self._forget_all()  # the clock jumped back (e.g. a looping bag with use_sim_time)
        elif item.last_ok_ns is not None and now_ns - item.last_ok_ns > item.reset_after_ns:
            item.codec.reset()  # back after a real dropout: no stale state (audio ring buffer)
        try:
            sample = item.codec.decode(msg)
            if sample is not None:  # None: e.g. the audio window is still filling
                self._fusion.push(now_ns, stats.modality, sample)
        except ValueError as err:  # CodecError, or values the fusion core rejects
            stats.malformed += 1
            stats.last_error = str(err)
            self.get_logger().warning(
                f"{stats.topic}: skipped malformed message: {err}", throttle_duration_sec=5.0
            )
            return
        item.last_ok_ns = now_ns
        if sample is None:
            return
        stats.decoded += 1
        stats.window_decoded += 1
        header = getattr(msg, "header", None)
        if header is not None:
            item.frame_id = header.frame_id
        if self.config.trigger_modality == stats.modality:
            self._tick()

    def _forget_all(self) -> None:
        assert self._fusion is not None
        self.get_logger().warning("time jumped backwards: forgetting every stored sample")
        self._fusion.reset()
        for other in self._inputs.values():
            other.last_ok_ns = None
            other.codec.reset()

    def _on_incompatible_qos(self, item: _Input, info: QoSRequestedIncompatibleQoSInfo) -> None:
        item.stats.qos_incompatible = info.total_count
        self.get_logger().warning(
            f"{item.stats.topic}: {info.total_count} publisher(s) with incompatible QoS "
            f"(last policy id {info.last_policy_kind}); this input uses preset "
            f"{item.config.qos!r}: set modalities.{item.config.modality}.qos to match them",
            throttle_duration_sec=5.0,
        )

    def _tick(self) -> None:
        """One fusion step: infer from the present sensors, publish core and reconstructions."""
        assert self._fusion is not None and self.config is not None
        now_ns = self.get_clock().now().nanoseconds
        start_ns = time.perf_counter_ns()
        out = self._fusion.tick(now_ns)
        self._ticks += 1
        if out is None:  # no sensor present: nothing to fuse, nothing to publish
            return
        self._latency.add(time.perf_counter_ns() - start_ns)
        stamp = _stamp(now_ns)
        assert self._core_pub is not None
        self._core_pub.publish(
            encode_core(
                Image,
                Header(stamp=stamp, frame_id=CORE_FRAME_ID),
                out.core_mean,
                out.core_var,
                np.fromiter(out.present.values(), dtype=np.float32, count=len(out.present)),
            )
        )
        publish_present = self.config.publish_present_reconstructions
        for item in self._inputs.values():
            if out.present[item.config.modality] and not publish_present:
                continue
            assert item.publisher is not None
            name = item.config.modality
            try:
                msg = item.codec.encode(
                    out.recon[name],
                    Header(stamp=stamp, frame_id=item.frame_id),
                    msg_cls=item.msg_cls,
                )
            except SensorySyncError as err:  # e.g. a model emitting non-finite values
                self.get_logger().error(
                    f"cannot publish the {name} reconstruction: {err}", throttle_duration_sec=5.0
                )
                continue
            item.publisher.publish(msg)
        self._outputs += 1

    def _publish_diagnostics(self) -> None:
        assert self._diag_pub is not None and self.engine is not None and self._manifest
        assert self._fusion is not None
        steady_ns = self._steady.now().nanoseconds
        window_s = (steady_ns - self._diag_last_ns) / 1e9
        self._diag_last_ns = steady_ns
        now_ns = self.get_clock().now().nanoseconds
        name = self.get_fully_qualified_name()
        sensors = [item.stats for item in self._inputs.values()]
        states = self._fusion.status(now_ns)
        report = FusionReport(
            provider=self.engine.provider,
            model_path=str(self.engine.path),
            core_layout=core_layout(self._manifest.core_latent_dim, self._manifest.names),
            ticks=self._ticks,
            outputs=self._outputs,
            latency_ms=self._latency.summary_ms(),
        )
        statuses = [fusion_status(sensors, states, report, node_name=name)]
        statuses += [
            sensor_status(s, states[s.modality], node_name=name, window_s=window_s)
            for s in sensors
        ]
        msg = DiagnosticArray(status=statuses)
        msg.header.stamp = _stamp(now_ns)
        self._diag_pub.publish(msg)


def main(argv: list[str] | None = None) -> int:
    """Run the node; with ``autostart`` (default) configure and activate it first.

    Returns 0 on a clean shutdown, 1 (after one ``error: ...`` line on stderr) when autostart
    cannot configure or activate it.
    """
    args = sys.argv if argv is None else [sys.argv[0], *argv]
    rclpy.init(args=args)
    node: SensorySyncNode | None = None
    try:
        node = SensorySyncNode()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        try:
            autostart = node.autostart
        except NodeConfigError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        if autostart:
            if node.trigger_configure() != Ret.SUCCESS:
                print(f"error: {node.failure_reason}", file=sys.stderr)
                return 1
            if node.trigger_activate() != Ret.SUCCESS:
                print("error: the node configured but could not activate", file=sys.stderr)
                return 1
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
