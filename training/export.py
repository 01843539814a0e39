"""sensorysync-export: a training checkpoint -> one self-describing ONNX file + model card.

    sensorysync-export runs/fmnist/checkpoint.pt -o models/fmnist.onnx [--opset 18] [--no-card]

The model is rebuilt from the checkpoint alone, its deterministic ``export_forward`` is traced
by the torch.export-based exporter (dynamic batch axis, constant folding and the onnxscript
optimizer), the manifest is embedded in the metadata, ``onnx.checker`` must pass, and the file
is run once in ONNX Runtime (every mask, batch > 1) against torch before it is moved into place.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import itertools
import logging
import os
import subprocess
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

import sensorysync_ros
from sensorysync_ros.engine import CPU_PROVIDER, Engine
from sensorysync_ros.errors import SensorySyncError
from sensorysync_ros.manifest import (
    CORE_LOGVAR,
    CORE_MEAN,
    MASK_INPUT,
    METADATA_KEY,
    Manifest,
    recon_output,
)
from sensorysync_ros.model_card import write_model_card

from .checkpoint import CheckpointError, load_checkpoint, load_model
from .config import Config, ConfigError

__all__ = [
    "DEFAULT_OPSET",
    "MAX_ABS_ERROR",
    "ExportError",
    "ExportReport",
    "all_masks",
    "build_manifest",
    "compare_with_torch",
    "export_checkpoint",
    "export_model",
    "main",
    "random_inputs",
]

DEFAULT_OPSET = 18  # the torch.export-based exporter's native opset; 17 is converted down
MIN_OPSET = 17
MAX_ABS_ERROR = 1e-4  # torch vs ONNX Runtime, any output, any mask
_EXAMPLE_BATCH = 2  # torch.export specialises batch sizes 0 and 1; trace at 2


class ExportError(RuntimeError):
    """The model cannot be exported, or the exported file disagrees with torch."""


@dataclass(frozen=True)
class ExportReport:
    """What an export produced and how closely ONNX Runtime matched torch."""

    onnx_path: Path
    card_path: Path | None
    manifest: Manifest
    max_abs_error: float
    provider: str


class _ExportForward(nn.Module):
    """Export-only wrapper: ``forward(*xs, mask)`` is the model's ``export_forward``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.model.export_forward(*args))


def code_version() -> str:
    """Package version, plus the git commit (``+dirty`` with local changes) when available."""
    version = sensorysync_ros.__version__
    repo = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return version
    return f"{version}+g{commit}{'.dirty' if dirty else ''}"


def build_manifest(config: Config, provenance: Mapping[str, Any]) -> Manifest:
    """The manifest of a model trained with ``config``."""
    return Manifest(
        modalities=tuple(m.to_spec() for m in config.modalities),
        core_latent_dim=config.model.core_latent_dim,
        modality_latent_dims=tuple(m.latent_dim for m in config.modalities),
        provenance=dict(provenance),
        model_type=config.model.type,
    )


def all_masks(n: int) -> np.ndarray:
    """Every non-empty presence mask over ``n`` modalities, (2^n - 1, n) float32."""
    rows = [bits for bits in itertools.product((0.0, 1.0), repeat=n) if any(bits)]
    return np.asarray(rows, dtype=np.float32)


