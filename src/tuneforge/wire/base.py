"""What every wire model shares: proto-JSON names and values, and messages that name the field at fault.

Proto-JSON (what the official clients send and read): camelCase names, snake_case accepted on input, ``null`` meaning
"not set", int64 as strings (numbers accepted), enums by name (numbers accepted), timestamps in RFC 3339.

Vertex resources (:class:`WireModel`) refuse unknown fields; OpenAI-compatible bodies (:class:`LenientModel`) ignore
them. A validator reports a problem with :func:`problem`; its message may hold ``{field}``, which
:func:`messages` replaces by the JSON path of the value (``supervisedTuningSpec.hyperParameters.epochCount``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from enum import Enum
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

FIELD = "{field}"
_FIELD = re.compile(r"\{field(?::([^}]*))?\}")  # {field} or {field:Default}: the value's path, else Default
_FIELD_DOT = re.compile(r"\{field(?::[^}]*)?\}\.")
E = TypeVar("E", bound=Enum)


def timestamp(value: datetime | None) -> str | None:
    """A google.protobuf.Timestamp in proto-JSON: RFC 3339 in UTC with microseconds (``…T12:00:00.000000Z``)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def problem(message: str) -> PydanticCustomError:
    """A validation error whose message is shown as it is; ``{field}`` becomes the value's JSON path."""
    return PydanticCustomError("tuneforge", message)


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _field_name(path: str, resource: str) -> Callable[[re.Match[str]], str]:
    def name(match: re.Match[str]) -> str:
        return path or match.group(1) or resource

    return name


def messages(exc: ValidationError | Any, resource: str = "request", prefix: str = "") -> list[tuple[str, str]]:
    """(JSON path, message) of every problem, in words a user can act on; ``prefix``: the path of what was
    validated (``runtimeConfig.parameterValues``)."""
    out = []
    for e in exc.errors():  # a ValidationError, or FastAPI's RequestValidationError (the same error dicts)
        loc = tuple(p for p in e["loc"] if p != "body")
        path = ".".join(x for x in (prefix, _path(loc)) if x)
        if e["type"] == "tuneforge":
            text = _FIELD_DOT.sub(f"{path}." if path else "", e["msg"])
            text = _FIELD.sub(_field_name(path, resource), text)
        elif not path and e["type"] == "missing":
            text = f"the request body is empty; send a JSON {resource}"
        elif not path and e["type"] in ("model_type", "model_attributes_type", "dict_type"):
            text = f"request body must be a JSON object (a {resource})"
        elif e["type"] == "json_invalid":
            text = f"request body is not valid JSON: {e.get('ctx', {}).get('error', e['msg'])}"
        else:
            text = f"{path or resource}: {e['msg'][:1].lower()}{e['msg'][1:]}"
        out.append((path, text))
    return out


class WireModel(BaseModel):
    """A Vertex resource or request: camelCase on the wire, snake_case accepted, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="forbid",
        use_enum_values=False,
        protected_namespaces=(),
    )
    WIRE_NAME: ClassVar[str] = ""  # the proto message's name, for messages ("TuningJob")

    @model_validator(mode="before")
    @classmethod
    def _proto_json(cls, data: Any) -> Any:
        if isinstance(data, BaseModel):
            return data
        if not isinstance(data, dict):
            raise problem("{field:the request body} must be an object")
        aliases = {f.alias or name: name for name, f in cls.model_fields.items()}
        out: dict[str, Any] = {}
        unknown = []
        for key, value in data.items():
            if value is None:  # proto-JSON: null means "not set"
                continue
            name = key if key in aliases else to_camel(key)
            if name in out:
                raise problem(f"{FIELD}.{name} is given twice (as {key} and {name}); give it once")
            if name not in aliases:
                unknown.append(key)
            out[name] = value
        if unknown:
            name = cls.WIRE_NAME or cls.__name__
            raise problem(f"unknown field(s) {', '.join(sorted(unknown))} in {{field:{name}}}; see the {name} resource")
        return out


class LenientModel(BaseModel):
    """An OpenAI-compatible body: snake_case as OpenAI spells it, unknown fields ignored (clients send many)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


