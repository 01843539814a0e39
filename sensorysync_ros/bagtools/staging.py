"""Write-then-rename output directories: a reader never sees a half-written result."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import SensorySyncError
from .errors import one_line

__all__ = ["interrupt_on_sigterm", "run_staged_cli", "staged_dir"]


def _publish(staging: Path, out: Path) -> None:
    """Move a complete ``staging`` directory to ``out``, replacing an older ``out``."""
    if not out.exists():
        os.replace(staging, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    os.replace(out, old / out.name)
    os.replace(staging, out)
    shutil.rmtree(old)


@contextmanager
def staged_dir(out: Path) -> Iterator[Path]:
    """Yield an empty hidden directory beside ``out``; on success it replaces ``out`` with one
    ``os.replace``, on any exception (Ctrl-C included) it is deleted and ``out`` is untouched."""
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the result is an ordinary directory
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _publish(staging, out)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def interrupt_on_sigterm() -> None:
    """Make SIGTERM unwind like Ctrl-C, so a killed CLI still removes its staging directory."""
    signal.signal(signal.SIGTERM, _raise_interrupt)


def run_staged_cli(run: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a CLI whose outputs go through a staging directory; return its exit status.

    Library errors become one ``error:`` line and status 1; Ctrl-C or SIGTERM unwinds (the
    staging directory is removed on the way) and gives status 130.
    """
    interrupt_on_sigterm()
    try:
        return run(args)
    except (SensorySyncError, OSError) as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; no output written", file=sys.stderr)
        return 130

