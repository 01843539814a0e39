"""Errors of the bag tools. Each names the bag, topic, modality or spec at fault and the fix."""

from __future__ import annotations

from ..errors import BagError, SensorySyncError

__all__ = ["BagError", "DropoutSpecError", "ModalitySpecError", "one_line"]


class DropoutSpecError(SensorySyncError, ValueError):
    """A dropout spec (``camera:10-20``, a random rate) does not parse or names no modality."""


class ModalitySpecError(SensorySyncError, ValueError):
    """Modality specs cannot be read from a training config or a model file."""


def one_line(err: BaseException) -> str:
    """An error message on one line (CLIs print ``error: <this>``; lower layers such as YAML
    parsers put newlines in theirs)."""
    return " ".join(str(err).split())
