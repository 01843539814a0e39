"""Evaluation outputs: metrics.json, report.md and PNG plots (matplotlib, Agg canvas).

Plots: per-modality error over bag time with dropout intervals shaded; for image modalities a
grid of truth / reconstruction / last-frame-hold frames during dropouts; for joint modalities
the position trajectories, truth vs reconstruction.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..manifest import ModalitySpec
from .evaluation import LATE_DROPOUT_S, PRESENT_SCORE_EVERY
from .metrics import PRIMARY_ERROR
from .results import CONDITIONS, DROPOUT, PRESENT, EvalResult

__all__ = ["write_report"]

_SHADE = {"explicit": "tab:red", "random": "tab:orange", "gap": "tab:gray"}
_ERROR_LABEL = {
    "mse": "MSE (tensor units)",
    "rmse": "RMSE (physical units)",
    "lsd_db": "log-spectral distance (dB)",
    "error": "wrong class",
}


def _json_safe(value: Any) -> Any:
    """NaN / inf become None so metrics.json is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _save(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=100)


def _shade(ax: Any, result: EvalResult, modality: str) -> None:
    for event in result.events:
        if event.modality == modality:
            ax.axvspan(event.start_s, event.end_s, color=_SHADE[event.source], alpha=0.15, lw=0)


def _error_plot(result: EvalResult, spec: ModalitySpec, path: Path) -> None:
    trace = result.traces[spec.name]
    fig = Figure(figsize=(10, 3.2), tight_layout=True)
    ax = fig.add_subplot()
    _shade(ax, result, spec.name)
    cond = np.asarray(trace.condition)
    err = np.asarray(trace.error_model)
    hold = np.asarray(trace.error_hold)
    t = result.tick_s
    for code, label, style in ((PRESENT, "present (autoencoding)", "."), (DROPOUT, "dropout", "o")):
        sel = cond == code
        ax.plot(t[sel], err[sel], style, ms=2, label=f"model, {label}")
    sel = cond == DROPOUT
    if sel.any():
        ax.plot(t[sel], hold[sel], "x", ms=2, label="hold last value, dropout")
    ax.set_xlabel("bag time (s)")
    ax.set_ylabel(_ERROR_LABEL[PRIMARY_ERROR[spec.kind]])
    ax.set_title(f"{spec.name}: error per tick (shaded: red dropout, orange random, grey gap)")
    ax.legend(loc="upper right", fontsize="small")
    _save(fig, path)


def _as_image(tensor: np.ndarray) -> np.ndarray:
    img = np.clip(np.asarray(tensor, np.float32), 0.0, 1.0)
    return img[0] if img.shape[0] == 1 else np.transpose(img, (1, 2, 0))


