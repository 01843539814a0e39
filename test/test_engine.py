"""The ONNX Runtime engine: loading, validation, provider choice, runs for any modality subset."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from sensorysync_training.export import all_masks, random_inputs
from test_runtime_without_torch import BLOCK_TORCH

from sensorysync_ros import engine as engine_module
from sensorysync_ros.engine import CPU_PROVIDER, Engine
from sensorysync_ros.errors import ModelLoadError
from sensorysync_ros.manifest import METADATA_KEY
from sensorysync_ros.model_file import read_manifest


@pytest.fixture(scope="module")
def engine(tiny_robot_model: Path) -> Engine:
    return Engine(tiny_robot_model, providers=(CPU_PROVIDER,))


def test_loads_manifest_and_reports_the_cpu_provider(tiny_robot_model: Path):
    engine = Engine(tiny_robot_model)  # default priority: TensorRT, CUDA, CPU
    assert engine.manifest.names == ("camera", "audio", "joints")
    assert engine.provider == CPU_PROVIDER  # this machine has no usable GPU
    assert engine.manifest == read_manifest(tiny_robot_model)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_cuda_first_without_a_driver_falls_back_to_cpu_with_a_warning(
    tiny_robot_model: Path, caplog: pytest.LogCaptureFixture
):
    if engine_module._nvidia_driver_loadable():
        pytest.skip("an NVIDIA driver loads on this machine")
    with caplog.at_level(logging.WARNING, logger="sensorysync_ros.engine"):
        engine = Engine(tiny_robot_model, providers=("CUDAExecutionProvider", CPU_PROVIDER))
    assert engine.provider == CPU_PROVIDER
    assert any(
        "no NVIDIA driver" in w and "CUDAExecutionProvider" in w and CPU_PROVIDER in w
        for w in _warnings(caplog)
    )


def test_cuda_that_fails_to_load_falls_back_to_cpu_with_a_warning(
    tiny_robot_model: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
):
    # Past the driver check, onnxruntime itself tries CUDA and falls back when it cannot load.
    monkeypatch.setattr(engine_module, "_nvidia_driver_loadable", lambda: True)
    with caplog.at_level(logging.WARNING, logger="sensorysync_ros.engine"):
        engine = Engine(tiny_robot_model, providers=("CUDAExecutionProvider", CPU_PROVIDER))
    if engine.provider == "CUDAExecutionProvider":
        pytest.skip("CUDA loads on this machine: there is no fallback to observe")
    assert engine.provider == CPU_PROVIDER
    assert any(
        "CUDAExecutionProvider could not load" in w and CPU_PROVIDER in w
        for w in _warnings(caplog)
    )


def test_unknown_provider_name_is_rejected(tiny_robot_model: Path):
    with pytest.raises(ValueError, match=r"unknown execution provider\(s\) \['CudaProvider'\]"):
        Engine(tiny_robot_model, providers=("CudaProvider",))


@pytest.mark.parametrize("mask_row", [tuple(r) for r in all_masks(3).astype(int)])
def test_absent_modalities_may_be_omitted_and_do_not_matter(engine: Engine, mask_row):
    rng = np.random.default_rng(3)
    mask = np.tile(np.asarray(mask_row, np.float32), (2, 1))
    full = random_inputs(engine.manifest, 2, rng)
    present = {n: x for n, x, keep in zip(engine.manifest.names, full.values(), mask_row) if keep}
    omitted = engine.run(present, mask)
    with_noise = engine.run(full, mask)  # absent inputs hold random values: must be ignored
    np.testing.assert_array_equal(omitted.core_mean, with_noise.core_mean)
    for name, spec in zip(engine.manifest.names, engine.manifest.modalities):
        assert omitted.recon[name].shape == (2, *spec.shape)
        assert np.all(np.isfinite(omitted.recon[name]))
        np.testing.assert_array_equal(omitted.recon[name], with_noise.recon[name])
    assert omitted.core_mean.shape == omitted.core_logvar.shape == (2, 4)


def test_batch_of_1_and_batch_of_32_agree_per_sample(engine: Engine):
    rng = np.random.default_rng(4)
    inputs = random_inputs(engine.manifest, 32, rng)
    mask = all_masks(3)[rng.integers(0, 7, 32)]
    batched = engine.run(inputs, mask)
    for i in range(32):
        single = engine.run({n: x[i : i + 1] for n, x in inputs.items()}, mask[i : i + 1])
        np.testing.assert_allclose(single.core_mean[0], batched.core_mean[i], atol=1e-5)
        for name in engine.manifest.names:
            np.testing.assert_allclose(single.recon[name][0], batched.recon[name][i], atol=1e-5)


def test_runs_are_deterministic(engine: Engine):
    inputs = random_inputs(engine.manifest, 3, np.random.default_rng(5))
    mask = np.ones((3, 3), np.float32)
    first, second = engine.run(inputs, mask), engine.run(inputs, mask)
    np.testing.assert_array_equal(first.recon["camera"], second.recon["camera"])


def test_engine_runs_in_a_process_where_torch_is_unimportable(
    tiny_robot_model: Path, engine: Engine
):
    code = BLOCK_TORCH + f"""
