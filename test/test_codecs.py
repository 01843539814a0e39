"""Codecs: ROS messages <-> model tensors, built directly (rclpy and rosbags classes, no init)."""

from __future__ import annotations

import json
from dataclasses import asdict

import cv2
import numpy as np
import pytest
from builtin_interfaces.msg import Time
from rclpy.serialization import serialize_message
from rosbags.rosbag2 import Writer
from rosbags.typesys import Stores, get_typestore
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Float32MultiArray, Header, Int16MultiArray, Int32, UInt8

from sensorysync_ros.bagtools.extract import main as extract_main
from sensorysync_ros.codecs import (
    AudioCodec,
    PcmRing,
    StreamResampler,
    audio_common_msg_definitions,
    audio_feature_shape,
    griffin_lim,
    joint_state_to_tensor,
    logmel,
    make_codec,
    mel_filterbank,
    message_type_name,
    overlap_add,
    pixels_to_tensor,
    register_audio_common_types,
)
from sensorysync_ros.codecs.resample import lowpass_kernel
from sensorysync_ros.errors import CodecError, ManifestError
from sensorysync_ros.manifest import ModalitySpec, RosBinding

TS = get_typestore(Stores.ROS2_KILTED)
RB_IMAGE = TS.types["sensor_msgs/msg/Image"]
RB_JOINTS = TS.types["sensor_msgs/msg/JointState"]
RB_FLOAT32 = TS.types["std_msgs/msg/Float32MultiArray"]
RB_HEADER = TS.types["std_msgs/msg/Header"]
RB_TIME = TS.types["builtin_interfaces/msg/Time"]

AUDIO_PRE = {
    "sample_rate": 16000,
    "window_samples": 4000,
    "n_fft": 400,
    "hop_length": 160,
    "n_mels": 16,
    "loc": -3.0,
    "scale": 4.0,
}
JOINT_PRE = {
    "joint_names": ["shoulder", "elbow", "wrist"],
    "fields": ["position", "velocity", "effort"],
    "loc": [0.1, 0.2, 0.3, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0],
    "scale": [2.0, 2.0, 2.0, 0.5, 0.5, 0.5, 4.0, 4.0, 4.0],
}


def _spec(name: str, kind: str, shape: tuple[int, ...], pre: dict, msg_type: str) -> ModalitySpec:
    likelihood = {"image": "bernoulli", "categorical": "categorical"}.get(kind, "gaussian")
    return ModalitySpec(name, kind, shape, likelihood, pre, RosBinding(name, msg_type, 30.0))


CAMERA = _spec("camera", "image", (3, 32, 32), {"encoding": "rgb8"}, "sensor_msgs/msg/Image")
MONO_CAMERA = _spec("camera", "image", (1, 32, 32), {"encoding": "mono8"}, "sensor_msgs/msg/Image")
JOINTS = _spec("joints", "vector", (9,), JOINT_PRE, "sensor_msgs/msg/JointState")
AUDIO = _spec(
    "audio", "audio", audio_feature_shape(AUDIO_PRE), AUDIO_PRE, "std_msgs/msg/Float32MultiArray"
)
LABEL = _spec(
    "label", "categorical", (4,), {"classes": list("abcd")}, "std_msgs/msg/Float32MultiArray"
)


def _rb_header() -> object:
    return RB_HEADER(stamp=RB_TIME(sec=1, nanosec=2), frame_id="cam")


