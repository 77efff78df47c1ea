"""Stage options: one frozen dataclass per stage holds its defaults, checks and rerun rules.

Every stage (media, faces, face/audio/text features, transcripts, learn, fuse)
declares one subclass of :class:`StageOptions`. The class is the only place
that knows the stage's defaults and valid values, and which fields change the
stage's output. Fields that do not (batch sizes, device, threads, pictures,
crop storage, retries and timeouts of API clients) are declared with
:func:`runtime`; :meth:`StageOptions.output_options` leaves them out, so they
never enter a rerun key (:mod:`affectflow.plan.rerun`) or a shard's provenance.

Why a class and not a dict of defaults: the rerun key, the provenance, the
config schema's defaults and the README's "What reruns when" table are all
derived from these declarations, so they cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

from affectflow.core.errors import AffectflowError

T = TypeVar("T", bound="StageOptions")

_RUNTIME = "affectflow_runtime"
_WIRING = "affectflow_wiring"
_ADDED = "affectflow_added"


class OptionsError(AffectflowError, ValueError):
    """A stage option is unknown or has a bad value; the message names the config key."""


def runtime(default: Any = dataclasses.MISSING, *, wired: bool = False) -> Any:
    """A field that changes how fast or where a stage runs, never what it writes (not a rerun trigger).

    ``wired``: the workflow fills it in (it is no key of the config section).
    """
    return dataclasses.field(default=default, metadata={_RUNTIME: True, _WIRING: wired})


def wiring(default: Any = dataclasses.MISSING) -> Any:
    """A field the workflow fills in (the model of a job), not a key of the stage's config section.

    It still changes the output, so it is part of :meth:`StageOptions.output_options`.
    """
    return dataclasses.field(default=default, metadata={_WIRING: True})


def added(default: Any) -> Any:
    """An output-affecting field added to a stage after outputs were made without it, whose ``default`` keeps
    the behaviour those outputs had: it enters the rerun key (and the provenance) only when it is set to
    something else, so adding it reruns nothing and leaves every existing key as it was.
    """
    return dataclasses.field(default=default, metadata={_ADDED: True})


def canonical(value: Any) -> Any:
    """``value`` as plain JSON data in one normal form: mappings with sorted string keys, lists for
    tuples, integral floats as integers (``1.0`` and ``1`` are one value), other floats as given.

    Two configs that mean the same thing (keys in another order, ``1`` for ``1.0``) have one
    canonical form, and so one rerun key.
    """
    if isinstance(value, Mapping):
        return {str(k): canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return int(value)
        return float(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return canonical({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    if hasattr(value, "item"):  # numpy scalars
        return canonical(value.item())
    if hasattr(value, "__fspath__"):
        return str(value)
    raise TypeError(f"cannot put a {type(value).__name__} into a rerun key: {value!r}")


def canonical_json(value: Any) -> str:
    """The canonical form of ``value`` as compact JSON (the text of a rerun key)."""
    return json.dumps(canonical(value), sort_keys=True, separators=(",", ":"), allow_nan=False)


@dataclasses.dataclass(frozen=True)
class StageOptions:
    """Base of every stage's options class (see the module docstring).

    Subclasses set ``SECTION`` (their key in config.yaml, used in error
    messages; empty for a stage without config options) and may override :meth:`check` for checks across fields and
    :meth:`from_config` when their options come from more than one section.
    """

    SECTION: ClassVar[str] = ""
    #: workflow-wide config keys (outside ``SECTION``) that are options of this stage too
    TOP_LEVEL: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        try:
            self.check()
        except (TypeError, ValueError) as e:
            if isinstance(e, OptionsError):
                raise
            raise OptionsError(f"{self.SECTION}: {e}") from None

    def check(self) -> None:
        """Raise ``ValueError`` naming the field when a value is invalid (called on construction)."""

    def _set(self, name: str, value: Any) -> None:
        """Normalise a field in :meth:`check` (the dataclass is frozen)."""
        object.__setattr__(self, name, value)

    # ------------------------------------------------------------ construction
    @classmethod
    def config_fields(cls) -> list[str]:
        """The keys a config section may set (every field but the wiring ones)."""
        return [f.name for f in dataclasses.fields(cls) if not f.metadata.get(_WIRING)]

    @classmethod
    def from_mapping(cls: type[T], cfg: Mapping[str, Any] | None, **wired: Any) -> T:
        """Build from a config mapping; an unknown key is an error naming it and the known ones."""
        cfg = dict(cfg or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise OptionsError(f"unknown {cls.SECTION} option(s) {unknown}; known: {sorted(cls.config_fields())}")
        try:
            return cls(**{**cfg, **wired})
        except TypeError as e:
            raise OptionsError(f"{cls.SECTION}: {e}") from None

    @classmethod
    def coerce(cls: type[T], cfg: T | Mapping[str, Any] | None, **overrides: Any) -> T:
        """``cfg`` as options: an options object as it is, a mapping through :meth:`from_mapping`;
        ``overrides`` that are not None win (library calls that pass a setting as an argument)."""
        given = {k: v for k, v in overrides.items() if v is not None}
        if isinstance(cfg, cls):
            return dataclasses.replace(cfg, **given) if given else cfg
        return cls.from_mapping({**dict(cfg or {}), **given})

    @classmethod
    def from_config(cls: type[T], config: Mapping[str, Any], **wired: Any) -> T:
        """Build from the whole workflow config (``snakemake.config``): its ``SECTION`` section
        (none for a stage without config options: ``SECTION = ""``)."""
        section = dict((config.get(cls.SECTION) if cls.SECTION else None) or {})
        return cls.from_mapping({**section, **cls.top_level(config)}, **wired)

    @classmethod
    def top_level(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        """The workflow-wide keys of ``config`` that are options of this stage too (:attr:`TOP_LEVEL`)."""
        return {k: config[k] for k in cls.TOP_LEVEL if k in config}

    # ------------------------------------------------------------ declarations
    @classmethod
    def config_key(cls, name: str) -> str:
        """Where field ``name`` is set in config.yaml (for messages and the docs)."""
        return name if name in cls.TOP_LEVEL else f"{cls.SECTION}.{name}"

    @classmethod
    def runtime_fields(cls) -> list[str]:
        """Fields that do not change the output (never rerun anything)."""
        return [f.name for f in dataclasses.fields(cls) if f.metadata.get(_RUNTIME)]

    @classmethod
    def output_fields(cls) -> list[str]:
        """Fields that change the output (part of the rerun key and the provenance)."""
        return [f.name for f in dataclasses.fields(cls) if not f.metadata.get(_RUNTIME)]

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """The default of every config key (for the schema comparison and the docs)."""
        out = {}
        for f in dataclasses.fields(cls):
            if f.metadata.get(_WIRING):
                continue
            if f.default is not dataclasses.MISSING:
                out[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                out[f.name] = f.default_factory()
        return out

    @classmethod
    def added_defaults(cls) -> dict[str, Any]:
        """The :func:`added` fields at their defaults: what a record that leaves one out (made before it
        existed, or at its default, as keys and bundles do) was made with."""
        return {f.name: f.default for f in dataclasses.fields(cls) if f.metadata.get(_ADDED)}

    # ------------------------------------------------------------ values
    @classmethod
    def keyed(cls, name: str, value: Any) -> bool:
        """Whether field ``name`` with ``value`` is part of the rerun key: every output field, but an
        :func:`added` one only when it is not at its default."""
        f = next(f for f in dataclasses.fields(cls) if f.name == name)
        return not f.metadata.get(_RUNTIME) and not (f.metadata.get(_ADDED) and value == f.default)

    def unused_fields(self) -> frozenset[str]:
        """Output fields that cannot change this job's output, given its other fields (an option of another
        detector, task or model). Subclasses name them; the rerun key and the provenance hold their defaults,
        so setting one reruns nothing and keys made before stay as they were."""
        return frozenset()

    def output_options(self) -> dict[str, Any]:
        """The output-affecting options in canonical form (what the rerun key and provenance hold); an
        :meth:`unused_fields` one at its default."""
        effective = self.effective()
        values = {name: getattr(effective, name) for name in self.output_fields()}
        return canonical({name: v for name, v in values.items() if self.keyed(name, v)})

    def effective(self: T) -> T:
        """These options with the :meth:`unused_fields` at their defaults: what a stage hands its domain code,
        so that nothing it writes (a settings echo in a JSON file) holds a value the rerun key leaves out."""
        unused = self.unused_fields()
        return dataclasses.replace(self, **{n: self._default(n) for n in unused}) if unused else self

    @classmethod
    def _default(cls, name: str) -> Any:
        f = next(f for f in dataclasses.fields(cls) if f.name == name)
        if f.default is not dataclasses.MISSING:
            return f.default
        if f.default_factory is not dataclasses.MISSING:
            return f.default_factory()
        raise TypeError(f"{cls.__name__}.{name} has no default, so it cannot be an unused field")

    def replace(self: T, **changes: Any) -> T:
        return dataclasses.replace(self, **changes)


def one_of(name: str, value: Any, allowed: tuple[Any, ...] | list[Any]) -> None:
    """Raise naming ``name`` when ``value`` is not one of ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")


def at_least(name: str, value: Any, low: float) -> None:
    """Raise naming ``name`` when ``value`` is not a number >= ``low``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low:
        raise ValueError(f"{name} must be a number >= {low}, got {value!r}")
