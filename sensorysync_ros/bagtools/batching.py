"""Batched engine calls behind an unchanged fusion core (used by the bag evaluator)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..engine import Engine, EngineResult

__all__ = ["BatchingEngine"]


class BatchingEngine:
    """Stands in for the engine inside ``FusionCore.tick``: copies the inputs and mask the core
    built into the next row of a batch and returns zeros; ``flush`` then runs the real engine
    once on the whole batch (per-sample results equal batch-1 calls; the engine's contract)."""

    def __init__(self, engine: Engine, batch: int) -> None:
        self.engine = engine
        self.manifest = engine.manifest
        specs = self.manifest.modalities
        self.inputs = {s.name: np.zeros((batch, *s.shape), np.float32) for s in specs}
        self.mask = np.zeros((batch, len(specs)), np.float32)
        self.rows = 0
        dc = self.manifest.core_latent_dim
        self._placeholder = EngineResult(
            core_mean=np.zeros((1, dc), np.float32),
            core_logvar=np.zeros((1, dc), np.float32),
            recon={s.name: np.zeros((1, *s.shape), np.float32) for s in specs},
        )

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

    def flush(self) -> EngineResult | None:
        if self.rows == 0:
            return None
        n, self.rows = self.rows, 0
        return self.engine.run({k: v[:n] for k, v in self.inputs.items()}, self.mask[:n])
