"""``sensorysync-train``: train a model from a YAML config, single process or under torchrun.

    sensorysync-train --config training/configs/fashion_mnist.yaml --out runs/fmnist
    sensorysync-train --out runs/fmnist --resume --epochs 20
    torchrun --nproc_per_node=2 -m sensorysync_training.train --config CFG --out RUN_DIR

RUN_DIR receives ``checkpoint.pt`` (written atomically after every epoch: weights, optimizer, RNG
states of every rank, epoch, resolved config), ``metrics.csv`` (one row per epoch and split),
``tb/`` (TensorBoard) and ``config.yaml``. ``--resume`` continues bit-exactly: the data order
depends only on (seed, epoch) and the RNG states are restored. Under torchrun the model is
wrapped in DistributedDataParallel (gloo on CPU, nccl on GPU), each rank reads its
DistributedSampler shard, and rank 0 alone logs and writes checkpoints. NaN or inf in a batch or
in the loss stops the run with an error naming the step and the modality; the checkpoint of the
last completed epoch stays as it was.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import yaml
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from .checkpoint import CheckpointError, load_checkpoint, parameter_digest, save_checkpoint
from .config import Config, ConfigError, load_config
from .data import DataError, MultimodalData, load_splits, resolve_config
from .registry import build_model

__all__ = ["TrainingError", "main", "train"]

CHECKPOINT = "checkpoint.pt"
METRICS_CSV = "metrics.csv"


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite values, bad run folder, data too small)."""


@dataclass(frozen=True)
class Runtime:
    """Where this process runs: its rank among ``world_size`` and its device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_runtime(device: str) -> Runtime:
    """Join the torchrun process group if there is one and pick this rank's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "cuda" and not torch.cuda.is_available():
        raise TrainingError("--device cuda: torch sees no CUDA device; use --device cpu or auto")
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device(device if device != "auto" else "cpu")
    if world_size > 1:
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        return Runtime(dist.get_rank(), world_size, dev)
    return Runtime(0, 1, dev)


def _all_sum(values: Tensor, rt: Runtime) -> Tensor:
    if rt.world_size > 1:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def batches(data: MultimodalData, sampler: DistributedSampler[Any], batch_size: int,
            device: torch.device, *, full_only: bool) -> Iterator[list[Tensor]]:
    """The sampler's indices cut into batches (incomplete last batch dropped if full_only)."""
    order = torch.tensor(list(sampler), dtype=torch.long)
    stop = len(order) - len(order) % batch_size if full_only else len(order)
    for start in range(0, stop, batch_size):
        yield [t.to(device) for t in data.batch(order[start : start + batch_size])]


def _check_batch(xs: Sequence[Tensor], names: Sequence[str], step: int) -> str | None:
    """An error message if any modality of the batch holds NaN or inf."""
    for name, x in zip(names, xs):
        if not bool(torch.isfinite(x).all()):
            return f"step {step}: input batch of modality {name!r} contains NaN or inf"
    return None


def _check_loss(terms: dict[str, Tensor], names: Sequence[str], step: int) -> str | None:
    """An error message naming the non-finite terms and their modalities, if any."""
    if bool(torch.isfinite(terms["loss"])):
        return None
    bad = [k for k, v in terms.items() if k != "loss" and not bool(torch.isfinite(v))]
    modalities = sorted({k.rsplit("/", 1)[-1] for k in bad} & set(names)) or ["core"]
    return (f"step {step}: loss is {float(terms['loss'].detach())}; non-finite terms {bad} "
            f"(modality {', '.join(repr(m) for m in modalities)})")


def _stop_if_any(message: str | None, rt: Runtime, out_dir: Path) -> None:
    """Raise on every rank when any rank found a problem (so no rank waits forever)."""
    flag = torch.tensor([0.0 if message is None else 1.0], device=rt.device)
    if float(_all_sum(flag, rt)) == 0:
        return
    where = f"; the last good checkpoint {str(out_dir / CHECKPOINT)!r} is kept"
    raise TrainingError((message or f"rank {rt.rank}: another rank hit non-finite values") + where)