def _rgb(height: int = 32, width: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _image_bytes(rgb: np.ndarray, encoding: str) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, C) pixel bytes of ``rgb`` in ``encoding``, and the tensor expected from them."""
    expected = rgb.transpose(2, 0, 1).astype(np.float32) / 255.0
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    alpha = np.full((*rgb.shape[:2], 1), 7, dtype=np.uint8)
    if encoding == "rgb8":
        return rgb, expected
    if encoding == "bgr8":
        return rgb[..., ::-1], expected
    if encoding == "rgba8":
        return np.concatenate([rgb, alpha], axis=2), expected
    if encoding == "bgra8":
        return np.concatenate([rgb[..., ::-1], alpha], axis=2), expected
    mono = np.broadcast_to(gray[None].astype(np.float32) / 255.0, (3, *gray.shape))
    if encoding == "mono8":
        return gray[..., None], mono
    wide = gray.astype(np.uint16) * 257  # mono16 of the same brightness
    return wide.astype("<u2").view(np.uint8).reshape(*gray.shape, 2), mono


def _image(cls: type, pixels: np.ndarray, encoding: str, *, pad: int = 0, big: bool = False):
    height, width = pixels.shape[:2]
    rows = pixels.reshape(height, -1)
    padded = np.concatenate([rows, np.full((height, pad), 0xAB, np.uint8)], axis=1)
    header = _rb_header() if cls is RB_IMAGE else Header()
    return cls(
        header=header,
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=int(big),
        step=padded.shape[1],
        data=padded.reshape(-1),
    )


# ---------------------------------------------------------------- image


@pytest.mark.parametrize("cls", [Image, RB_IMAGE], ids=["rclpy", "rosbags"])
@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16"])
def test_every_encoding_decodes_to_rgb_in_unit_range(cls, encoding):
    pixels, expected = _image_bytes(_rgb(), encoding)
    tensor = make_codec(CAMERA).decode(_image(cls, pixels, encoding))
    assert tensor.dtype == np.float32 and tensor.shape == (3, 32, 32)
    np.testing.assert_allclose(tensor, expected, atol=1e-6)


def test_bgr_and_rgb_channel_order_differ_correctly():
    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = 255  # RGB red
    as_rgb = make_codec(CAMERA).decode(_image(Image, red, "rgb8"))
    as_bgr = make_codec(CAMERA).decode(_image(Image, red, "bgr8"))  # same bytes: now blue
    assert as_rgb[0].min() == 1.0 and as_rgb[2].max() == 0.0
    assert as_bgr[2].min() == 1.0 and as_bgr[0].max() == 0.0


@pytest.mark.parametrize("encoding", ["rgb8", "bgra8", "mono16"])
def test_row_padding_is_skipped(encoding):
    pixels, expected = _image_bytes(_rgb(), encoding)
    padded = _image(Image, pixels, encoding, pad=13)
    assert padded.step == pixels.shape[1] * pixels.shape[2] + 13
    np.testing.assert_allclose(make_codec(CAMERA).decode(padded), expected, atol=1e-6)


@pytest.mark.parametrize("encoding", ["bgra8", "mono16"])
def test_padded_rows_are_resized_like_unpadded_ones(encoding):
    pixels, _ = _image_bytes(_rgb(48, 64, seed=11), encoding)
    codec = make_codec(CAMERA)
    plain = codec.decode(_image(Image, pixels, encoding))
    np.testing.assert_array_equal(codec.decode(_image(Image, pixels, encoding, pad=13)), plain)
    rgb = _rgb(48, 64, seed=11)
    if encoding == "bgra8":  # and the shrink is OpenCV's area average of the RGB pixels
        reference = cv2.resize(rgb, (32, 32), interpolation=cv2.INTER_AREA).transpose(2, 0, 1)
        np.testing.assert_allclose(plain, reference / 255.0, atol=1e-6)


def test_big_endian_mono16_equals_little_endian():
    values = np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 61
    little = values.astype("<u2").view(np.uint8).reshape(32, 32, 2)
    big = values.astype(">u2").view(np.uint8).reshape(32, 32, 2)
    codec = make_codec(MONO_CAMERA)
    from_little = codec.decode(_image(Image, little, "mono16", pad=4))
    from_big = codec.decode(_image(Image, big, "mono16", pad=4, big=True))
    np.testing.assert_array_equal(from_little, from_big)
    np.testing.assert_allclose(from_big[0], values / 65535.0, atol=1e-6)
    swapped = codec.decode(_image(Image, big, "mono16"))  # big bytes read as little: wrong
    assert not np.allclose(swapped, from_big)


def test_resize_shrinks_by_area_average():
    big = _rgb(64, 96)
    tensor = make_codec(CAMERA).decode(_image(Image, big, "rgb8"))
    reference = cv2.resize(big, (32, 32), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(tensor, reference.transpose(2, 0, 1) / 255.0, atol=1e-6)
    exact = _rgb(64, 64)  # a 2x shrink by area is the 2x2 block mean
    block_mean = exact.reshape(32, 2, 32, 2, 3).mean(axis=(1, 3)).transpose(2, 0, 1) / 255.0
    decoded = make_codec(CAMERA).decode(_image(Image, exact, "rgb8"))
    np.testing.assert_allclose(decoded, block_mean, atol=1.0 / 255.0)


def test_colour_to_mono_model_uses_luma():
    rgb = _rgb()
    tensor = make_codec(MONO_CAMERA).decode(_image(Image, rgb, "rgb8"))
    expected = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[None] / 255.0
    assert tensor.shape == (1, 32, 32)
    np.testing.assert_allclose(tensor, expected, atol=1e-6)


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_compressed_round_trip(fmt):
    codec = make_codec(CAMERA, compressed_format=fmt)
    smooth = np.linspace(0, 1, 32, dtype=np.float32)
    planes = [np.outer(smooth, smooth), np.outer(1 - smooth, smooth), np.full((32, 32), 0.5)]
    tensor = (np.round(np.stack(planes) * 255) / 255).astype(np.float32)
    msg = codec.encode(tensor, Header(), msg_cls=CompressedImage)
    assert isinstance(msg, CompressedImage) and msg.format == fmt
    decoded = codec.decode(msg)
    if fmt == "png":
        np.testing.assert_allclose(decoded, tensor, atol=1e-6)
    else:
        assert np.abs(decoded - tensor).mean() < 0.02
        # channel order survives jpeg: red plane stays the red plane
        assert np.corrcoef(decoded[0].ravel(), tensor[0].ravel())[0, 1] > 0.98


def test_compressed_from_opencv_bgr_jpeg():
    rgb = np.zeros((24, 40, 3), np.uint8)
    rgb[..., 0] = 200  # red
    ok, jpeg = cv2.imencode(".jpg", rgb[..., ::-1])  # OpenCV writes BGR input
    assert ok
    msg = CompressedImage(format="rgb8; jpeg compressed bgr8", data=jpeg.tobytes())
    tensor = make_codec(CAMERA).decode(msg)
    assert tensor.shape == (3, 32, 32)
    assert abs(tensor[0].mean() - 200 / 255) < 0.02 and tensor[2].mean() < 0.02


@pytest.mark.parametrize("spec", [CAMERA, MONO_CAMERA], ids=["rgb8", "mono8"])
def test_image_encode_decode_is_exact_on_8_bit_levels(spec):
    levels = np.random.default_rng(1).integers(0, 256, spec.shape).astype(np.float32) / 255.0
    codec = make_codec(spec)
    msg = codec.encode(levels[None], Header())  # batch of one accepted
    assert isinstance(msg, Image)
    assert len(serialize_message(msg)) > levels.size  # well-formed for rclpy
    assert msg.encoding == spec.preprocess["encoding"] and msg.step == 32 * spec.shape[0]
    np.testing.assert_array_equal(codec.decode(msg), levels)


def test_image_encode_into_rosbags_class_serialises():
    codec = make_codec(CAMERA)
    tensor = np.full((3, 32, 32), 0.5, np.float32)
    msg = codec.encode(tensor, _rb_header(), msg_cls=RB_IMAGE)
    raw = TS.serialize_cdr(msg, "sensor_msgs/msg/Image")
    back = TS.deserialize_cdr(raw, "sensor_msgs/msg/Image")
    assert back.header.frame_id == "cam"
    np.testing.assert_allclose(codec.decode(back), 128 / 255, atol=1e-6)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"encoding": "yuv422"}, r"unknown image encoding 'yuv422'"),
        ({"data": np.zeros(32 * 96 - 1, np.uint8)}, r"3071 bytes, shorter than step 96 x height"),
        ({"step": 95}, r"step 95 bytes < width 32 x 3 bytes per pixel"),
        ({"height": 0, "data": np.zeros(0, np.uint8)}, r"width 32 x height 0 pixels is empty"),
    ],
)
def test_malformed_image_is_named(change, match):
    fields = {
        "height": 32,
        "width": 32,
        "encoding": "rgb8",
        "is_bigendian": 0,
        "step": 96,
        "data": np.zeros(32 * 96, np.uint8),
    }
    fields.update(change)
    with pytest.raises(CodecError, match=match):
        make_codec(CAMERA).decode(Image(**fields))


@pytest.mark.parametrize(
    ("msg", "match"),
    [
        (CompressedImage(format="jpeg", data=b"not a jpeg at all"), r"not a jpeg/png OpenCV"),
        (CompressedImage(format="png", data=b""), r"format 'png'\) has no data"),
        (CompressedImage(format="16UC1; compressedDepth png", data=b"x"), r"\(depth\)"),
    ],
)
def test_malformed_compressed_image_is_named(msg, match):
    with pytest.raises(CodecError, match=match):
        make_codec(CAMERA).decode(msg)


def test_image_encode_errors_are_named():
    codec = make_codec(CAMERA)
    with pytest.raises(CodecError, match=r"shape \(3, 16, 16\) does not hold one sample"):
        codec.encode(np.zeros((3, 16, 16)), Header())
    with pytest.raises(CodecError, match=r"as 'sensor_msgs/msg/JointState'"):
        codec.encode(np.zeros((3, 32, 32)), Header(), msg_cls=JointState)


def test_pixels_to_tensor_accepts_frames_that_never_were_messages():
    frame = _rgb(32, 32)
    np.testing.assert_allclose(
        pixels_to_tensor(frame, (3, 32, 32)), frame.transpose(2, 0, 1) / 255.0, atol=1e-6
    )


# ---------------------------------------------------------------- joints


def _joint_state(cls: type = JointState, **change):
    fields = {
        "name": ["gripper", "wrist", "shoulder", "elbow"],
        "position": np.array([9.0, 3.0, 1.0, 2.0]),
        "velocity": np.array([9.0, 0.3, 0.1, 0.2]),
        "effort": np.array([9.0, 6.0, 4.0, 5.0]),
    }
    fields.update(change)
    if cls is RB_JOINTS:
        fields["header"] = _rb_header()
    return cls(**fields)


@pytest.mark.parametrize("cls", [JointState, RB_JOINTS], ids=["rclpy", "rosbags"])
def test_joints_are_reordered_by_name_and_normalised(cls):
    tensor = make_codec(JOINTS).decode(_joint_state(cls))
    raw = np.array([1.0, 2.0, 3.0, 0.1, 0.2, 0.3, 4.0, 5.0, 6.0])
    expected = (raw - np.array(JOINT_PRE["loc"])) / np.array(JOINT_PRE["scale"])
    assert tensor.dtype == np.float32
    np.testing.assert_allclose(tensor, expected, rtol=1e-6)
    np.testing.assert_allclose(
        joint_state_to_tensor(_joint_state(cls), JOINT_PRE, normalise=False), raw, rtol=1e-6
    )


@pytest.mark.parametrize("cls", [JointState, RB_JOINTS], ids=["rclpy", "rosbags"])
def test_joint_encode_round_trip(cls):
    codec = make_codec(JOINTS)
    tensor = np.linspace(-1, 1, 9).astype(np.float32)
    header = _rb_header() if cls is RB_JOINTS else Header()
    msg = codec.encode(tensor, header, msg_cls=cls)
    assert list(msg.name) == JOINT_PRE["joint_names"]
    if cls is JointState:
        serialize_message(msg)
    raw = tensor * np.array(JOINT_PRE["scale"]) + np.array(JOINT_PRE["loc"])
    np.testing.assert_allclose(np.asarray(msg.velocity), raw[3:6], rtol=1e-6)
    np.testing.assert_allclose(codec.decode(msg), tensor, rtol=1e-5, atol=1e-6)
    if cls is RB_JOINTS:
        TS.serialize_cdr(msg, "sensor_msgs/msg/JointState")


def test_joint_encode_leaves_unused_fields_empty():
    spec = _spec(
        "joints",
        "vector",
        (2,),
        {"joint_names": ["a", "b"], "fields": ["position"], "loc": [0, 0], "scale": [1, 1]},
        "sensor_msgs/msg/JointState",
    )
    msg = make_codec(spec).encode(np.array([1.0, 2.0]), Header())
    assert list(msg.position) == [1.0, 2.0] and len(msg.velocity) == 0 and len(msg.effort) == 0


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"name": ["gripper", "wrist", "shoulder", "knee"]}, r"lacks joint 'elbow'"),
        ({"velocity": np.array([])}, r"JointState.velocity has 0 values for 4 names"),
        ({"position": np.array([9.0, np.nan, 1.0, 2.0])}, r"position of joint 'wrist' is nan"),
        ({"effort": np.array([0.0, 1.0, np.inf, 2.0])}, r"effort of joint 'shoulder' is inf"),
    ],
)
def test_malformed_joint_state_is_named(change, match):
    with pytest.raises(CodecError, match=match):
        make_codec(JOINTS).decode(_joint_state(**change))


def test_nan_in_an_ignored_joint_is_fine():
    msg = _joint_state(position=np.array([np.nan, 3.0, 1.0, 2.0]))
    assert np.isfinite(make_codec(JOINTS).decode(msg)).all()


# ---------------------------------------------------------------- audio


def _reference_logmel(pcm: np.ndarray, pre: dict) -> np.ndarray:
    """Slow reference: explicit frame loop, DFT by matrix, filters bin by bin (HTK)."""
    n_fft, hop, sr, n_mels = pre["n_fft"], pre["hop_length"], pre["sample_rate"], pre["n_mels"]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    n_bins = n_fft // 2 + 1
    dft = np.exp(-2j * np.pi * np.outer(np.arange(n_bins), np.arange(n_fft)) / n_fft)

    def mel(f):
        return 2595 * np.log10(1 + f / 700)

    edges = 700 * (10 ** (np.linspace(0, mel(sr / 2), n_mels + 2) / 2595) - 1)
    bank = np.zeros((n_mels, n_bins))
    for m in range(n_mels):
        lo, centre, hi = edges[m], edges[m + 1], edges[m + 2]
        for k in range(n_bins):
            f = k * sr / n_fft
            if lo < f <= centre:
                bank[m, k] = (f - lo) / (centre - lo)
            elif centre < f < hi:
                bank[m, k] = (hi - f) / (hi - centre)
    frames = []
    for start in range(0, len(pcm) - n_fft + 1, hop):
        power = np.abs(dft @ (pcm[start : start + n_fft] * window)) ** 2
        frames.append(np.log(bank @ power + 1e-6))
    return ((np.array(frames).T - pre["loc"]) / pre["scale"])[None]


def test_logmel_matches_slow_reference():
    pcm = np.random.default_rng(2).uniform(-0.5, 0.5, 4000).astype(np.float32)
    fast = logmel(pcm, AUDIO_PRE)
    assert fast.shape == (1, 16, 1 + (4000 - 400) // 160) == audio_feature_shape(AUDIO_PRE)
    reference = _reference_logmel(pcm.astype(np.float64), AUDIO_PRE)
    np.testing.assert_allclose(fast, reference, atol=2e-4)


@pytest.mark.parametrize("scale", ["htk", "slaney"])
def test_a_tone_lights_the_band_holding_its_frequency(scale):
    pre = {**AUDIO_PRE, "mel_scale": scale, "loc": 0.0, "scale": 1.0}
    tone_hz = 1500.0
    pcm = 0.5 * np.sin(2 * np.pi * tone_hz * np.arange(4000) / 16000)
    band = int(logmel(pcm, pre)[0].mean(axis=1).argmax())
    bank = mel_filterbank(16000, 400, 16, 0.0, 8000.0, scale)
    assert bank[band, round(tone_hz * 400 / 16000)] > 0.0
    if scale == "slaney":  # area normalised: each triangle integrates to ~ the same
        areas = bank.sum(axis=1) * 16000 / 400
        assert np.all(np.abs(areas[4:] / areas[4:].mean() - 1) < 0.2)


def test_ring_buffer_keeps_the_last_window_in_order():
    ring = PcmRing(10)
    stream = np.arange(37, dtype=np.float32)
    written = 0
    for size in (3, 4, 2, 9, 1, 7, 11):
        ring.write(stream[written : written + size])
        written += size
        assert ring.full == (written >= 10)
        if ring.full:
            np.testing.assert_array_equal(ring.window(), stream[written - 10 : written])
    ring.reset()
    assert not ring.full


def test_audio_codec_waits_for_one_full_window_then_equals_logmel_of_the_stream():
    codec = make_codec(AUDIO)
    rng = np.random.default_rng(4)
    stream = rng.uniform(-0.3, 0.3, 320 * 20).astype(np.float32)
    outputs = [codec.decode(Float32MultiArray(data=c)) for c in stream.reshape(20, 320)]
    first_ready = 4000 // 320  # chunks 0..11 fill 3840 samples, chunk 12 completes the window
    assert all(o is None for o in outputs[:first_ready])
    for i in range(first_ready, 20):
        end = (i + 1) * 320
        np.testing.assert_allclose(outputs[i], logmel(stream[end - 4000 : end], AUDIO_PRE))
    codec.reset()
    assert codec.decode(Float32MultiArray(data=stream[:320])) is None
    assert codec.ring._ring.size == 4000  # preallocated, never grows


def test_int16_audio_is_scaled_to_unit_range():
    pcm = np.random.default_rng(5).integers(-32768, 32767, 4000).astype(np.int16)
    as_int = make_codec(AUDIO).decode(Int16MultiArray(data=pcm))
    as_float = make_codec(AUDIO).decode(Float32MultiArray(data=pcm.astype(np.float32) / 32768))
    np.testing.assert_allclose(as_int, as_float, atol=1e-5)


def test_input_rate_override_resamples_to_the_model_rate():
    tone_48k = (0.4 * np.sin(2 * np.pi * 1000 * np.arange(24000) / 48000)).astype(np.float32)
    codec = make_codec(AUDIO, sample_rate_hz=48000)
    outputs = [codec.decode(Float32MultiArray(data=c)) for c in tone_48k.reshape(-1, 960)]
    tone_16k = 0.4 * np.sin(2 * np.pi * 1000 * np.arange(8000) / 16000)
    direct = logmel(tone_16k, AUDIO_PRE)
    assert outputs[3] is None and outputs[-1] is not None  # 4 chunks = 3840 model samples
    assert np.abs(outputs[-1] - direct).mean() < 0.02


def test_resampler_output_does_not_depend_on_the_chunking():
    stream = np.random.default_rng(15).normal(0.0, 0.2, 44100).astype(np.float32)
    for from_hz, to_hz in ((44100, 16000), (16000, 48000), (48000, 16000)):
        whole = StreamResampler(from_hz, to_hz)(stream)
        chunked = StreamResampler(from_hz, to_hz)
        parts = [chunked(c) for c in np.array_split(stream, 97)]
        np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-6)
        assert abs(whole.size - stream.size * to_hz / from_hz) <= 2


def test_resampler_keeps_a_tone_and_blocks_what_would_alias():
    t_48k = np.arange(48000) / 48000
    resampler = StreamResampler(48000, 16000)
    delay_s = (lowpass_kernel(3.0).size - 1) / 2 / 48000
    kept = resampler(np.sin(2 * np.pi * 1000 * t_48k).astype(np.float32))
    t_16k = np.arange(kept.size) / 16000 - delay_s
    np.testing.assert_allclose(kept[200:], np.sin(2 * np.pi * 1000 * t_16k[200:]), atol=1e-3)
    aliasing = StreamResampler(48000, 16000)(np.sin(2 * np.pi * 12000 * t_48k).astype(np.float32))
    assert np.sqrt(np.mean(aliasing[200:] ** 2)) < 0.01  # 12 kHz would fold onto 4 kHz
    with pytest.raises(CodecError, match=r"sample rates must be > 0, got 0 -> 16000 Hz"):
        StreamResampler(0, 16000)


def _stores(variant: str):
    store = get_typestore(Stores.ROS2_KILTED)
    register_audio_common_types(store, variant)
    return store


def test_ros_drivers_audio_data_stamped_s16le():
    store = _stores("ros_drivers")
    pcm = np.random.default_rng(6).integers(-20000, 20000, 4000).astype(np.int16)
    data_cls = store.types["audio_common_msgs/msg/AudioData"]
    stamped_cls = store.types["audio_common_msgs/msg/AudioDataStamped"]
    msg = stamped_cls(header=_rb_header(), audio=data_cls(data=pcm.astype("<i2").view(np.uint8)))
    raw = store.serialize_cdr(msg, "audio_common_msgs/msg/AudioDataStamped")
    back = store.deserialize_cdr(raw, "audio_common_msgs/msg/AudioDataStamped")
    features = make_codec(AUDIO).decode(back)
    np.testing.assert_allclose(features, logmel(pcm / 32768.0, AUDIO_PRE), atol=1e-4)
    with pytest.raises(CodecError, match="odd byte count 3"):
        make_codec(AUDIO).decode(data_cls(data=np.zeros(3, np.uint8)))


def _mgonzs13(store, values: np.ndarray, fmt: int, *, rate: int, channels: int):
    data_cls = store.types["audio_common_msgs/msg/AudioData"]
    arrays = {
        "float32_data": np.empty(0, np.float32),
        "int32_data": np.empty(0, np.int32),
        "int16_data": np.empty(0, np.int16),
        "int8_data": np.empty(0, np.int8),
        "uint8_data": np.empty(0, np.uint8),
    }
    arrays[{1: "float32_data", 8: "int16_data"}[fmt]] = values
    info = store.types["audio_common_msgs/msg/AudioInfo"](
        format=fmt, channels=channels, rate=rate, chunk=values.size // channels
    )
    audio = store.types["audio_common_msgs/msg/Audio"](audio_data=data_cls(**arrays), info=info)
    return store.types["audio_common_msgs/msg/AudioStamped"](header=_rb_header(), audio=audio)


def test_mgonzs13_audio_stamped_int16_stereo_and_float32():
    store = _stores("mgonzs13")
    rng = np.random.default_rng(7)
    left = rng.integers(-10000, 10000, 4000).astype(np.int16)
    right = rng.integers(-10000, 10000, 4000).astype(np.int16)
    stereo = np.stack([left, right], axis=1).reshape(-1)  # interleaved
    msg = _mgonzs13(store, stereo, 8, rate=16000, channels=2)
    back = store.deserialize_cdr(
        store.serialize_cdr(msg, "audio_common_msgs/msg/AudioStamped"),
        "audio_common_msgs/msg/AudioStamped",
    )
    mono = (left.astype(np.float32) + right) / 2 / 32768
    np.testing.assert_allclose(make_codec(AUDIO).decode(back), logmel(mono, AUDIO_PRE), atol=1e-4)
    float_msg = _mgonzs13(store, mono, 1, rate=16000, channels=1)
    np.testing.assert_allclose(
        make_codec(AUDIO).decode(float_msg), logmel(mono, AUDIO_PRE), atol=1e-5
    )
    bad = _mgonzs13(store, mono, 1, rate=16000, channels=1)
    bad.audio.info.format = 4  # paInt24: not supported
    with pytest.raises(CodecError, match=r"info.format 4 is not a supported PyAudio format"):
        make_codec(AUDIO).decode(bad)


@pytest.mark.parametrize(
    ("msg", "match"),
    [
        (Float32MultiArray(data=[]), r"empty audio chunk in std_msgs/msg/Float32MultiArray"),
        (Float32MultiArray(data=[0.1, float("nan")]), r"2 samples contains NaN"),
        (Int32(data=3), r"std_msgs/msg/Int32 is not an audio message"),
    ],
)
def test_malformed_audio_is_named(msg, match):
    with pytest.raises(CodecError, match=match):
        make_codec(AUDIO).decode(msg)


def test_stereo_chunk_with_half_a_frame_is_rejected():
    with pytest.raises(CodecError, match=r"3 samples is not a whole number of 2-channel frames"):
        make_codec(AUDIO, channels=2).decode(Float32MultiArray(data=[0.1, 0.2, 0.3]))


@pytest.mark.parametrize(("n", "hop"), [(8, 4), (8, 3), (6, 6)])
def test_overlap_add_matches_a_frame_loop(n, hop):
    frames = np.random.default_rng(12).normal(size=(7, n)).astype(np.float32)
    expected = np.zeros(n + hop * 6, np.float32)
    for t, frame in enumerate(frames):
        expected[t * hop : t * hop + n] += frame
    np.testing.assert_allclose(overlap_add(frames, hop), expected, rtol=1e-6, atol=1e-6)


def _features_again(pcm: np.ndarray) -> np.ndarray:
    """Features of a Griffin-Lim window (3920 samples), dropping the frame the zero pad reaches."""
    padded = np.concatenate([pcm, np.zeros(4000 - pcm.size, np.float32)])
    return logmel(padded, AUDIO_PRE)[..., :-1]


def test_griffin_lim_reconstruction_has_the_same_features():
    noise = np.random.default_rng(8).normal(0.0, 0.1, 4000)
    features = logmel(noise, AUDIO_PRE)
    rebuilt = griffin_lim(features, AUDIO_PRE, iterations=8)
    assert rebuilt.shape == (400 + 160 * 22,) and np.abs(rebuilt).max() <= 1.0
    again = _features_again(rebuilt)
    assert np.corrcoef(again.ravel(), features[..., :-1].ravel())[0, 1] > 0.99
    t = np.arange(4000) / 16000
    pcm = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 2500 * t)
    tones = logmel(pcm, AUDIO_PRE)
    tones_again = _features_again(griffin_lim(tones, AUDIO_PRE, iterations=8))
    with pytest.raises(CodecError, match=r"iterations >= 1, got 0"):
        griffin_lim(tones, AUDIO_PRE, iterations=0)
    loud = tones[..., :-1].mean(axis=-1) > 0  # the bands holding the two tones
    assert loud.sum() >= 2
    np.testing.assert_allclose(
        tones_again.mean(axis=-1)[loud], tones[..., :-1].mean(axis=-1)[loud], atol=0.1
    )


@pytest.mark.parametrize(
    "cls", [Float32MultiArray, Int16MultiArray, RB_FLOAT32], ids=["f32", "i16", "rosbags"]
)
def test_audio_encode_in_the_input_type(cls):
    codec = make_codec(AUDIO, griffin_lim_iterations=2)
    msg = codec.encode(np.zeros(AUDIO.shape, np.float32), None, msg_cls=cls)
    assert type(msg) is cls
    assert msg.layout.dim[0].label == "samples" and msg.layout.dim[0].size == len(msg.data) == 3920
    if cls is RB_FLOAT32:
        TS.serialize_cdr(msg, "std_msgs/msg/Float32MultiArray")
    else:  # the rclpy message is well-formed: it serialises and decodes back
        back = TS.deserialize_cdr(serialize_message(msg), message_type_name(cls))
        assert len(back.data) == 3920


@pytest.mark.parametrize("variant", ["ros_drivers", "mgonzs13"])
def test_audio_encode_into_audio_common_types_decodes_back(variant):
    store = _stores(variant)
    name = {"ros_drivers": "AudioDataStamped", "mgonzs13": "AudioStamped"}[variant]
    cls = store.types[f"audio_common_msgs/msg/{name}"]
    codec = make_codec(AUDIO, griffin_lim_iterations=2)
    t = np.arange(4000) / 16000
    features = logmel(0.3 * np.sin(2 * np.pi * 700 * t), AUDIO_PRE)
    msg = codec.encode(features, _rb_header(), msg_cls=cls)
    raw = store.serialize_cdr(msg, f"audio_common_msgs/msg/{name}")
    back = store.deserialize_cdr(raw, f"audio_common_msgs/msg/{name}")
    chunk = make_codec(AUDIO)
    chunk.decode(back)  # 3920 samples: the window is not full yet
    assert chunk.decode(back) is not None


def test_audio_common_definitions_are_shipped():
    texts = audio_common_msg_definitions("mgonzs13")
    assert "float32[] float32_data" in texts["audio_common_msgs/msg/AudioData"]
    assert (
        "uint8[] data"
        in audio_common_msg_definitions("ros_drivers")["audio_common_msgs/msg/AudioData"]
    )
    with pytest.raises(CodecError, match=r"variant 'ros1' is not one of"):
        audio_common_msg_definitions("ros1")


# ---------------------------------------------------------------- categorical


@pytest.mark.parametrize(
    ("msg", "index"),
    [
        (Int32(data=2), 2),
        (UInt8(data=0), 0),
        (Float32MultiArray(data=[0.0, 0.0, 0.0, 1.0]), 3),
        (Float32MultiArray(data=[0.1, 2.5, -1.0, 0.3]), 1),
    ],
)
def test_labels_become_one_hot(msg, index):
    np.testing.assert_array_equal(make_codec(LABEL).decode(msg), np.eye(4, dtype=np.float32)[index])


@pytest.mark.parametrize(
    ("msg", "match"),
    [
        (Int32(data=4), r"class index 4 is outside \[0, 4\)"),
        (Float32MultiArray(data=[1.0, 0.0]), r"2 entries, the model has 4"),
        (Float32MultiArray(data=[1.0, 0.0, float("nan"), 0.0]), r"NaN or inf"),
    ],
)
def test_malformed_label_is_named(msg, match):
    with pytest.raises(CodecError, match=match):
        make_codec(LABEL).decode(msg)


def test_label_encode_probabilities_and_index():
    codec = make_codec(LABEL)
    probs = codec.encode(np.array([1.0, 3.0, 0.0, 0.0]), None)
    np.testing.assert_allclose(np.asarray(probs.data), [0.25, 0.75, 0.0, 0.0])
    assert probs.layout.dim[0].label == "classes"
    serialize_message(probs)
    assert codec.encode(np.array([0.1, 0.2, 0.6, 0.1]), None, msg_cls=Int32).data == 2


# ---------------------------------------------------------------- make_codec


def test_unknown_override_is_named():
    with pytest.raises(CodecError, match=r"unknown codec override\(s\) \['gain'\]; this kind"):
        make_codec(AUDIO, gain=2.0)
    with pytest.raises(CodecError, match=r"takes \[\]"):
        make_codec(JOINTS, sample_rate_hz=8000)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (_spec("c", "image", (2, 8, 8), {"encoding": "rgb8"}, "x/msg/Y"), r"C 1 or 3"),
        (_spec("c", "image", (3, 8, 8), {"encoding": "mono8"}, "x/msg/Y"), r"'mono8' does not"),
        (_spec("j", "vector", (9,), {**JOINT_PRE, "loc": [0.0]}, "x/msg/Y"), r"loc has 1 values"),
        (_spec("j", "vector", (8,), JOINT_PRE, "x/msg/Y"), r"shape \(8,\) != \(9,\)"),
        (_spec("a", "audio", (1, 16, 20), AUDIO_PRE, "x/msg/Y"), r"!= \(1, 16, 23\)"),
        (_spec("a", "audio", (1, 16, 23), {**AUDIO_PRE, "mel_scale": "bark"}, "x/msg/Y"), "bark"),
    ],
)
def test_specs_a_codec_cannot_serve_are_rejected(spec, match):
    with pytest.raises((ManifestError, CodecError), match=match):
        make_codec(spec)


def test_default_output_class_is_the_rclpy_class_of_the_manifest_type():
    assert isinstance(make_codec(JOINTS).encode(np.zeros(9), Header()), JointState)
    broken = _spec("j", "vector", (9,), JOINT_PRE, "no_such_pkg/msg/Thing")
    with pytest.raises(CodecError, match=r"cannot import message class 'no_such_pkg/msg/Thing'"):
        make_codec(broken).encode(np.zeros(9), Header())


def test_audio_codec_class_is_exported():
    assert isinstance(make_codec(AUDIO), AudioCodec)


# ---------------------------------------------------------------- train / serve parity


def test_extractor_and_node_decode_the_same_messages_identically(tmp_path):
    """Camera, joints and an audio stream as the node gets them (rclpy) and as training gets
    them (``sensorysync-extract`` reading the same bytes from a real bag): identical tensors."""
    specs = (CAMERA, JOINTS, AUDIO)
    config = tmp_path / "config.yaml"  # JSON is YAML
    config.write_text(json.dumps({"modalities": [asdict(s) for s in specs]}))
    stamp_ns = 2_000_000_500
    header = Header(stamp=Time(sec=2, nanosec=500), frame_id="base")
    pixels, _ = _image_bytes(_rgb(40, 48, seed=13), "bgr8")
    image = _image(Image, pixels, "bgr8", pad=5)
    image.header = header
    state = _joint_state()
    state.header = header
    pcm = np.random.default_rng(14).uniform(-0.5, 0.5, (13, 320)).astype(np.float32)
    chunks = [Float32MultiArray(data=c) for c in pcm]  # the 13th completes the 4000 window
    stream = [(stamp_ns, CAMERA, image), (stamp_ns, JOINTS, state)]
    stream += [(stamp_ns - (12 - i) * 20_000_000, AUDIO, c) for i, c in enumerate(chunks)]
    bag = tmp_path / "bag"
    with Writer(bag, version=9) as writer:
        connections = {
            s.name: writer.add_connection(f"/{s.ros.topic}", s.ros.msg_type, typestore=TS)
            for s in specs
        }
        for t_ns, spec, msg in sorted(stream, key=lambda item: item[0]):
            writer.write(connections[spec.name], t_ns, serialize_message(msg))
    assert extract_main([str(bag), "-o", str(tmp_path / "data"), "--config", str(config)]) == 0
    samples = np.load(tmp_path / "data" / "samples.npz")
    assert samples["camera"].shape == (1, *CAMERA.shape)
    np.testing.assert_array_equal(samples["camera"][0], make_codec(CAMERA).decode(image))
    np.testing.assert_array_equal(samples["joints"][0], make_codec(JOINTS).decode(state))
    audio = make_codec(AUDIO)
    live = [audio.decode(c) for c in chunks][-1]
    np.testing.assert_array_equal(samples["audio"][0], live)