def random_inputs(
    manifest: Manifest, batch: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Plausible random model inputs: images in [0, 1], one-hot labels, standard normals."""
    out: dict[str, np.ndarray] = {}
    for m in manifest.modalities:
        shape = (batch, *m.shape)
        if m.kind == "image":
            x = rng.random(shape)
        elif m.kind == "categorical":
            x = np.eye(m.shape[0])[rng.integers(0, m.shape[0], batch)]
        else:
            x = rng.standard_normal(shape)
        out[m.name] = x.astype(np.float32)
    return out


def torch_outputs(
    model: nn.Module, manifest: Manifest, inputs: Mapping[str, np.ndarray], mask: np.ndarray
) -> dict[str, np.ndarray]:
    """``export_forward`` in torch, keyed by ONNX output name."""
    xs = [torch.from_numpy(inputs[name]) for name in manifest.names]
    with torch.no_grad():
        outs = model.export_forward(*xs, torch.from_numpy(mask))
    keys = [CORE_MEAN, CORE_LOGVAR, *(recon_output(n) for n in manifest.names)]
    return {k: v.numpy() for k, v in zip(keys, outs, strict=True)}


def compare_with_torch(
    model: nn.Module, engine: Engine, inputs: Mapping[str, np.ndarray], mask: np.ndarray
) -> float:
    """Max abs difference between torch and the engine over every output."""
    expected = torch_outputs(model, engine.manifest, inputs, mask)
    result = engine.run(inputs, mask)
    got = {CORE_MEAN: result.core_mean, CORE_LOGVAR: result.core_logvar}
    got |= {recon_output(n): v for n, v in result.recon.items()}
    worst = 0.0
    for key, want in expected.items():
        if got[key].shape != want.shape:
            msg = f"output {key!r}: ONNX Runtime shape {got[key].shape}, torch {want.shape}"
            raise ExportError(msg)
        worst = max(worst, float(np.max(np.abs(got[key] - want))))
    return worst


def _onnx_proto(model: nn.Module, manifest: Manifest, opset: int) -> onnx.ModelProto:
    inputs = random_inputs(manifest, _EXAMPLE_BATCH, np.random.default_rng(0))
    mask = np.ones((_EXAMPLE_BATCH, len(manifest.names)), np.float32)
    args = (*(torch.from_numpy(inputs[n]) for n in manifest.names), torch.from_numpy(mask))
    batch = torch.export.Dim("batch", min=1)
    outputs = [CORE_MEAN, CORE_LOGVAR, *(recon_output(n) for n in manifest.names)]
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # e.g. "torchvision is not installed. Skipping ..."
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecations, version-converter notes
            program = torch.onnx.export(
                _ExportForward(model),
                args,
                input_names=[*manifest.names, MASK_INPUT],
                output_names=outputs,
                dynamic_shapes=(tuple({0: batch} for _ in args),),  # forward(*args)
                opset_version=opset,
                dynamo=True,
                optimize=True,
                verbose=False,
            )
    except Exception as err:  # torch.export raises many types; report the first line
        first = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
        msg = f"torch.onnx.export failed for model type {manifest.model_type!r}: {first}"
        raise ExportError(msg) from err
    finally:
        exporter_log.setLevel(level)
    if program is None:
        raise ExportError("torch.onnx.export returned no program")
    return program.model_proto


def export_model(
    model: nn.Module,
    manifest: Manifest,
    out: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    card: bool = True,
) -> ExportReport:
    """Export ``model`` (eval mode, CPU) to ``out`` with ``manifest`` embedded; verify it."""
    out = Path(out)
    if opset < MIN_OPSET:
        raise ExportError(f"opset {opset} is too old; use {MIN_OPSET} or newer")
    if not hasattr(model, "export_forward"):
        msg = f"model type {manifest.model_type!r} has no export_forward; it cannot be exported"
        raise ExportError(msg)
    model = model.eval().cpu()
    manifest = dataclasses.replace(manifest, provenance={**manifest.provenance, "opset": opset})
    proto = _onnx_proto(model, manifest, opset)
    onnx.helper.set_model_props(proto, {METADATA_KEY: manifest.to_json()})
    proto.doc_string = f"SensorySync {manifest.model_type} over {', '.join(manifest.names)}"
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as err:
        first = str(err).strip().splitlines()[0]
        raise ExportError(f"onnx.checker rejects the exported graph: {first}") from err

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    onnx.save(proto, str(tmp))
    try:
        engine = Engine(tmp, providers=(CPU_PROVIDER,), warmup=False)
        masks = all_masks(len(manifest.names))
        inputs = random_inputs(manifest, len(masks), np.random.default_rng(1))
        error = compare_with_torch(model, engine, inputs, masks)
        if not error <= MAX_ABS_ERROR:
            msg = f"ONNX Runtime differs from torch by {error:.3g} (> {MAX_ABS_ERROR}) on {out}"
            raise ExportError(msg)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    card_path = None
    if card:
        card_path = write_model_card(manifest, out.with_suffix(".md"), model_file=out.name)
    return ExportReport(out, card_path, manifest, error, engine.provider)


def checkpoint_provenance(checkpoint: Path) -> dict[str, Any]:
    """Provenance for the manifest from the checkpoint's metadata and this code base."""
    state = load_checkpoint(checkpoint)
    data = state["config"]["data"]
    return {
        "checkpoint": checkpoint.name,
        "dataset": data["kind"] if data.get("dir") is None else f"{data['kind']} ({data['dir']})",
        "epochs": state.get("epoch"),
        "metrics": state.get("metrics", {}),
        "code_version": code_version(),
        "export_time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def export_checkpoint(
    checkpoint: str | Path,
    out: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    card: bool = True,
    provenance: Mapping[str, Any] | None = None,
) -> ExportReport:
    """Rebuild the model from ``checkpoint`` alone and export it to ``out``.

    ``provenance`` adds to (or overrides) what the checkpoint provides, e.g. ``name``,
    ``description`` or ``commands`` for the model card.
    """
    checkpoint = Path(checkpoint)
    model, config = load_model(checkpoint)
    manifest = build_manifest(config, {**checkpoint_provenance(checkpoint), **(provenance or {})})
    return export_model(model, manifest, out, opset=opset, card=card)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sensorysync-export",
        description="Export a SensorySync checkpoint to ONNX with its manifest and model card.",
    )
    parser.add_argument("checkpoint", type=Path, help="training checkpoint (.pt)")
    parser.add_argument("-o", "--out", type=Path, required=True, help="output .onnx file")
    parser.add_argument(
        "--opset", type=int, default=DEFAULT_OPSET,
        help=f"ONNX opset, >= {MIN_OPSET} (default {DEFAULT_OPSET})",
    )
    card = parser.add_mutually_exclusive_group()
    card.add_argument("--card", dest="card", action="store_true", default=True,
                      help="write the Markdown model card NAME.md beside the file (default)")
    card.add_argument("--no-card", dest="card", action="store_false", help="skip the model card")
    parser.add_argument("--name", help="model name for the card (default: the file's stem)")
    parser.add_argument("--description", help="one paragraph for the card")
    parser.add_argument("--command", action="append", default=[], dest="commands",
                        help="a shell line that made the model (repeatable; shown in the card)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.out.suffix != ".onnx":
        print(f"error: output {str(args.out)!r} must end in .onnx", file=sys.stderr)
        return 2
    try:
        extra = {k: v for k in ("name", "description", "commands") if (v := getattr(args, k))}
        report = export_checkpoint(
            args.checkpoint, args.out, opset=args.opset, card=args.card, provenance=extra
        )
    except (ExportError, CheckpointError, ConfigError, SensorySyncError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    size_mb = report.onnx_path.stat().st_size / 1e6
    card = f", card {report.card_path}" if report.card_path else ""
    print(
        f"exported {report.onnx_path} ({size_mb:.2f} MB, opset {args.opset}{card}); "
        f"ONNX Runtime vs torch max abs error {report.max_abs_error:.2e} on {report.provider}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
