"""The configuration reference, generated from the `Settings` model so it cannot drift.

`wallet-gateway config docs` prints it; `make docs` writes it into `docs/operations.md` between
the markers below, and a test fails when the page and the model disagree. The output depends
only on the model (field order, annotations, defaults, constraints, descriptions), never on
the environment, so every machine renders the same bytes.
"""

from __future__ import annotations

import types
from enum import Enum
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from gateway.settings import Settings

START = "<!-- settings:start -->"
END = "<!-- settings:end -->"
_SIMPLE = {str: "string", int: "integer", float: "number", bool: "boolean", Path: "path"}


class MissingDescription(ValueError):
    """A setting without a description cannot be documented."""


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        name = " or ".join(_type_name(arg) for arg in members)
        return f"{name}, optional" if len(members) < len(get_args(annotation)) else name
    if origin is Literal:
        return "one of " + ", ".join(f"`{value}`" for value in get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return "one of " + ", ".join(f"`{member.value}`" for member in annotation)
    if origin in (list, tuple, set, frozenset):
        return f"{_SIMPLE.get(origin, origin.__name__)} of " + " and ".join(
            _type_name(arg) for arg in get_args(annotation) if arg is not Ellipsis
        )
    if origin is dict:
        key, value = get_args(annotation)
        return f"mapping of {_type_name(key)} to {_type_name(value)} (JSON)"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"JSON object ({annotation.__name__})"
    if annotation is SecretStr:
        return "secret string"
    if annotation in _SIMPLE:
        return _SIMPLE[annotation]
    return getattr(annotation, "__name__", str(annotation))


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model class of a (possibly optional) nested-settings field, else None."""
    if get_origin(annotation) in (Union, types.UnionType):
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        annotation = members[0] if len(members) == 1 else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _bounds(field: FieldInfo) -> str:
    parts = []
    for item in field.metadata:
        if isinstance(item, Ge):
            parts.append(f"≥ {item.ge}")
        elif isinstance(item, Gt):
            parts.append(f"> {item.gt}")
        elif isinstance(item, Le):
            parts.append(f"≤ {item.le}")
        elif isinstance(item, Lt):
            parts.append(f"< {item.lt}")
    return f" ({', '.join(parts)})" if parts else ""


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if value is None:
        return "unset"
    if value == "":
        return "empty"
    if isinstance(value, SecretStr):
        return "(secret)"
    if isinstance(value, BaseModel):
        return "see its fields"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, bool):
        value = str(value).lower()
    return f"`{value}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _rows(model: type[BaseModel], prefix: str, delimiter: str | None) -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        variable = f"{prefix}{name}".upper()
        if not field.description:
            raise MissingDescription(f"setting {variable} has no description")
        nested = _nested_model(field.annotation)
        if nested is not None and delimiter:
            # Nested settings are set field by field: GATEWAY_<FIELD><delimiter><SUBFIELD>.
            rows += _rows(nested, f"{variable}{delimiter}", delimiter)
            continue
        kind = _type_name(field.annotation) + _bounds(field)
        rows.append(
            f"| `{variable}` | {_cell(kind)} | {_cell(_default(field))} "
            f"| {_cell(field.description)} |"
        )
    return rows


def _provider_models() -> list[type[BaseModel]]:
    """Each wallet provider's own settings (`GATEWAY_<ID>_*`), in registry order."""
    from adapters.providers.registry import PROVIDERS

    return [spec.settings for spec in PROVIDERS.values()]


def render_table(model: type[BaseModel] = Settings) -> str:
    """A markdown table of every setting, in the model's (grouped) field order; the gateway's
    table ends with each wallet provider's settings."""
    models = [model, *(_provider_models() if model is Settings else [])]
    rows = []
    for each in models:
        prefix = str(each.model_config.get("env_prefix", ""))
        delimiter = each.model_config.get("env_nested_delimiter")
        rows += _rows(each, prefix, str(delimiter) if delimiter else None)
    lines = ["| Variable | Type | Default | Description |", "|---|---|---|---|", *rows]
    return "\n".join(lines) + "\n"


def replace_section(document: str, table: str) -> str:
    """`document` with the text between the settings markers replaced by `table`."""
    try:
        head, rest = document.split(START, 1)
        _old, tail = rest.split(END, 1)
    except ValueError:
        raise ValueError(f"the document needs the markers {START} and {END}") from None
    return f"{head}{START}\n{table}{END}{tail}"


def current_section(document: str) -> str:
    """The text between the markers, as `render_table` would produce it."""
    try:
        return document.split(START, 1)[1].split(END, 1)[0].removeprefix("\n")
    except IndexError:
        raise ValueError(f"the document needs the markers {START} and {END}") from None
