"""Off-screen RGB rendering of the fixed scene camera."""

from __future__ import annotations

import mujoco
import numpy as np

from ..closing import Closing
from .errors import RenderBackendError, SimError
from .gl import INSTALL_HINT

__all__ = ["Camera"]


class Camera(Closing):
    """A MuJoCo Renderer for one named camera; close it (or use ``with``) when done."""

    def __init__(
        self, model: mujoco.MjModel, width: int, height: int, camera: str = "front"
    ) -> None:
        if width <= 0 or height <= 0:
            raise SimError(f"camera size must be positive, got {width}x{height}")
        if width > model.vis.global_.offwidth or height > model.vis.global_.offheight:
            model.vis.global_.offwidth = max(width, model.vis.global_.offwidth)
            model.vis.global_.offheight = max(height, model.vis.global_.offheight)
        if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera) < 0:
            raise SimError(f"the model has no camera named {camera!r}")
        try:
            self._renderer: mujoco.Renderer | None = mujoco.Renderer(model, height, width)
        except Exception as err:  # the GL backends raise a zoo of error types
            msg = f"cannot create a MuJoCo renderer: {err}; {INSTALL_HINT}"
            raise RenderBackendError(msg) from err
        self._camera = camera
        self.width = width
        self.height = height

    def render(self, data: mujoco.MjData) -> np.ndarray:
        """The current view as (height, width, 3) uint8 RGB."""
        if self._renderer is None:
            raise SimError("Camera.render() called after close()")
        self._renderer.update_scene(data, camera=self._camera)
        return self._renderer.render().copy()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
