"""Command-line options generated from the typed run configuration (``TuningConfig``): one declaration, so every
option has the config's help text, its default, and its choices; nothing is declared a second time here.

``config_options(TuningConfig, NAMES, skip)`` decorates a command whose last parameter is ``config: dict``: the
command's signature gains one option per config field, and the command receives the values given, by field name.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable
from enum import Enum
from typing import Any, Literal, Union

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def _choices(annotation: Any) -> list[str] | None:
    if typing.get_origin(annotation) is Literal:
        return [str(a) for a in typing.get_args(annotation)]
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return [str(m.value) for m in annotation]
    return None


def _option(name: str, field: FieldInfo, decls: tuple[str, ...]) -> tuple[Any, Any]:
    """(annotation, typer.Option) for one config field."""
    annotation, optional = _unwrap_optional(field.annotation)
    required = field.is_required()
    default: Any = ... if required else field.get_default(call_default_factory=True)
    if isinstance(default, Enum):
        default = default.value
    help_text = (field.description or "").rstrip(".") + "."
    if annotation is bool:
        if not decls:
            decls = (f"{_flag(name)}/--no-{name.replace('_', '-')}",)
        return (bool | None if optional else bool), typer.Option(default, *decls, help=help_text, show_default=True)
    decls = decls or (_flag(name),)
    choices = _choices(annotation)
    if choices is not None:
        literal = Literal[tuple(choices)]  # type: ignore[valid-type]
        return (literal | None if optional else literal), typer.Option(
            default, *decls, help=help_text, show_default=True, case_sensitive=False
        )
    if annotation not in (int, float, str):
        annotation = str
    return (annotation | None if optional else annotation), typer.Option(
        default, *decls, help=help_text, show_default=default is not None
    )


def extend(
    command: Callable[..., Any], target: str, params: list[inspect.Parameter], make: Callable[[dict[str, Any]], Any]
) -> Callable[..., Any]:
    """``command`` with its parameter ``target`` replaced by the options ``params``: typer sees the options, and the
    command receives ``target=make({option: value})``."""
    own = [p for p in inspect.signature(command).parameters.values() if p.name != target]
    hints = typing.get_type_hints(command)
    names = {p.name for p in params}

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        values = {k: kwargs.pop(k) for k in list(kwargs) if k in names}
        return command(**{target: make(values)}, **kwargs)

    wrapper.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + params
    )
    wrapper.__annotations__ = {
        **{p.name: hints.get(p.name, p.annotation) for p in own},
        **{p.name: p.annotation for p in params},
    }
    return wrapper


def option(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def config_options(
    model: type[BaseModel],
    names: dict[str, tuple[str, ...]],
    skip: frozenset[str] | set[str] = frozenset(),
    **replace: tuple[Any, Any],
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add one option per field of ``model`` (``names``: option names other than --field-name; ``replace``: a field's
    (annotation, typer.Option) when it needs a different face, e.g. a shorthand). The command's ``config`` parameter
    receives the values given, by field name."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        generated = []
        for name, field in model.model_fields.items():
            if name not in skip:
                annotation, default = replace.get(name) or _option(name, field, names.get(name, ()))
                generated.append(option(name, annotation, default))
        return extend(command, "config", generated, lambda values: values)

    return decorate
