"""Config-selected backends: one registry type shared by the camera and segmenter packages.

A backend is one module of its package, named after its key unless ``module_of_key`` says otherwise.
The module defines a config model (a :class:`StrictModel` with ``type: Literal["<key>"]``) and a class
with a ``config_model`` attribute, decorated with :meth:`BackendRegistry.register`. Adding a backend
means adding one file: :meth:`BackendRegistry.config_union` discovers the modules to build the
discriminated union, and :meth:`BackendRegistry.backend_class` imports only the selected module.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Generic, TypeVar, Union, get_args

from pydantic import Field, ValidationError

from edge.config import StrictModel, format_validation_error
from edge.errors import ConfigError

T = TypeVar("T")


class BackendRegistry(Generic[T]):
    """Maps config ``type`` keys to backend classes of one package, importing modules lazily."""

    def __init__(
        self,
        kind: str,
        package: str,
        *,
        not_backends: frozenset[str] = frozenset({"base"}),
        module_of_key: Mapping[str, str] | None = None,
    ) -> None:
        self.kind = kind  # "camera", "segmenter": used in messages
        self.package = package
        self.not_backends = not_backends
        self.module_of_key = dict(module_of_key or {})
        self._key_of_module = {module: key for key, module in self.module_of_key.items()}
        self._classes: dict[str, type[T]] = {}

    def register(self, key: str) -> Callable[[type[T]], type[T]]:
        """Class decorator registering a backend under ``key`` (its config's ``type``)."""

        def decorate(cls: type[T]) -> type[T]:
            field = cls.config_model.model_fields.get("type")  # type: ignore[attr-defined]
            if field is None or get_args(field.annotation) != (key,):
                raise TypeError(f"{cls.__name__}.config_model needs a field type: Literal[{key!r}]")
            if key in self._classes and self._classes[key] is not cls:
                raise TypeError(f"{self.kind} key {key!r} is already taken by {self._classes[key].__name__}")
            cls.key = key  # type: ignore[attr-defined]
            self._classes[key] = cls
            return cls

        return decorate

    def available(self) -> list[str]:
        """Keys of every backend module in the package (without importing them)."""
        package = importlib.import_module(self.package)
        names = (m.name for m in pkgutil.iter_modules(package.__path__))
        modules = (n for n in names if n not in self.not_backends and not n.startswith("_"))
        return sorted(self._key_of_module.get(m, m) for m in modules)

    def backend_class(self, key: str) -> type[T]:
        """The class registered under ``key``, importing its module on first use."""
        module = f"{self.package}.{self.module_of_key.get(key, key)}"
        if key not in self._classes:
            if key not in self.available():
                raise ConfigError(
                    f"{self.kind} type {key!r} is unknown; use one of: {', '.join(self.available())}"
                )
            importlib.import_module(module)  # registers the class on import
        if key not in self._classes:
            raise ConfigError(f"module {module} does not register a {self.kind} under {key!r}")
        return self._classes[key]

    @functools.cache  # noqa: B019 (registries live as long as the process)
    def config_union(self) -> Any:
        """``Annotated[Union[<every backend's config>], Field(discriminator="type")]``.

        Built on first use by importing every backend module (they are light: heavy libraries load
        in constructors or ``open()``). Use it as a field annotation in the daemon's config model.
        """
        models = tuple(self.backend_class(key).config_model for key in self.available())  # type: ignore[attr-defined]
        return Annotated[Union[models], Field(discriminator="type")]  # noqa: UP007 (runtime tuple)

    def parse_config(self, data: Any, source: str) -> StrictModel:
        """Validate a mapping such as ``{"type": "hsv", ...}`` into the selected backend's config."""
        if isinstance(data, StrictModel):
            return data
        if not isinstance(data, Mapping) or "type" not in data:
            keys = ", ".join(self.available())
            raise ConfigError(
                f"{source}: expected a mapping with a 'type' key (one of: {keys}); got {data!r}"
            )
        model = self.backend_class(str(data["type"])).config_model  # type: ignore[attr-defined]
        try:
            return model.model_validate(dict(data))
        except ValidationError as err:
            raise ConfigError(format_validation_error(err, model, source)) from None

    def class_for(self, config: StrictModel) -> type[T]:
        """The backend class of a validated config (which must be that backend's own model)."""
        cls = self.backend_class(str(getattr(config, "type", "")))
        if not isinstance(config, cls.config_model):  # type: ignore[attr-defined]
            raise ConfigError(f"{type(config).__name__} is not the config model of {self.kind} {cls.key!r}")  # type: ignore[attr-defined]
        return cls