import json, sys
import numpy as np
from sensorysync_ros.engine import Engine
engine = Engine({str(tiny_robot_model)!r})
x = np.full((1, 9), 0.5, np.float32)
result = engine.run({{"joints": x}}, np.array([[0, 0, 1]], np.float32))
assert "torch" not in sys.modules
print(json.dumps({{"provider": engine.provider, "core": result.core_mean.tolist()}}))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["provider"] == CPU_PROVIDER
    here = engine.run({"joints": np.full((1, 9), 0.5, np.float32)}, np.array([[0, 0, 1]]))
    np.testing.assert_allclose(np.asarray(out["core"]), here.core_mean, atol=1e-6)


# --- bad model files: one-line ModelLoadError naming the file and the problem ---


def _rewrite_manifest(src: Path, dst: Path, text: str | None) -> Path:
    model = onnx.load(str(src))
    del model.metadata_props[:]
    if text is not None:
        onnx.helper.set_model_props(model, {METADATA_KEY: text})
    onnx.save(model, str(dst))
    return dst


def _edited_manifest(src: Path, dst: Path, edit) -> Path:
    data = json.loads(read_manifest(src).to_json())
    edit(data)
    return _rewrite_manifest(src, dst, json.dumps(data))


def _truncated(src: Path, dst: Path) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return dst


def _bad_kind(data: dict) -> None:
    data["modalities"][0]["kind"] = "lidar"


def _camera_shape_2x32x32(data: dict) -> None:
    data["modalities"][0]["shape"] = [2, 32, 32]


def _bytes(data: bytes):
    def write(src: Path, dst: Path) -> Path:
        dst.write_bytes(data)
        return dst

    return write


def _npy_bytes() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.zeros(3))
    return buffer.getvalue()


BAD_FILES = {
    "missing": (lambda src, dst: dst, "does not exist"),
    "empty": (_bytes(b""), r"is empty \(0 bytes\)"),
    "truncated": (_truncated, r"is truncated \(field 7 needs \d+ bytes"),
    "text file": (_bytes(b"hello, not a model\n"), "is not an ONNX model"),
    "npy file": (_bytes(_npy_bytes()), "is not an ONNX model"),
    "no manifest": (lambda src, dst: _rewrite_manifest(src, dst, None),
                    "has no SensorySync manifest"),
    "manifest not JSON": (lambda src, dst: _rewrite_manifest(src, dst, "{oops"),
                          "has an invalid manifest: manifest is not valid JSON"),
    "manifest bad kind": (lambda src, dst: _edited_manifest(src, dst, _bad_kind),
                          "has an invalid manifest: modality 'camera': kind 'lidar'"),
    "manifest vs graph": (lambda src, dst: _edited_manifest(src, dst, _camera_shape_2x32x32),
                          r"does not match its manifest: input 'camera'"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_model_file_gives_one_line_error(tiny_robot_model: Path, tmp_path: Path, case: str):
    make, expected = BAD_FILES[case]
    path = make(tiny_robot_model, tmp_path / "model.onnx")
    with pytest.raises(ModelLoadError, match=expected) as info:
        Engine(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


# --- bad inputs at run time: ValueError naming the modality, expected and given ---


def _ok(engine: Engine) -> dict[str, np.ndarray]:
    return random_inputs(engine.manifest, 1, np.random.default_rng(6))


BAD_RUNS = {
    "wrong shape": (
        lambda e: ({**_ok(e), "camera": np.zeros((1, 3, 32, 31), np.float32)}, [[1, 1, 1]]),
        ValueError,
        r"modality 'camera': expected float32\(1, 3, 32, 32\), given float32\(1, 3, 32, 31\)",
    ),
    "wrong dtype": (
        lambda e: ({**_ok(e), "joints": np.zeros((1, 9), np.float64)}, [[1, 1, 1]]),
        ValueError,
        r"modality 'joints': expected float32\(1, 9\), given float64\(1, 9\)",
    ),
    "batch differs from mask": (
        lambda e: (_ok(e), [[1, 1, 1], [1, 1, 1]]),
        ValueError,
        r"modality 'camera': expected float32\(2, 3, 32, 32\), given float32\(1, 3, 32, 32\)",
    ),
    "empty mask row": (
        lambda e: (_ok(e), [[1, 0, 0], [0, 0, 0]]),
        ValueError,
        r"mask row\(s\) \[1\] have no modality present",
    ),
    "mask width": (lambda e: (_ok(e), [[1, 1]]), ValueError, r"mask has shape \(1, 2\)"),
    "mask values": (lambda e: (_ok(e), [[1, 0.5, 1]]), ValueError, "only 0 and 1"),
    "present but not given": (
        lambda e: ({"camera": _ok(e)["camera"]}, [[1, 1, 0]]),
        ValueError,
        "modality 'audio' is marked present in the mask but not in inputs",
    ),
    "unknown modality": (
        lambda e: ({**_ok(e), "lidar": np.zeros((1, 3), np.float32)}, [[1, 1, 1]]),
        ValueError,
        r"unknown modalities \['lidar'\]",
    ),
}


@pytest.mark.parametrize("case", list(BAD_RUNS))
def test_bad_run_input_is_rejected(engine: Engine, case: str):
    make, error, expected = BAD_RUNS[case]
    inputs, mask = make(engine)
    with pytest.raises(error, match=expected):
        engine.run(inputs, np.asarray(mask, np.float32))


def test_invalid_mask_is_rejected_every_time_even_after_valid_calls(engine: Engine):
    inputs = _ok(engine)
    engine.run(inputs, np.ones((1, 3), np.float32))
    for _ in range(2):  # validated masks are cached; a rejected one must never be
        with pytest.raises(ValueError, match="no modality present"):
            engine.run(inputs, np.zeros((1, 3), np.float32))
