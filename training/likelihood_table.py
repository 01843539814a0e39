"""``sensorysync-likelihood``: the paper's Table 2 for trained checkpoints (Markdown + JSON).

    sensorysync-likelihood runs/sensorysync/checkpoint.pt runs/jmvae/checkpoint.pt \\
        runs/mvae/checkpoint.pt --num-points 2000 --num-samples 1000 \\
        --label-points 500 --label-samples 5000 --out docs/results/fashion_mnist_likelihood

Each checkpoint (SensorySync, JMVAE-kl or MVAE) is rebuilt from its own metadata. Rows are the
importance-sampled estimates of ``sensorysync_training.likelihood`` averaged over the first
``--num-points`` points of the test split (x1 = the config's first modality, x2 = its second):
log p(x1) from I; log p(x1, x2) from I, from L, from I,L; log p(x1 | x2) from L. With
``--label-points`` the label-proposal rows are also estimated with ``--label-samples`` on that
many points (they converge slowly in K). Writes OUT.md and OUT.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .checkpoint import CheckpointError, load_checkpoint, load_model
from .config import Config, ConfigError
from .data import DataError, load_splits
from .likelihood import (
    DEFAULT_MAX_BATCH_SAMPLES,
    LikelihoodError,
    estimate_log_likelihoods,
    sampler_for,
)

__all__ = ["Estimate", "Row", "evaluate_model", "main", "render_markdown"]

X1, X2 = 0, 1
BOTH = frozenset({X1, X2})


@dataclass(frozen=True)
class Row:
    """One metric of the table: ``target`` (minus ``given``) under the proposal ``infer_from``."""

    key: str
    metric: str
    inputs: str
    infer_from: frozenset[int]
    target: frozenset[int]
    given: frozenset[int] | None = None  # conditional: log p(target) - log p(given)


ROWS = (
    Row("log_p_x1_from_I", "log p(x1)", "I", frozenset({X1}), frozenset({X1})),
    Row("log_p_x1_x2_from_I", "log p(x1, x2)", "I", frozenset({X1}), BOTH),
    Row("log_p_x1_x2_from_L", "log p(x1, x2)", "L", frozenset({X2}), BOTH),
    Row("log_p_x1_x2_from_IL", "log p(x1, x2)", "I,L", BOTH, BOTH),
    Row("log_p_x1_given_x2_from_L", "log p(x1 | x2)", "L", frozenset({X2}), BOTH, frozenset({X2})),
)
LABEL_ROWS = tuple(r for r in ROWS if r.infer_from == frozenset({X2}))


@dataclass(frozen=True)
class Estimate:
    """Mean over data points of one row's per-point estimates, with its standard error."""

    mean: float
    sem: float
    num_points: int
    num_samples: int


def _summarise(values: Tensor, num_samples: int) -> Estimate:
    n = values.numel()
    sem = float(values.std(unbiased=True)) / math.sqrt(n) if n > 1 else math.nan
    return Estimate(float(values.mean()), sem, n, num_samples)


def evaluate_model(
    model: torch.nn.Module,
    xs: Sequence[Tensor],
    rows: Sequence[Row],
    *,
    num_samples: int,
    seed: int,
    max_batch_samples: int,
    label: str,
) -> dict[str, Estimate]:
    """Estimate ``rows`` on ``xs``: one importance-sampling pass per distinct proposal."""
    sampler = sampler_for(model)
    results: dict[str, Estimate] = {}
    for infer_from in dict.fromkeys(r.infer_from for r in rows):
        group = [r for r in rows if r.infer_from == infer_from]
        targets = list(dict.fromkeys(t for r in group for t in (r.target, r.given) if t))
        where = "+".join("IL"[i] for i in sorted(infer_from))
        per_point = estimate_log_likelihoods(
            sampler,
            xs,
            infer_from,
            targets,
            num_samples=num_samples,
            seed=seed,
            max_batch_samples=max_batch_samples,
            progress=f"{label} K={num_samples} from {where}",
        )
        for r in group:
            values = per_point[targets.index(r.target)]
            if r.given is not None:
                values = values - per_point[targets.index(r.given)]
            results[r.key] = _summarise(values, num_samples)
    return results


def _check_same_data(configs: Sequence[Config], paths: Sequence[str]) -> None:
    ref = [(m.name, m.kind, m.shape) for m in configs[0].modalities]
    if len(ref) != 2:
        raise LikelihoodError(
            f"{paths[0]!r} has {len(ref)} modalities; the Table 2 rows need exactly two (x1, x2)"
        )
    for config, path in zip(configs[1:], paths[1:]):
        mods = [(m.name, m.kind, m.shape) for m in config.modalities]
        if mods != ref or config.data != configs[0].data:
            raise LikelihoodError(
                f"{path!r} was trained on other data or modalities ({mods}, {config.data}) than "
                f"{paths[0]!r} ({ref}, {configs[0].data}); compare models of one dataset"
            )