class RunLog:
    """Rank 0's metrics: metrics.csv (appended across resumes) and TensorBoard."""

    def __init__(self, out_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.csv_path = out_dir / METRICS_CSV
        self.writer = SummaryWriter(str(out_dir / "tb"))

    def log(self, epoch: int, split: str, metrics: dict[str, float]) -> None:
        row = {"epoch": epoch, "split": split, **metrics}
        new = not self.csv_path.exists()
        with self.csv_path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)
        for key, value in metrics.items():
            self.writer.add_scalar(f"{split}/{key}", value, epoch)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


@torch.no_grad()
def evaluate(model: nn.Module, data: MultimodalData, config: Config, rt: Runtime
             ) -> dict[str, float]:
    """Mean of every term over ``data`` with all modalities kept and full KL weights."""
    model.eval()
    sampler = DistributedSampler(data, rt.world_size, rt.rank, shuffle=False)
    sums: dict[str, Tensor] = {}
    count = torch.zeros(1, device=rt.device)
    for xs in batches(data, sampler, config.train.val_batch_size, rt.device, full_only=False):
        n = xs[0].shape[0]
        for key, value in model(xs, math.inf).items():
            sums[key] = sums.get(key, 0.0) + value.detach().to(rt.device) * n
        count += n
    keys = sorted(sums)
    total = _all_sum(torch.cat([sums[k].reshape(1) for k in keys] + [count]), rt)
    return {k: float(v) for k, v in zip(keys, total[:-1] / total[-1])}


def _rng_state(rt: Runtime) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if rt.device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(rt.device)
    return state


def _gather_rng(rt: Runtime) -> list[dict[str, Any]]:
    state = _rng_state(rt)
    if rt.world_size == 1:
        return [state]
    gathered: list[Any] = [None] * rt.world_size
    dist.all_gather_object(gathered, {k: v.cpu() for k, v in state.items()})
    return gathered


def _restore_rng(states: list[dict[str, Any]], rt: Runtime) -> None:
    if len(states) != rt.world_size:
        raise TrainingError(
            f"checkpoint was written by {len(states)} ranks, this run has {rt.world_size}: "
            f"resume with --nproc_per_node={len(states)} for an exact continuation"
        )
    torch.set_rng_state(states[rt.rank]["torch"])
    if rt.device.type == "cuda" and "cuda" in states[rt.rank]:
        torch.cuda.set_rng_state(states[rt.rank]["cuda"], rt.device)


def _initial_config(
    args: argparse.Namespace, out_dir: Path
) -> tuple[Config, dict[str, Any] | None]:
    """The run's config and, with --resume, the checkpoint to continue from."""
    ckpt_path = out_dir / CHECKPOINT
    state = None
    if args.resume:
        state = load_checkpoint(ckpt_path)
        config = Config.from_dict(state["config"], source=f"config in {str(ckpt_path)!r}")
        if args.config is not None:
            given = resolve_config(load_config(args.config)).to_dict()
            ours = config.to_dict()
            differ = sorted(k for k in ours if k != "train" and ours[k] != given[k])
            if differ:
                raise TrainingError(
                    f"--config {args.config!r} differs from the checkpoint's config in {differ}; "
                    "drop --config to continue with the checkpoint's"
                )
    else:
        if args.config is None:
            raise TrainingError("--config is required unless --resume continues a run")
        if ckpt_path.exists():
            raise TrainingError(
                f"{str(ckpt_path)!r} already exists: pass --resume to continue it or choose "
                "another --out"
            )
        config = load_config(args.config)
    if args.data_dir is not None:
        config = config.replace(data=dataclasses.replace(config.data, dir=args.data_dir))
    if args.epochs is not None:
        config = config.replace(train=dataclasses.replace(config.train, epochs=args.epochs))
    return resolve_config(config), state


