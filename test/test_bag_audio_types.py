"""audio_common_msgs variants in bags: read with the bag's own definitions, or (for bags that
carry none) with the shipped .msg text, picking the variant that deserialises."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from sensorysync_ros.bagtools.bagio import BagReader
from sensorysync_ros.bagtools.evaluate import main as eval_main
from sensorysync_ros.bagtools.synth import write_synthetic_bag
from sensorysync_ros.codecs import logmel, make_codec, register_audio_common_types
from sensorysync_ros.manifest import ModalitySpec, RosBinding
from sensorysync_ros.model_file import read_manifest

AUDIO = {
    "sample_rate": 16000,
    "window_samples": 4000,
    "n_fft": 256,
    "hop_length": 128,
    "n_mels": 16,
    "loc": 0.0,
    "scale": 1.0,
}
CHUNK = 320
STAMP_NS = 1_000_000_000


def _pcm(k: int) -> np.ndarray:
    t = np.arange(k * CHUNK, (k + 1) * CHUNK) / AUDIO["sample_rate"]
    return (0.4 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)


def _message(store, variant: str, msgtype: str, k: int):
    types = store.types
    time = types["builtin_interfaces/msg/Time"](sec=1, nanosec=k * 20_000_000)
    header = types["std_msgs/msg/Header"](stamp=time, frame_id="mic")
    pcm = _pcm(k)
    if variant == "mgonzs13":
        empty = {
            f"{t}_data": np.zeros(0, d)
            for t, d in (
                ("float32", np.float32),
                ("int32", np.int32),
                ("int8", np.int8),
                ("uint8", np.uint8),
            )
        }
        data = types["audio_common_msgs/msg/AudioData"](int16_data=pcm, **empty)
        # format 8 = paInt16 (PortAudio), as mgonzs13/audio_common publishes
        info = types["audio_common_msgs/msg/AudioInfo"](
            format=8, channels=1, rate=16000, chunk=CHUNK
        )
        audio = types["audio_common_msgs/msg/Audio"](audio_data=data, info=info)
        return types[msgtype](header=header, audio=audio)
    data = types["audio_common_msgs/msg/AudioData"](data=pcm.astype("<i2").view(np.uint8))
    return types[msgtype](header=header, audio=data)


@pytest.mark.parametrize("carry_definitions", [True, False])
@pytest.mark.parametrize(
    ("variant", "msgtype"),
    [
        ("mgonzs13", "audio_common_msgs/msg/AudioStamped"),
        ("ros_drivers", "audio_common_msgs/msg/AudioDataStamped"),
    ],
)
def test_audio_common_variants_decode_like_plain_pcm(tmp_path, variant, msgtype, carry_definitions):
    store = get_typestore(Stores.ROS2_KILTED)
    register_audio_common_types(store, variant)
    bag = tmp_path / "bag"
    with Writer(bag, version=9, storage_plugin=StoragePlugin.SQLITE3) as writer:
        conn = writer.add_connection("/audio", msgtype, typestore=store)
        for k in range(15):
            msg = _message(store, variant, msgtype, k)
            writer.write(
                conn, STAMP_NS + k * 20_000_000 + 3_000_000, store.serialize_cdr(msg, msgtype)
            )
    if not carry_definitions:  # as a bag recorded before rosbag2 stored type definitions
        (db,) = Path(bag).glob("*.db3")
        with sqlite3.connect(db) as con:
            con.execute("DELETE FROM message_definitions")
    spec = ModalitySpec(
        "audio", "audio", (1, 16, 30), "gaussian", AUDIO, RosBinding("audio", msgtype, 50.0)
    )
    codec = make_codec(spec)
    with BagReader(bag) as reader:
        assert reader.has_definitions is carry_definitions
        messages = list(reader.messages(reader.bind([spec])))
        features = [codec.decode(m.msg) for m in messages]
    assert [m.stamp_ns for m in messages] == [STAMP_NS + k * 20_000_000 for k in range(15)]
    assert all(f is None for f in features[:12]) and features[-1] is not None
    pcm = np.concatenate([_pcm(k) for k in range(15)]).astype(np.float32) / 32768.0
    expected = logmel(pcm[-AUDIO["window_samples"] :], AUDIO)
    assert np.allclose(features[-1], expected, atol=1e-4)


def test_evaluation_with_audio_common_audio_without_definitions(tmp_path, tiny_robot_model):
    """mgonzs13 AudioStamped in a bag without type definitions: evaluated, and reconstructed
    audio written back in the same type."""
    specs = read_manifest(tiny_robot_model).modalities
    msgtype = "audio_common_msgs/msg/AudioStamped"
    bag = write_synthetic_bag(
        tmp_path / "bag", specs, 3.0, audio_msgtype=msgtype, audio_variant="mgonzs13"
    )
    (db,) = Path(bag).glob("*.db3")
    with sqlite3.connect(db) as con:
        con.execute("DELETE FROM message_definitions")
    out = tmp_path / "eval"
    assert (
        eval_main(
            [
                str(bag),
                "--model",
                str(tiny_robot_model),
                "--drop",
                "audio:1-2",
                "--write-bag",
                "--out",
                str(out),
                "--providers",
                "CPUExecutionProvider",
            ]
        )
        == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    audio = metrics["modalities"]["audio"]
    assert audio["ticks"]["dropout"] > 20 and audio["ticks"]["present"] > 20
    assert audio["dropout"]["model"]["lsd_db"] > 0
    with BagReader(out / "bag_sensorysync") as reader:
        assert reader.topics["/sensorysync/audio/reconstruction"] == msgtype
        conns = [c for c in reader.connections if c.topic == "/sensorysync/audio/reconstruction"]
        recons = [reader.deserialize(raw, c, t) for c, t, raw in reader.raw_messages(conns)]
    # published whenever audio is missing, as the node does: in the dropout and while the
    # first window fills
    assert len(recons) == audio["ticks"]["dropout"] + audio["ticks"]["missing"]
    assert recons[0].audio.audio_data.float32_data.size > 0
