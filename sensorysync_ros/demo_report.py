"""Score and plot one live demo run: the node's reconstructions against the simulator's truth.

Reads the two bags ``sensorysync-demo`` records (the simulator's ground truth, published under
``/truth/...`` whether a sensor was dropped or not, and the node's outputs), pairs every
reconstruction with the truth sample nearest to its tick stamp, and writes ``report.md``,
``metrics.json`` and PNGs: frames truth vs reconstruction during the camera dropout, error over
time with the dropouts shaded, and the latency from tick to arrival. The per-frame metrics are
the bag evaluator's (:mod:`sensorysync_ros.bagtools.metrics`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from rosbags.highlevel import AnyReader

from .bagtools.dropout import NS_PER_S, DropoutInterval
from .bagtools.metrics import psnr_db, ssim
from .codecs.image import image_to_tensor
from .core_msg import decode_core
from .manifest import Manifest

__all__ = ["LiveRun", "load_run", "write_live_report"]

LATE_S = 0.5  # "late" dropout rows: ticks at least this far into a dropout
_COLOURS = {"camera": "tab:red", "audio": "tab:blue", "joints": "tab:green"}


@dataclass
class LiveRun:
    """What the demo recorded, as arrays on one time axis (seconds from ``start_ns``)."""

    start_ns: int
    truth_frames: tuple[np.ndarray, np.ndarray]  # stamps_ns (F,), tensors (F, C, H, W)
    truth_joints: tuple[np.ndarray, np.ndarray]  # stamps_ns (K,), positions (K, J)
    recon_frames: tuple[np.ndarray, np.ndarray, np.ndarray]  # tick ns, arrival ns, tensors
    recon_joints: tuple[np.ndarray, np.ndarray, np.ndarray]  # tick ns, arrival ns, positions
    core: tuple[np.ndarray, np.ndarray, np.ndarray]  # tick ns, arrival ns, present (T, N)
    published_frames: np.ndarray  # stamps_ns of the camera frames the node could see


def _stamp_ns(msg: Any) -> int:
    return int(msg.header.stamp.sec) * NS_PER_S + int(msg.header.stamp.nanosec)


def _read(bag: Path) -> dict[str, list[tuple[int, Any]]]:
    """topic -> [(arrival ns, message)] of a whole bag."""
    out: dict[str, list[tuple[int, Any]]] = {}
    with AnyReader([bag]) as reader:
        for conn, t_ns, raw in reader.messages():
            out.setdefault(conn.topic, []).append((t_ns, reader.deserialize(raw, conn.msgtype)))
    return out


def load_run(
    truth_bag: Path, live_bag: Path, manifest: Manifest, truth_prefix: str, origin_ns: int
) -> LiveRun:
    """Decode the two demo bags (camera, joints and core topics); times count from
    ``origin_ns``, the stamp the dropout schedule counts from."""
    cam = manifest.modality("camera")
    truth, live = _read(truth_bag), _read(live_bag)
    frames = truth.get(f"{truth_prefix}/camera/image_raw", [])
    joints = truth.get(f"{truth_prefix}/joint_states", [])
    if not frames or not joints:
        raise ValueError(f"the truth bag {str(truth_bag)!r} holds no camera or joint messages")
    order = list(manifest.modality("joints").preprocess["joint_names"])

    def positions(msg: Any) -> np.ndarray:
        index = {n: i for i, n in enumerate(msg.name)}
        return np.array([msg.position[index[j]] for j in order])

    def column(items: list[tuple[int, Any]], value: Any) -> tuple[np.ndarray, ...]:
        stamps = np.array([_stamp_ns(m) for _, m in items], dtype=np.int64)
        arrivals = np.array([t for t, _ in items], dtype=np.int64)
        values = np.array([value(m) for _, m in items]) if items else np.zeros((0,))
        return stamps, arrivals, values

    def image(msg: Any) -> np.ndarray:
        return image_to_tensor(msg, cam.shape)

    def present(msg: Any) -> np.ndarray:
        return decode_core(msg, manifest.core_latent_dim, len(manifest.names)).present

    t_frames = column(frames, image)
    t_joints = column(joints, positions)
    return LiveRun(
        start_ns=origin_ns,
        truth_frames=(t_frames[0], t_frames[2]),
        truth_joints=(t_joints[0], t_joints[2]),
        recon_frames=column(live.get("/sensorysync/camera/reconstruction", []), image),
        recon_joints=column(live.get("/sensorysync/joints/reconstruction", []), positions),
        core=column(live.get("/sensorysync/core", []), present),
        published_frames=np.array(
            [_stamp_ns(m) for _, m in live.get("/camera/image_raw", [])], dtype=np.int64
        ),
    )


def _nearest(stamps: np.ndarray, t_ns: int) -> int:
    """Index of the stamp nearest to ``t_ns`` in sorted ``stamps``."""
    k = int(np.searchsorted(stamps, t_ns))
    if k == 0:
        return 0
    if k >= stamps.size:
        return stamps.size - 1
    return k if stamps[k] - t_ns < t_ns - stamps[k - 1] else k - 1


def _ssim(truth: np.ndarray, recon: np.ndarray, batch: int = 32) -> np.ndarray:
    """Per-sample SSIM of (B, C, H, W) batches, a few samples per call."""
    if truth.shape[0] == 0:
        return np.zeros(0)
    return np.concatenate(
        [ssim(truth[i : i + batch], recon[i : i + batch]) for i in range(0, len(truth), batch)]
    )


def _in(t_s: np.ndarray, d: DropoutInterval, late_s: float = 0.0) -> np.ndarray:
    return (t_s >= d.start_s + late_s) & (t_s < d.end_s)


def _stats(values: np.ndarray) -> dict[str, float | int]:
    if values.size == 0:
        return {"n": 0}
    return {"n": int(values.size), "mean": float(values.mean())}


def _camera_scores(run: LiveRun, drops: list[DropoutInterval]) -> dict[str, Any]:
    truth_ns, truth = run.truth_frames
    tick_ns, _, recon = run.recon_frames
    mean_image = truth.mean(axis=0)
    t_s = (tick_ns - run.start_ns) / NS_PER_S
    pairs = truth[[_nearest(truth_ns, int(t)) for t in tick_ns]]
    model_ssim = _ssim(pairs, recon)
    model_psnr = psnr_db(pairs, recon)
    mean_ssim = _ssim(pairs, np.broadcast_to(mean_image, pairs.shape))
    # last-frame hold: the last frame the node could have seen (published, not dropped)
    seen = np.searchsorted(run.published_frames, tick_ns, side="right") - 1
    held = truth[[_nearest(truth_ns, int(run.published_frames[max(k, 0)])) for k in seen]]
    hold_ssim = np.where(seen >= 0, _ssim(pairs, held), np.nan)
    out: dict[str, Any] = {"t_s": t_s, "model_ssim": model_ssim, "mean_ssim": mean_ssim,
                           "hold_ssim": hold_ssim, "model_psnr": model_psnr}
    camera_drops = [d for d in drops if d.modality == "camera"]
    dropped = np.zeros(t_s.size, dtype=bool)
    late = np.zeros(t_s.size, dtype=bool)
    for d in camera_drops:
        dropped |= _in(t_s, d)
        late |= _in(t_s, d, LATE_S)
    table = {}
    for label, sel in (("present", ~dropped), ("dropout", dropped),
                       (f"dropout_after_{LATE_S:g}s", late)):
        table[label] = {
            "ssim": _stats(model_ssim[sel]),
            "psnr_db": _stats(model_psnr[sel]),
            "hold_ssim": _stats(hold_ssim[sel & np.isfinite(hold_ssim)]),
            "mean_image_ssim": _stats(mean_ssim[sel]),
        }
    out["table"] = table
    return out


def _joint_scores(run: LiveRun, drops: list[DropoutInterval]) -> dict[str, Any]:
    truth_ns, truth = run.truth_joints
    tick_ns, _, recon = run.recon_joints
    t_s = (tick_ns - run.start_ns) / NS_PER_S
    err = np.array(
        [np.sqrt(np.mean((truth[_nearest(truth_ns, int(t))] - r) ** 2))
         for t, r in zip(tick_ns, recon, strict=True)]
    )
    return {"t_s": t_s, "rmse_rad": err}


def _latency_ms(run: LiveRun) -> np.ndarray:
    parts = [run.recon_frames, run.recon_joints, run.core]
    return np.concatenate([(arrival - tick) / 1e6 for tick, arrival, _ in parts if tick.size])


def _detection(run: LiveRun, manifest: Manifest, drops: list[DropoutInterval]) -> list[dict]:
    tick_ns, _, present = run.core
    t_s = (tick_ns - run.start_ns) / NS_PER_S
    out = []
    for d in drops:
        col = present[:, manifest.index(d.modality)] if present.size else np.zeros(0)
        missing = np.flatnonzero((t_s >= d.start_s) & ~col.astype(bool))
        delay = float(t_s[missing[0]] - d.start_s) if missing.size else None
        out.append({"modality": d.modality, "start_s": d.start_s, "end_s": d.end_s,
                    "detection_delay_s": delay})
    return out


def _save(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=100)


def _shade(ax: Any, drops: list[DropoutInterval]) -> None:
    for d in drops:
        ax.axvspan(d.start_s, d.end_s, color=_COLOURS.get(d.modality, "gray"), alpha=0.12, lw=0)


def _error_plot(run: LiveRun, manifest: Manifest, drops: list[DropoutInterval],
                cam: dict[str, Any], joints: dict[str, Any], path: Path) -> None:
    fig = Figure(figsize=(11, 7.5), tight_layout=True)
    ax1, ax2, ax3 = fig.subplots(3, 1, sharex=True)
    _shade(ax1, drops)
    ax1.plot(cam["t_s"], cam["model_ssim"], lw=1.2, label="SensorySync reconstruction")
    ax1.plot(cam["t_s"], cam["hold_ssim"], lw=1, ls="--", label="last-frame hold")
    ax1.plot(cam["t_s"], cam["mean_ssim"], lw=1, ls=":", label="mean image")
    ax1.set_ylabel("camera SSIM vs truth")
    ax1.legend(loc="lower left", fontsize=8)
    _shade(ax2, drops)
    ax2.plot(joints["t_s"], joints["rmse_rad"], lw=1, color="tab:green")
    ax2.set_ylabel("joint position RMSE (rad)")
    tick_ns, _, present = run.core
    t_s = (tick_ns - run.start_ns) / NS_PER_S
    _shade(ax3, drops)
    for i, name in enumerate(manifest.names):
        if present.size:
            ax3.fill_between(t_s, i + 0.1, i + 0.1 + 0.8 * present[:, i], step="post",
                             color=_COLOURS.get(name, "gray"), alpha=0.7, lw=0)
    ax3.set_yticks([i + 0.5 for i in range(len(manifest.names))], manifest.names)
    ax3.set_ylabel("present (core)")
    ax3.set_xlabel("time (s) on the dropout schedule's clock; shaded: scheduled dropouts")
    _save(fig, path)


def _frames_plot(run: LiveRun, drops: list[DropoutInterval], path: Path, n: int = 8) -> bool:
    tick_ns, _, recon = run.recon_frames
    truth_ns, truth = run.truth_frames
    t_s = (tick_ns - run.start_ns) / NS_PER_S
    sel = np.zeros(t_s.size, dtype=bool)
    for d in drops:
        if d.modality == "camera":
            sel |= _in(t_s, d)
    idx = np.flatnonzero(sel)
    if idx.size == 0:
        return False
    idx = idx[np.linspace(0, idx.size - 1, min(n, idx.size)).round().astype(int)]
    fig = Figure(figsize=(1.6 * idx.size, 3.6), tight_layout=True)
    axes = fig.subplots(2, idx.size, squeeze=False)
    for col, i in enumerate(idx):
        pair = truth[_nearest(truth_ns, int(tick_ns[i]))]
        for row, img in enumerate((pair, recon[i])):
            ax = axes[row][col]
            ax.imshow(np.clip(img.transpose(1, 2, 0), 0.0, 1.0), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0][col].set_title(f"{t_s[i]:.1f} s", fontsize=8)
    axes[0][0].set_ylabel("truth")
    axes[1][0].set_ylabel("reconstruction")
    _save(fig, path)
    return True


def _latency_plot(latency_ms: np.ndarray, path: Path) -> None:
    fig = Figure(figsize=(6, 3), tight_layout=True)
    ax = fig.add_subplot()
    ax.hist(latency_ms, bins=50, color="tab:purple")
    ax.set_xlabel("tick -> arrival at the recorder (ms)")
    ax.set_ylabel("messages")
    _save(fig, path)


def _cell(stat: dict[str, float | int], fmt: str = ".3f") -> str:
    return "–" if not stat.get("n") else f"{stat['mean']:{fmt}}"


def write_live_report(
    run: LiveRun,
    manifest: Manifest,
    drops: list[DropoutInterval],
    out_dir: Path,
    *,
    notes: dict[str, Any],
) -> dict[str, Any]:
    """Write report.md, metrics.json and the PNGs into ``out_dir``; return the metrics."""
    cam = _camera_scores(run, drops)
    joints = _joint_scores(run, drops)
    latency = _latency_ms(run)
    metrics = {
        **notes,
        "camera": cam["table"],
        "joints_rmse_rad": _stats(joints["rmse_rad"]),
        "latency_ms": {"p50": float(np.percentile(latency, 50)),
                       "p99": float(np.percentile(latency, 99)), "n": int(latency.size)},
        "dropouts": _detection(run, manifest, drops),
        "reconstructions": {"camera": int(run.recon_frames[0].size),
                            "joints": int(run.recon_joints[0].size),
                            "core": int(run.core[0].size)},
    }
    _error_plot(run, manifest, drops, cam, joints, out_dir / "error_over_time.png")
    has_frames = _frames_plot(run, drops, out_dir / "frames_camera_dropout.png")
    _latency_plot(latency, out_dir / "latency.png")
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    lines = [
        "# SensorySync live demo",
        "",
        f"- model: `{notes['model']}` ({notes.get('provider', 'ONNX Runtime')})",
        f"- simulator: {notes['duration_s']:g} s, seed {notes['seed']}, camera "
        f"{notes['camera_size']}x{notes['camera_size']}",
        "- dropouts (seconds on the schedule's clock, which starts 2 s after the simulator): "
        + ", ".join(f"{d.modality} {d.start_s:g}-{d.end_s:g} s" for d in drops),
        f"- latency, fusion tick -> reconstruction received by the recorder: p50 "
        f"{metrics['latency_ms']['p50']:.2f} ms, p99 {metrics['latency_ms']['p99']:.2f} ms "
        f"({latency.size} messages)",
        "",
        "## Camera: reconstruction vs truth",
        "",
        "| ticks | n | SSIM model | SSIM last-frame hold | SSIM mean image | PSNR model (dB) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for label, row in cam["table"].items():
        lines.append(
            f"| {label} | {row['ssim']['n']} | {_cell(row['ssim'])} | {_cell(row['hold_ssim'])} "
            f"| {_cell(row['mean_image_ssim'])} | {_cell(row['psnr_db'], '.2f')} |"
        )
    lines += [
        "",
        "`present` rows are the node autoencoding a live camera; `dropout` rows are "
        "reconstructed from joints + audio alone.",
        "",
        "## Dropout detection",
        "",
        "| modality | start | end | first tick reported missing |",
        "| --- | --- | --- | --- |",
        *[
            f"| {d['modality']} | {d['start_s']:g} s | {d['end_s']:g} s | "
            + ("not detected" if d["detection_delay_s"] is None
               else f"+{d['detection_delay_s']:.3f} s")
            + " |"
            for d in metrics["dropouts"]
        ],
        "",
        f"Joint positions reconstructed by the node (all ticks): RMSE "
        f"{_cell(metrics['joints_rmse_rad'], '.4f')} rad.",
        "",
        "## Plots",
        "",
        "![error over time](error_over_time.png)",
        "",
    ]
    if has_frames:
        lines += ["Camera during its dropout, truth (top) vs reconstruction (bottom):", "",
                  "![frames](frames_camera_dropout.png)", ""]
    lines += ["![latency](latency.png)", ""]
    if notes.get("offline_report"):
        lines += [f"The bag evaluator's report on the recorded truth with the same dropouts: "
                  f"[{notes['offline_report']}]({notes['offline_report']}).", ""]
    (out_dir / "report.md").write_text("\n".join(lines))
    return metrics
