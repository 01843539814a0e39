"""Model registry: ``build_model(config)`` picks the class named by ``config.model.type``.

Model modules register their factory with ``@register_model("name")``; the registry imports a
built-in model's module on first use, so callers only need this module.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from torch import nn

from .config import Config, ConfigError

__all__ = ["build_model", "register_model"]

ModelFactory = Callable[[Config], nn.Module]

_FACTORIES: dict[str, ModelFactory] = {}
# Where each built-in model type is defined (imported lazily: it registers itself).
_BUILTIN_MODULES = {
    "sensorysync": "sensorysync_training.sensorysync",
    "jmvae": "sensorysync_training.baselines",
    "mvae": "sensorysync_training.baselines",
}


def register_model(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator registering a model factory (usually the nn.Module class) under ``name``."""

    def decorate(factory: ModelFactory) -> ModelFactory:
        _FACTORIES[name] = factory
        return factory

    return decorate


def build_model(config: Config) -> nn.Module:
    """A freshly initialised model of type ``config.model.type``."""
    name = config.model.type
    if name not in _FACTORIES and name in _BUILTIN_MODULES:
        importlib.import_module(_BUILTIN_MODULES[name])
    if name not in _FACTORIES:
        raise ConfigError(
            f"model.type {name!r} is not registered; known: {sorted(_BUILTIN_MODULES)}"
        )
    return _FACTORIES[name](config)
