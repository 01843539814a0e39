"""ONNX Runtime inference engine for exported SensorySync models (numpy + onnxruntime only).

``Engine(path)`` reads and validates the manifest, checks that the graph's inputs and outputs
match it, opens a session on the best execution provider that actually loads, warms up, and
then runs one fused call per tick for any subset of present modalities::

    engine = Engine("models/default.onnx")
    result = engine.run({"camera": image[None], "joints": q[None]}, mask=[[1, 0, 1]])
    result.recon["audio"]  # audio decoded from the core latent

Absent modalities may be left out of ``inputs``; they are fed zeros (the graph ignores them:
the mask zeroes their representation exactly as the training-time dropout does).
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from .errors import ModelLoadError
from .manifest import CORE_LOGVAR, CORE_MEAN, MASK_INPUT, Manifest, recon_output
from .model_file import read_manifest

__all__ = ["CPU_PROVIDER", "DEFAULT_PROVIDERS", "Engine", "EngineResult"]

CPU_PROVIDER = "CPUExecutionProvider"
DEFAULT_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", CPU_PROVIDER)
NVIDIA_PROVIDERS = frozenset({"TensorrtExecutionProvider", "CUDAExecutionProvider"})
CUDA_DRIVER = "libcuda.so.1"
_FLOAT = "tensor(float)"
_MASK_CACHE_SIZE = 256  # validated masks remembered (a fusion loop repeats a few masks)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineResult:
    """Outputs of one engine call, batch-first."""

    core_mean: np.ndarray  # (B, core_latent_dim)
    core_logvar: np.ndarray  # (B, core_latent_dim)
    recon: dict[str, np.ndarray]  # modality name -> (B, *shape) tensor-space reconstruction


def _choose_providers(requested: Sequence[str]) -> list[str]:
    """Requested providers that this onnxruntime build offers, in order, CPU always last."""
    known = set(ort.get_all_providers())
    unknown = [p for p in requested if p not in known]
    if unknown:
        msg = f"unknown execution provider(s) {unknown}; known: {sorted(known)}"
        raise ValueError(msg)
    available = set(ort.get_available_providers())
    chosen = [p for p in requested if p in available and p != CPU_PROVIDER]
    skipped = [p for p in requested if p not in available]
    if skipped:
        log.info("execution providers %s are not in this onnxruntime build; skipped", skipped)
    nvidia = [p for p in chosen if p in NVIDIA_PROVIDERS]
    if nvidia and not _nvidia_driver_loadable():
        # get_available_providers() lists CUDA/TensorRT wherever the build has them; without
        # the driver they cannot load, and onnxruntime would print pages of errors trying.
        log.warning(
            "no NVIDIA driver (%s) on this machine: %s skipped, falling back to %s",
            CUDA_DRIVER,
            nvidia,
            CPU_PROVIDER,
        )
        chosen = [p for p in chosen if p not in NVIDIA_PROVIDERS]
    return [*chosen, CPU_PROVIDER]


def _nvidia_driver_loadable() -> bool:
    """Whether the CUDA driver library loads (the precondition of every NVIDIA provider)."""
    try:
        ctypes.CDLL(CUDA_DRIVER)
    except OSError:
        return False
    return True


def _graph_mismatches(session: ort.InferenceSession, manifest: Manifest) -> list[str]:
    """Differences between the graph's I/O and what the manifest promises (empty = match)."""
    n = len(manifest.modalities)
    expected_in = {m.name: m.shape for m in manifest.modalities} | {MASK_INPUT: (n,)}
    core = (manifest.core_latent_dim,)
    expected_out = {CORE_MEAN: core, CORE_LOGVAR: core}
    expected_out |= {recon_output(m.name): m.shape for m in manifest.modalities}
    problems: list[str] = []
    for kind, args, expected in (
        ("input", session.get_inputs(), expected_in),
        ("output", session.get_outputs(), expected_out),
    ):
        got = {a.name: a for a in args}
        if set(got) != set(expected):
            problems.append(f"{kind}s {sorted(got)} != manifest's {sorted(expected)}")
            continue
        for name, shape in expected.items():
            arg = got[name]
            sample = tuple(arg.shape[1:])
            if arg.type != _FLOAT or sample != shape or isinstance(arg.shape[0], int):
                problems.append(
                    f"{kind} {name!r} is {arg.type}{arg.shape}, manifest says "
                    f"{_FLOAT}['batch', {', '.join(map(str, shape))}]"
                )
    return problems