def train(args: argparse.Namespace) -> Path:
    """Run (or continue) a training run; returns the checkpoint path."""
    out_dir = Path(args.out)
    config, state = _initial_config(args, out_dir)
    rt = setup_runtime(args.device)
    splits = load_splits(config)
    torch.manual_seed(config.train.seed)
    module = build_model(config).to(rt.device)
    optimizer = torch.optim.Adam(module.parameters(), lr=config.train.lr)
    torch.manual_seed(config.train.seed + 1 + rt.rank)
    start_epoch = 0
    if state is not None:
        module.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch = int(state["epoch"])
        _restore_rng(state["rng"], rt)
    model: nn.Module = (DistributedDataParallel(module) if rt.world_size > 1 else module)
    sampler = DistributedSampler(splits.train, rt.world_size, rt.rank, shuffle=True,
                                 seed=config.train.seed)
    steps_per_epoch = len(sampler) // config.train.batch_size
    if args.max_steps is not None:
        steps_per_epoch = min(steps_per_epoch, args.max_steps)
    if steps_per_epoch == 0:
        raise TrainingError(
            f"{len(sampler)} training samples per rank are fewer than train.batch_size "
            f"{config.train.batch_size}: lower the batch size or raise data.train_limit"
        )
    log = None
    if rt.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
        log = RunLog(out_dir)
    try:
        for epoch in range(start_epoch, config.train.epochs):
            model.train()
            sampler.set_epoch(epoch)
            sums: dict[str, Tensor] = {}
            bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{config.train.epochs}",
                       disable=not rt.is_main or args.quiet, leave=False,
                       mininterval=1.0 if sys.stderr.isatty() else 30.0)  # log files stay small
            stream = batches(splits.train, sampler, config.train.batch_size, rt.device,
                             full_only=True)
            for step, xs in zip(range(steps_per_epoch), stream):
                global_step = epoch * steps_per_epoch + step + 1
                _stop_if_any(_check_batch(xs, config.names, global_step), rt, out_dir)
                terms = model(xs, epoch + step / steps_per_epoch)
                _stop_if_any(_check_loss(terms, config.names, global_step), rt, out_dir)
                optimizer.zero_grad(set_to_none=True)
                terms["loss"].backward()
                optimizer.step()
                for key, value in terms.items():
                    sums[key] = sums.get(key, 0.0) + value.detach().to(rt.device)
                bar.update()
                if step % 20 == 0:
                    bar.set_postfix(loss=f"{float(terms['loss'].detach()):.2f}")
            bar.close()
            keys = sorted(sums)
            train_means = _all_sum(torch.stack([sums[k] for k in keys]).reshape(-1), rt)
            train_metrics = {k: float(v) / (steps_per_epoch * rt.world_size)
                             for k, v in zip(keys, train_means)}
            val_metrics = evaluate(module, splits.val, config, rt)
            rng = _gather_rng(rt)
            if log is not None:
                log.log(epoch + 1, "train", train_metrics)
                log.log(epoch + 1, "val", val_metrics)
                save_checkpoint(out_dir / CHECKPOINT, {
                    "model": module.state_dict(), "optimizer": optimizer.state_dict(),
                    "epoch": epoch + 1, "config": config.to_dict(), "rng": rng,
                    "metrics": {"train": train_metrics, "val": val_metrics},
                })
                if not args.quiet:
                    tqdm.write(f"epoch {epoch + 1}/{config.train.epochs}: train elbo "
                               f"{train_metrics['elbo']:.3f}  val elbo {val_metrics['elbo']:.3f}")
            if rt.world_size > 1:
                dist.barrier()
    finally:
        if log is not None:
            log.close()
    print(f"rank {rt.rank}/{rt.world_size}: parameters sha256 {parameter_digest(module)}",
          flush=True)
    return out_dir / CHECKPOINT


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="sensorysync-train", description=__doc__.split("\n")[0])
    p.add_argument("--config", help="YAML training config (see training/configs/)")
    p.add_argument("--out", required=True, help="run folder: checkpoint, metrics.csv, tb/")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/checkpoint.pt (its config; --epochs may extend it)")
    p.add_argument("--epochs", type=_positive_int,
                   help="override train.epochs (total, not additional)")
    p.add_argument("--max-steps", type=_positive_int,
                   help="cap on optimizer steps per epoch (smoke runs)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="auto = cuda if available (under torchrun: cuda:LOCAL_RANK)")
    p.add_argument("--data-dir", help="override data.dir")
    p.add_argument("--quiet", action="store_true", help="no progress bar or epoch lines")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        train(args)
        if dist.is_initialized():
            dist.barrier()  # tear the process group down together: gloo can abort a rank early
    except (ConfigError, DataError, CheckpointError, TrainingError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
