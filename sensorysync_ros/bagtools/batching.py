"""Batched engine calls behind an unchanged fusion core (used by the bag evaluator)."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from ..engine import Engine, EngineResult

__all__ = ["BatchingEngine"]


class BatchingEngine:
    """Stands in for the engine inside ``FusionCore.tick``: copies the inputs and mask the core
    built into the next row of a batch and returns zeros; ``flush`` then starts the real engine
    on the whole batch in a worker thread (ONNX Runtime releases the GIL, so decoding the next
    batch overlaps the inference of this one) and returns its future. Per-sample results equal
    batch-1 calls (the engine's contract). Two buffer sets alternate: the caller must collect a
    batch's future before the batch after next is flushed. Use as a context manager."""

    def __init__(self, engine: Engine, batch: int) -> None:
        self.engine = engine
        self.manifest = engine.manifest
        specs = self.manifest.modalities
        self._buffers = [
            (
                {s.name: np.zeros((batch, *s.shape), np.float32) for s in specs},
                np.zeros((batch, len(specs)), np.float32),
            )
            for _ in range(2)
        ]
        self._active = 0
        self.inputs, self.mask = self._buffers[0]
        self.rows = 0
        dc = self.manifest.core_latent_dim
        self._placeholder = EngineResult(
            core_mean=np.zeros((1, dc), np.float32),
            core_logvar=np.zeros((1, dc), np.float32),
            recon={s.name: np.zeros((1, *s.shape), np.float32) for s in specs},
        )
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine")

    def __enter__(self) -> BatchingEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True)

    @property
    def full(self) -> bool:
        return self.rows == len(self.mask)

    def run(self, inputs: Mapping[str, np.ndarray], mask: np.ndarray) -> EngineResult:
        r = self.rows
        for name, rows in self.inputs.items():
            x = inputs.get(name)
            if x is None:
                rows[r] = 0.0
            else:
                rows[r] = x[0]
        self.mask[r] = mask[0]
        self.rows += 1
        return self._placeholder

    def flush(self) -> Future[EngineResult] | None:
        """Start the engine on the rows collected so far; None when there are none."""
        if self.rows == 0:
            return None
        n, self.rows = self.rows, 0
        inputs = {k: v[:n] for k, v in self.inputs.items()}
        future = self._pool.submit(self.engine.run, inputs, self.mask[:n])
        self._active ^= 1
        self.inputs, self.mask = self._buffers[self._active]
        return future
