"""Name -> model class registry: build any model from its name and a plain config dict."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import is_dataclass
from typing import Any, TypeVar

from avse.config import override
from avse.errors import ConfigError
from avse.models.base import SeparationModel

_MODELS: dict[str, type[SeparationModel]] = {}

M = TypeVar("M", bound=type[SeparationModel])


def register_model(name: str) -> Callable[[M], M]:
    """Class decorator: register a model class under ``name``.

    The class must subclass ``avse.models.base.SeparationModel`` (the model
    interface) and define a frozen dataclass ``Config``. Registering a second class under a taken name raises
    ConfigError (re-registering the same class, e.g. on module reload, is allowed).
    """

    def decorate(cls: M) -> M:
        if not (isinstance(cls, type) and issubclass(cls, SeparationModel)):
            raise ConfigError(f"model {getattr(cls, '__name__', cls)!r} must subclass avse.models.base.SeparationModel")
        config = getattr(cls, "Config", None)
        if config is None or not is_dataclass(config):
            raise ConfigError(f"model {cls.__name__} needs a dataclass `Config`")
        old = _MODELS.get(name)
        if old is not None and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ConfigError(f"model name {name!r} is already registered to {old.__qualname__}")
        _MODELS[name] = cls
        cls.model_name = name
        return cls

    return decorate


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_MODELS)


def model_class(name: str) -> type[SeparationModel]:
    """The class registered under ``name``; ConfigError when there is none."""
    try:
        return _MODELS[name]
    except KeyError:
        known = ", ".join(list_models()) or "none"
        raise ConfigError(f"unknown model {name!r}; expected one of: {known}") from None


def make_config(name: str, config: Mapping[str, Any] | None = None) -> Any:
    """The ``Config`` of model ``name`` with the values of ``config`` overriding its defaults (unknown keys refused)."""
    cls = model_class(name)
    return override(cls.Config(), dict(config or {}))


def build_model(name: str, config: Mapping[str, Any] | None = None) -> SeparationModel:
    """Build model ``name`` from a plain dict of config values (missing keys take the defaults)."""
    cls = model_class(name)
    return cls.from_config(make_config(name, config))
