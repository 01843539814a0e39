"""Markdown model card rendered from a model's manifest (pure Python, no torch).

The exporter writes ``NAME.md`` beside ``NAME.onnx``; the bag evaluator can re-render it
after adding evaluation results to the provenance. Provenance keys with a dedicated section:
``name``, ``description``, ``dataset``, ``epochs``, ``metrics`` (flat ``{name: value}`` or
grouped ``{group: {name: value}}``), ``commands`` (list of shell lines that made the model),
``code_version``, ``export_time``, ``opset``; any other key is listed in the provenance table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .manifest import CORE_LOGVAR, CORE_MEAN, MASK_INPUT, Manifest, recon_output

__all__ = ["render_model_card", "write_model_card"]

_SECTION_KEYS = ("name", "description", "metrics", "commands")
_PREPROCESS_LIST_LIMIT = 8  # longer lists (e.g. loc/scale vectors) are summarised


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)) and len(value) > _PREPROCESS_LIST_LIMIT:
        head = ", ".join(_cell(v) for v in value[:4])
        return f"[{head}, ... ({len(value)} values)]"
    if isinstance(value, (dict, list, tuple)):
        text = json.dumps(value, separators=(", ", ": "))
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def _metric_rows(metrics: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for key, value in metrics.items():
        if isinstance(value, Mapping):
            rows += [(key, name, v) for name, v in value.items()]
        else:
            rows.append(("", key, value))
    return rows


def render_model_card(manifest: Manifest, *, model_file: str | None = None) -> str:
    """The Markdown model card of ``manifest`` (``model_file``: the ONNX file's name)."""
    prov = manifest.provenance
    title = prov.get("name") or (Path(model_file).stem if model_file else "SensorySync model")
    lines = [f"# Model card: {title}", ""]
    if prov.get("description"):
        lines += [str(prov["description"]), ""]
    names = ", ".join(manifest.names)
    lines += [
        f"A {manifest.model_type} multimodal VAE over {len(manifest.modalities)} modalities "
        f"({names}): it fuses whichever sensors are present into a core latent "
        f"(z^c, {manifest.core_latent_dim}-d) and reconstructs every modality, including the "
        "missing ones.",
        "",
    ]
    if model_file:
        lines += [f"File: `{model_file}` (manifest format `{manifest.format}`).", ""]

    lines += ["## Modalities", ""]
    rows = [
        (m.name, m.kind, "x".join(map(str, m.shape)), m.likelihood, d,
         m.ros.topic, m.ros.msg_type, m.ros.rate_hz)
        for m, d in zip(manifest.modalities, manifest.modality_latent_dims, strict=True)
    ]
    header = ("name", "kind", "shape", "likelihood", "z^m", "topic", "message type", "rate Hz")
    lines += [*_table(header, rows), ""]

    lines += ["## Preprocessing", ""]
    for m in manifest.modalities:
        params = "; ".join(f"{k} = {_cell(v)}" for k, v in sorted(m.preprocess.items()))
        lines.append(f"- **{m.name}**: {params}")
    lines.append("")

    lines += ["## ONNX interface", ""]
    inputs = ", ".join(f"`{n}`" for n in (*manifest.names, MASK_INPUT))
    outputs = ", ".join(
        f"`{n}`" for n in (CORE_MEAN, CORE_LOGVAR, *(recon_output(n) for n in manifest.names))
    )
    lines += [
        f"- Inputs (float32, batch-first): {inputs}; `{MASK_INPUT}` is batch x "
        f"{len(manifest.modalities)}, 1 = present, in the order above.",
        f"- Outputs: {outputs}. Reconstructions are decoded from q(z_i^m|x_i) where the mask "
        "is 1 and from p(z_i^m|z^c) where it is 0 (means, no sampling).",
        "",
    ]

    metrics = prov.get("metrics")
    if isinstance(metrics, Mapping) and metrics:
        rows = _metric_rows(metrics)
        if all(group == "" for group, _, _ in rows):
            table = _table(("metric", "value"), [row[1:] for row in rows])
        else:
            table = _table(("group", "metric", "value"), rows)
        lines += ["## Metrics", "", *table, ""]

    other = [(k, v) for k, v in sorted(prov.items()) if k not in _SECTION_KEYS]
    if other:
        lines += ["## Provenance", "", *_table(("key", "value"), other), ""]

    commands = prov.get("commands")
    if commands:
        lines += ["## How this model was made", "", "```bash", *map(str, commands), "```", ""]
    return "\n".join(lines)


def write_model_card(
    manifest: Manifest, path: str | Path, *, model_file: str | None = None
) -> Path:
    """Write the card to ``path`` atomically (temp file + rename); returns the path."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(render_model_card(manifest, model_file=model_file), encoding="utf-8")
    tmp.replace(path)
    return path