def render_markdown(report: dict[str, Any]) -> str:
    """Table 2 layout: rows = metrics, columns = models."""
    models = report["models"]
    s = report["settings"]
    lines = [
        f"# Test log-likelihoods (nats), {report['dataset']}",
        "",
        f"x1 = {report['x1']!r}, x2 = {report['x2']!r}; importance-sampled, "
        f"mean over the first N points of the test split; evaluation seed {s['seed']}.",
        "",
        "| model | type | epochs | train seed | checkpoint |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {m['name']} | {m['type']} | {m['epochs']} | {m['train_seed']} | `{m['checkpoint']}` |"
        for m in models
    ]
    lines += [
        "",
        "| metric | input | N | K | " + " | ".join(m["name"] for m in models) + " |",
        "| --- | --- | --- | --- | " + " | ".join("---" for _ in models) + " |",
    ]
    for row in report["rows"]:
        metric = row["metric"].replace("|", "\\|")  # a bare | would split the cell
        cells = []
        best = max(m["estimates"][row["key"]]["mean"] for m in models)
        for m in models:
            value = m["estimates"][row["key"]]["mean"]
            cell = f"{value:.3f}"
            cells.append(f"**{cell}**" if value == best and len(models) > 1 else cell)
        lines.append(
            f"| {metric} | {row['inputs']} | {row['num_points']} | {row['num_samples']} | "
            + " | ".join(cells)
            + " |"
        )
    lines += ["", "Bold: the highest (best) value in the row.", ""]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sensorysync-likelihood", description=__doc__.split("\n")[0].strip("`: ")
    )
    p.add_argument("checkpoints", nargs="+", help="checkpoint.pt files (one table column each)")
    p.add_argument("--out", required=True, help="output prefix: writes OUT.md and OUT.json")
    p.add_argument("--names", nargs="+", help="column names (default: each model's type)")
    p.add_argument("--num-points", type=int, default=10500, help="first N test points")
    p.add_argument("--num-samples", type=int, default=5000, help="importance samples K")
    p.add_argument(
        "--label-points", type=int, default=0, help="also estimate the label rows on N points"
    )
    p.add_argument(
        "--label-samples", type=int, default=5000, help="K of the extra label-proposal rows"
    )
    p.add_argument("--label-only", action="store_true", help="only the extra label-proposal rows")
    p.add_argument("--seed", type=int, default=0, help="evaluation seed (importance samples)")
    p.add_argument(
        "--max-batch-samples",
        type=int,
        default=DEFAULT_MAX_BATCH_SAMPLES,
        help="data points x samples per forward pass (memory bound)",
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--data-dir", help="override the checkpoints' data.dir")
    return p


def _load(path: str, device: str) -> tuple[torch.nn.Module, Config, dict[str, Any]]:
    model, config = load_model(path, device=device)
    state = load_checkpoint(path)
    info = {"epochs": int(state["epoch"]), "train_seed": config.train.seed}
    return model, config, info


def _row_info(row: Row, key: str, num_points: int, num_samples: int) -> dict[str, Any]:
    return {
        "key": key,
        "metric": row.metric,
        "inputs": row.inputs,
        "num_points": num_points,
        "num_samples": num_samples,
    }


def run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Evaluate every checkpoint; the report that OUT.json holds."""
    if args.names is not None and len(args.names) != len(args.checkpoints):
        raise LikelihoodError(
            f"--names gives {len(args.names)} names for {len(args.checkpoints)} checkpoints"
        )
    loaded = [_load(p, args.device) for p in args.checkpoints]
    configs = [c for _, c, _ in loaded]
    _check_same_data(configs, args.checkpoints)
    config = configs[0]
    if args.data_dir is not None:
        config = config.replace(data=dataclasses.replace(config.data, dir=args.data_dir))
    test = load_splits(config).test
    if args.label_only and args.label_points <= 0:
        raise LikelihoodError("--label-only needs --label-points > 0")
    if not 0 < args.num_points <= len(test) or args.label_points > len(test):
        raise LikelihoodError(
            f"--num-points {args.num_points} / --label-points {args.label_points}: the test "
            f"split has {len(test)} points"
        )
    rows = (
        []
        if args.label_only
        else [_row_info(r, r.key, args.num_points, args.num_samples) for r in ROWS]
    )
    if args.label_points > 0:
        rows += [
            _row_info(r, f"{r.key}@K{args.label_samples}", args.label_points, args.label_samples)
            for r in LABEL_ROWS
        ]
    models = []
    for i, (path, (model, cfg, info)) in enumerate(zip(args.checkpoints, loaded)):
        name = args.names[i] if args.names else cfg.model.type
        common = {"seed": args.seed, "max_batch_samples": args.max_batch_samples, "label": name}
        estimates: dict[str, Estimate] = {}
        if not args.label_only:
            xs = [t[: args.num_points].to(args.device) for t in test.tensors]
            estimates = evaluate_model(model, xs, ROWS, num_samples=args.num_samples, **common)
        if args.label_points > 0:
            xs = [t[: args.label_points].to(args.device) for t in test.tensors]
            extra = evaluate_model(model, xs, LABEL_ROWS, num_samples=args.label_samples, **common)
            estimates.update({f"{k}@K{args.label_samples}": v for k, v in extra.items()})
        models.append(
            {
                "name": name,
                "type": cfg.model.type,
                "checkpoint": path,
                **info,
                "estimates": {k: vars(v) for k, v in estimates.items()},
            }
        )
    return {
        "dataset": f"{config.data.kind} test split",
        "x1": config.names[X1],
        "x2": config.names[X2],
        "settings": {
            "num_points": args.num_points,
            "num_samples": args.num_samples,
            "label_points": args.label_points,
            "label_samples": args.label_samples,
            "seed": args.seed,
            "command": command,
        },
        "rows": rows,
        "models": models,
    }


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(argv)
    try:
        report = run(args, "sensorysync-likelihood " + " ".join(argv))
    except (LikelihoodError, CheckpointError, ConfigError, DataError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{out}.json").write_text(json.dumps(report, indent=1) + "\n")
    Path(f"{out}.md").write_text(render_markdown(report))
    print(render_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