class Engine:
    """One ONNX Runtime session over an exported SensorySync model.

    Args:
        path: the ``.onnx`` file (with its manifest in the metadata).
        providers: execution providers in priority order; those not in this onnxruntime build
            are skipped and the CPU provider is always the last resort.
        threads: intra-op threads (None = onnxruntime's default, one per physical core).
        warmup: run one all-modalities call at load, so the first real call is not slow.

    Attributes:
        manifest: the model's manifest.
        provider: the provider the session actually runs on (read back from the session).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        providers: Sequence[str] = DEFAULT_PROVIDERS,
        threads: int | None = None,
        warmup: bool = True,
    ) -> None:
        self.path = Path(path)
        self.manifest = read_manifest(self.path)
        self._session = self._open_session(list(providers), threads)
        self.provider: str = self._session.get_providers()[0]
        log.info("model %s runs on %s", self.path, self.provider)
        problems = _graph_mismatches(self._session, self.manifest)
        if problems:
            where = f"model file {str(self.path)!r}"
            msg = f"{where} does not match its manifest: {'; '.join(problems)}"
            raise ModelLoadError(msg)
        self._names = self.manifest.names
        self._shapes = {m.name: m.shape for m in self.manifest.modalities}
        self._outputs = [CORE_MEAN, CORE_LOGVAR, *(recon_output(n) for n in self._names)]
        self._zeros: dict[str, np.ndarray] = {}  # name -> zero buffer, first axis >= batch
        # (shape, bytes) of masks already validated -> per modality: present in any row
        self._checked_masks: dict[tuple[tuple[int, ...], bytes], tuple[bool, ...]] = {}
        if warmup:
            self.warmup()

    def _open_session(self, requested: list[str], threads: int | None) -> ort.InferenceSession:
        chosen = _choose_providers(requested)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        if threads is not None:
            if threads < 1:
                raise ValueError(f"threads must be >= 1 or None, got {threads!r}")
            options.intra_op_num_threads = threads
        try:
            session = ort.InferenceSession(str(self.path), options, providers=chosen)
        except Exception as err:  # onnxruntime raises its own untyped exceptions
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
            msg = f"model file {str(self.path)!r}: ONNX Runtime cannot load it: {first_line}"
            raise ModelLoadError(msg) from err
        actual = session.get_providers()[0]
        if actual != chosen[0]:
            log.warning(
                "execution provider %s could not load (see onnxruntime's message above); "
                "falling back to %s for %s",
                chosen[0],
                actual,
                self.path,
            )
        return session

    def warmup(self, batch: int = 1) -> None:
        """Run one call with every modality present (allocates the session's buffers)."""
        inputs = {n: self._zero_input(n, batch) for n in self._names}
        self.run(inputs, np.ones((batch, len(self._names)), np.float32))

    def _zero_input(self, name: str, batch: int) -> np.ndarray:
        buffer = self._zeros.get(name)
        if buffer is None or buffer.shape[0] < batch:
            buffer = np.zeros((batch, *self._shapes[name]), np.float32)
            buffer.flags.writeable = False
            self._zeros[name] = buffer
        return buffer[:batch]

    def _check_mask(self, mask: np.ndarray) -> tuple[bool, ...]:
        """Validate a (B, N) float32 mask; per modality, whether any row marks it present."""
        n = len(self._names)
        if mask.ndim != 2 or mask.shape[1] != n:
            msg = f"mask has shape {mask.shape}; expected (batch, {n}) in order {list(self._names)}"
            raise ValueError(msg)
        present = mask == 1.0
        if not np.all(present | (mask == 0.0)):
            raise ValueError(f"mask must hold only 0 and 1, got values {np.unique(mask).tolist()}")
        rows_present = present.any(axis=1)
        if not rows_present.all():
            rows = np.flatnonzero(~rows_present).tolist()
            msg = (
                f"mask row(s) {rows} have no modality present; at least one of "
                f"{list(self._names)} must be 1 in each row (nothing to fuse)"
            )
            raise ValueError(msg)
        return tuple(bool(v) for v in present.any(axis=0))

    def run(self, inputs: Mapping[str, np.ndarray], mask: np.ndarray) -> EngineResult:
        """Fuse the present modalities and reconstruct every modality.

        Args:
            inputs: modality name -> float32 array (B, *shape), preprocessed as the manifest
                says. Modalities absent in every row may be omitted.
            mask: (B, N) presence mask in manifest order, 1 = present, 0 = absent; every row
                needs at least one present modality.

        Raises:
            ValueError: naming the modality and the expected and given shapes or dtypes, an
                unknown modality, or a mask row with no modality present.
        """
        mask = np.asarray(mask, dtype=np.float32)
        key = (mask.shape, mask.tobytes())
        used = self._checked_masks.get(key)
        if used is None:  # first time this mask is seen: validate it (slow numpy reductions)
            used = self._check_mask(mask)
            if len(self._checked_masks) >= _MASK_CACHE_SIZE:
                self._checked_masks.clear()
            self._checked_masks[key] = used
        batch = mask.shape[0]
        feed: dict[str, np.ndarray] = {MASK_INPUT: mask}
        n_given = 0
        for name, in_use in zip(self._names, used, strict=True):
            x = inputs.get(name)
            if x is None:
                if in_use:
                    msg = f"modality {name!r} is marked present in the mask but not in inputs"
                    raise ValueError(msg)
                feed[name] = self._zero_input(name, batch)
                continue
            expected = (batch, *self._shapes[name])
            if not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.shape != expected:
                given = f"{getattr(x, 'dtype', type(x).__name__)}{tuple(np.shape(x))}"
                msg = f"modality {name!r}: expected float32{expected}, given {given}"
                raise ValueError(msg)
            feed[name] = x
            n_given += 1
        if n_given != len(inputs):
            unknown = sorted(set(inputs) - set(self._names))
            raise ValueError(f"unknown modalities {unknown}; the model has {list(self._names)}")
        outs = self._session.run(self._outputs, feed)
        return EngineResult(
            core_mean=outs[0],
            core_logvar=outs[1],
            recon=dict(zip(self._names, outs[2:], strict=True)),
        )