def dump(model: BaseModel) -> dict[str, Any]:
    """A model as proto-JSON (camelCase, unset fields left out, int64 as strings)."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


# -- value types ---------------------------------------------------------------------------------------------------


def whole_number(value: Any) -> int | None:
    """The integer a JSON number or a numeric string holds (None for anything else, bools included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def integer(value: Any, minimum: int | None) -> int:
    """An integer from a JSON number or a numeric string (not a bool), at least ``minimum``."""
    number = whole_number(value)
    if number is None:
        raise problem(f"{FIELD} must be an integer (got {value!r})")
    if minimum is not None and number < minimum:
        raise problem(f"{FIELD} must be at least {minimum} (got {number})")
    return int(number)


def _int64_schema(minimum: int | None = None) -> dict[str, Any]:
    return {
        "anyOf": [{"type": "string", "pattern": "^-?[0-9]+$"}, {"type": "integer"}],
        "format": "int64",
        **({"minimum": minimum} if minimum is not None else {}),
    }


# An int64 field: a JSON integer or a numeric string in, a string out. Count: the same, at least 1.
Int64 = Annotated[
    int,
    BeforeValidator(lambda v: integer(v, None)),
    PlainSerializer(str, return_type=str, when_used="json"),
    WithJsonSchema(_int64_schema()),
]
Count = Annotated[
    int,
    BeforeValidator(lambda v: integer(v, 1)),
    PlainSerializer(str, return_type=str, when_used="json"),
    WithJsonSchema(_int64_schema(1)),
]


def _positive(value: Any) -> float:
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
    except (TypeError, ValueError):
        raise problem(f"{FIELD} must be a number (got {value!r})") from None
    if not number > 0:
        raise problem(f"{FIELD} must be greater than 0 (got {value!r})")
    return number


PositiveNumber = Annotated[
    float,
    BeforeValidator(_positive),
    WithJsonSchema({"anyOf": [{"type": "number", "exclusiveMinimum": 0}, {"type": "string"}]}),
]


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise problem(f"{FIELD} must be a string (got {value!r})")
    return value


String = Annotated[str, BeforeValidator(_string)]


def _labels(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise problem(f"{FIELD} must be an object of string keys and string values")
    return value


Labels = Annotated[dict[str, str], BeforeValidator(_labels)]


def enum_parser(
    enum: type[E], numbers: dict[int, E], message: str, aliases: Callable[[str], E | None] | None = None
) -> Callable[[Any], E]:
    """Read an enum by name or by number; ``message`` (with ``{field}`` and ``{value}``) for anything else.
    ``aliases`` may accept more spellings (lower case, shorthands)."""

    def parse(value: Any) -> E:
        if isinstance(value, enum):
            return value
        if isinstance(value, int) and not isinstance(value, bool) and value in numbers:
            return numbers[value]
        if isinstance(value, str):
            if value in enum.__members__:
                return enum[value]
            if value.strip().isdigit() and int(value) in numbers:
                return numbers[int(value)]
            found = aliases(value) if aliases else None
            if found is not None:
                return found
        raise problem(message.replace("{value}", repr(value)))

    return parse


def enum_schema(enum: type[Enum], numbers: dict[int, Any]) -> dict[str, Any]:
    return {"anyOf": [{"type": "string", "enum": list(enum.__members__)}, {"type": "integer", "enum": sorted(numbers)}]}


# -- what no request body may hold -----------------------------------------------------------------------------------

INT64 = (-(2**63), 2**63 - 1)
MAX_DEPTH = 64  # nesting of a request body; Vertex's and OpenAI's deepest shapes (tool schemas) stay well inside


def hostile_value(value: Any, path: str = "", depth: int = 0) -> str | None:
    """What makes a parsed JSON body unusable by any route, as a message naming its path: a number that is not
    finite or an integer past int64, a string with a NUL byte or a lone surrogate, nesting past MAX_DEPTH. None when
    the body is fine (each route then checks its own fields and ranges)."""
    where = path or "the request body"
    if depth > MAX_DEPTH:
        return f"{where} is nested more than {MAX_DEPTH} levels deep; flatten it"
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{where} must be a finite number (got {value})"
    if isinstance(value, int):
        if INT64[0] <= value <= INT64[1]:
            return None
        return f"{where} is out of range: integers must lie between -2**63 and 2**63 - 1"
    if isinstance(value, str):
        return _bad_text(value, where)
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else key
            found = _bad_text(key, f"a key of {where}") or hostile_value(item, inner, depth + 1)
            if found:
                return found
        return None
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = hostile_value(item, f"{path}[{i}]", depth + 1)
            if found:
                return found
    return None


def _bad_text(text: str, where: str) -> str | None:
    if "\x00" in text:
        return f"{where} holds a NUL character (\\u0000); remove it"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return f"{where} holds a lone surrogate (an unpaired \\ud800-\\udfff escape); send valid UTF-16 pairs"
    return None
