"""Choose a MuJoCo off-screen OpenGL backend (``MUJOCO_GL``) before mujoco is imported.

MuJoCo reads ``MUJOCO_GL`` once, at import time, and an unusable value makes ``import mujoco``
fail. So the backend is probed in a short child process per candidate; the first that renders
a frame is exported to ``os.environ`` for this process. Nothing here imports mujoco.
"""

from __future__ import annotations

import os
import subprocess
import sys

from .errors import RenderBackendError

__all__ = ["BACKENDS", "INSTALL_HINT", "ensure_backend", "probe_backend"]

# Order tried when MUJOCO_GL is unset: GPU first, then the CPU software rasteriser, then X11.
BACKENDS = ("egl", "osmesa", "glfw")
INSTALL_HINT = (
    "install one: 'sudo apt-get install libosmesa6' and set MUJOCO_GL=osmesa (CPU), "
    "or 'sudo apt-get install libegl1' and set MUJOCO_GL=egl (GPU)"
)
_PROBE = (
    "import mujoco\n"
    "m = mujoco.MjModel.from_xml_string('<mujoco><worldbody><geom size=\"1\"/></worldbody>"
    "</mujoco>')\n"
    "r = mujoco.Renderer(m, 8, 8)\n"
    "r.update_scene(mujoco.MjData(m))\n"
    "r.render()\n"
    "r.close()\n"
)


def probe_backend(backend: str, timeout_s: float = 60.0) -> str | None:
    """Render one 8x8 frame with ``MUJOCO_GL=backend`` in a child process.

    Returns None on success, else the last line of the child's error output.
    """
    env = {**os.environ, "MUJOCO_GL": backend}
    if backend in ("egl", "osmesa"):
        env["PYOPENGL_PLATFORM"] = backend
    try:
        result = subprocess.run(
            [sys.executable, "-c", _PROBE],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        return f"timed out after {timeout_s:.0f} s"
    if result.returncode == 0:
        return None
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else f"exit status {result.returncode}"


def ensure_backend() -> str:
    """Make sure ``MUJOCO_GL`` names a backend that renders here, and return it.

    A backend set by the user is the only one tried; otherwise :data:`BACKENDS` are tried in
    order. Raises RenderBackendError listing every backend tried with its error and the fix.
    """
    chosen = os.environ.get("MUJOCO_GL", "").strip().lower()
    candidates = (chosen,) if chosen else BACKENDS
    failures = []
    for backend in candidates:
        error = probe_backend(backend)
        if error is None:
            os.environ["MUJOCO_GL"] = backend
            if backend in ("egl", "osmesa"):
                os.environ.setdefault("PYOPENGL_PLATFORM", backend)
            return backend
        failures.append(f"MUJOCO_GL={backend}: {error}")
    msg = f"no MuJoCo OpenGL backend can render here (tried {'; '.join(failures)}); {INSTALL_HINT}"
    raise RenderBackendError(msg)
