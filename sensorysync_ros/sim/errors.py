"""Errors of the simulator."""

from __future__ import annotations

from ..errors import SensorySyncError

__all__ = ["RenderBackendError", "SimError"]


class SimError(SensorySyncError):
    """The simulation cannot be built or run as configured."""


class RenderBackendError(SimError):
    """No MuJoCo OpenGL backend can render off-screen on this machine."""