def _frames_plot(result: EvalResult, spec: ModalitySpec, path: Path) -> bool:
    frames = result.traces[spec.name].frames
    if not frames:
        return False
    rows = ("truth", "reconstruction", "hold last frame")
    fig = Figure(figsize=(1.6 * len(frames) + 1, 5.2), tight_layout=True)
    axes = fig.subplots(3, len(frames), squeeze=False)
    cmap = "gray" if spec.shape[0] == 1 else None
    for col, frame in enumerate(frames):
        for row, image in enumerate((frame.truth, frame.recon, frame.hold)):
            ax = axes[row][col]
            ax.imshow(_as_image(image), cmap=cmap, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(rows[row], fontsize="small")
        axes[0][col].set_title(f"t={frame.t_s:.1f}s", fontsize="small")
    fig.suptitle(f"{spec.name} during dropouts")
    _save(fig, path)
    return True


def _joints_plot(result: EvalResult, spec: ModalitySpec, path: Path) -> None:
    trace = result.traces[spec.name]
    loc = np.asarray(spec.preprocess["loc"], np.float64)
    scale = np.asarray(spec.preprocess["scale"], np.float64)
    truth = np.stack(trace.truth) * scale + loc
    recon = np.stack(trace.recon) * scale + loc
    joints = list(spec.preprocess["joint_names"])
    field = spec.preprocess["fields"][0]
    fig = Figure(figsize=(10, 1.8 * len(joints) + 0.6), tight_layout=True)
    axes = fig.subplots(len(joints), 1, sharex=True, squeeze=False)
    cond = np.asarray(trace.condition)
    for k, joint in enumerate(joints):
        ax = axes[k][0]
        _shade(ax, result, spec.name)
        ax.plot(result.tick_s, truth[:, k], "k-", lw=1, label="truth")
        rec = np.where(cond == DROPOUT, recon[:, k], np.nan)
        ax.plot(result.tick_s, recon[:, k], "-", lw=0.8, alpha=0.5, label="reconstruction")
        ax.plot(result.tick_s, rec, "r-", lw=1.5, label="reconstruction during dropout")
        ax.set_ylabel(f"{joint}\n{field}", fontsize="small")
    axes[0][0].legend(loc="upper right", fontsize="small")
    axes[-1][0].set_xlabel("bag time (s)")
    fig.suptitle(f"{spec.name}: truth vs reconstruction")
    _save(fig, path)


def _metric_cell(kind: str, summary: dict[str, Any]) -> str:
    if summary.get("ticks", 0) == 0:
        return "–"
    if kind == "image":
        return f"PSNR {summary['psnr_db']:.2f} dB, SSIM {summary['ssim']:.3f}"
    if kind == "vector":
        return f"RMSE {summary['rmse']:.4g}"
    if kind == "audio":
        return f"LSD {summary['lsd_db']:.2f} dB"
    return f"accuracy {summary['accuracy']:.3f}"


def _fmt(value: float | None, unit: str = "s") -> str:
    return "not detected" if value is None else f"{value:.3f} {unit}"


def _markdown(result: EvalResult, images: dict[str, list[str]]) -> str:
    s = result.summary
    late = f"dropout_after_{LATE_DROPOUT_S:g}s"
    lines = [
        "# SensorySync bag evaluation",
        "",
        f"- bag: `{s['bag']}` ({s['storage']}), {s['duration_s']:.2f} s",
        f"- model: `{s['model']}` on {s['provider']}",
        f"- fusion: {s['rate_hz']:g} Hz on bag time, {s['ticks']} ticks "
        f"({s['ticks_per_bag_s']:.2f} per bag second), {s['ticks_without_output']} without output",
        f"- wall clock {s['wall_s']:.2f} s: **{s['speedup_vs_real_time']:.1f}x real time**",
        "",
        "| modality | topic | timeout |",
        "| --- | --- | --- |",
        *[f"| {m} | `{t}` | {s['timeouts_s'][m]:.3f} s |" for m, t in s["topics"].items()],
        "",
        "## Dropouts",
        "",
        "| modality | start | end | source | detection delay |",
        "| --- | --- | --- | --- | --- |",
        *[
            f"| {d['modality']} | {d['start_s']:.2f} s | {d['end_s']:.2f} s | {d['source']} | "
            f"{_fmt(d['detection_delay_s'])} |"
            for d in [*s["dropouts"], *s["real_gaps"]]
        ],
        "",
        "Real gaps (no message for longer than the timeout) are listed with source `gap`; they "
        "have no ground truth, so they count in detection only.",
        "",
        "## Metrics",
        "",
        f"Dropout rows score what the node publishes while the sensor is missing against the "
        f"recorded truth; `{late}` keeps the ticks at least {LATE_DROPOUT_S:g} s into a dropout. "
        f"The present row is the autoencoding reference, scored on one present tick in "
        f"{PRESENT_SCORE_EVERY}.",
        "",
        "| modality | condition | scored ticks | model | hold last value | mean |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for spec in result.specs:
        m = s["modalities"][spec.name]
        for cond, label in (("present", "present"), ("dropout", "dropout"), (late, late)):
            row = m[cond]
            lines.append(
                f"| {spec.name} | {label} | {row['model']['ticks']} | "
                f"{_metric_cell(spec.kind, row['model'])} | "
                f"{_metric_cell(spec.kind, row['hold']) if 'hold' in row else '–'} | "
                f"{_metric_cell(spec.kind, row['mean']) if 'mean' in row else '–'} |"
            )
    lines += [
        "",
        "Mean baseline: "
        + (", ".join(f"{k}: {v}" for k, v in s["mean_baseline"].items()) or "no dropouts"),
        "",
    ]
    lines += [
        "Ticks per condition: "
        + "; ".join(
            f"{name}: " + ", ".join(f"{c} {m['ticks'][c]}" for c in CONDITIONS)
            for name, m in s["modalities"].items()
        ),
        "",
    ]
    for spec in result.specs:
        if spec.kind == "vector" and s["modalities"][spec.name]["dropout"]["model"]["ticks"]:
            per = s["modalities"][spec.name]["dropout"]["model"]["rmse_per_joint"]
            lines += [f"### {spec.name}: RMSE per joint during dropout", ""]
            joints = list(spec.preprocess["joint_names"])
            lines += ["| field | " + " | ".join(joints) + " |", "| --- |" + " --- |" * len(joints)]
            lines += [
                f"| {f} | " + " | ".join(f"{per[f][j]:.4g}" for j in joints) + " |" for f in per
            ]
            lines.append("")
    lines += ["## Plots", ""]
    for name, files in images.items():
        lines += [f"![{name}]({f})" for f in files] + [""]
    return "\n".join(lines)


def write_report(result: EvalResult, out_dir: Path) -> None:
    """Write metrics.json, report.md and the PNGs into ``out_dir`` (which must exist)."""
    images: dict[str, list[str]] = {}
    for spec in result.specs:
        files = [f"error_{spec.name}.png"]
        _error_plot(result, spec, out_dir / files[0])
        if spec.kind == "image" and _frames_plot(result, spec, out_dir / f"frames_{spec.name}.png"):
            files.append(f"frames_{spec.name}.png")
        if spec.kind == "vector":
            files.append(f"trajectories_{spec.name}.png")
            _joints_plot(result, spec, out_dir / files[-1])
        images[spec.name] = files
    (out_dir / "metrics.json").write_text(
        json.dumps(_json_safe(result.summary), indent=2, allow_nan=False) + "\n"
    )
    (out_dir / "report.md").write_text(_markdown(result, images))
