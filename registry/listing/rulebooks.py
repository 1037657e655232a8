"""The shipped rulebooks: TOML files at `rulebooks/<id>/v<version>.toml` in this package, read and checked.

Reading package data is the only I/O; every problem found is reported at once.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Iterator
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

import msgspec

from registry.listing.domain import Rulebook, RulebookInvalid, rulebook_set_problems

_PACKAGE = "registry.listing"
_FOLDER = "rulebooks"
_FILE = re.compile(r"v([1-9][0-9]*)\.toml")


def parse_rulebook(text: str, *, name: str = "<rulebook>") -> Rulebook:
    """A rulebook from TOML text. Floats are refused: exact numbers only (money as integer fen,
    ratios as decimal strings such as "0.08")."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise RulebookInvalid(f"{name}: not valid TOML: {e}", file=name, problems=[str(e)]) from None
    if floats := [f"{path}: {value!r} is a float; write a decimal string or an integer"
                  for path, value in _floats(data)]:
        raise RulebookInvalid(f"{name}: " + "; ".join(floats), file=name, problems=floats)
    try:
        return msgspec.convert(data, Rulebook)
    except msgspec.ValidationError as e:
        cause = e.__cause__
        problems = list(cause.figures.get("problems", [])) if isinstance(cause, RulebookInvalid) else [str(e)]
        raise RulebookInvalid(f"{name}: " + "; ".join(problems), file=name, problems=problems) from None


def _floats(node: Any, path: str = "") -> Iterator[tuple[str, float]]:
    if isinstance(node, float):
        yield path or "<root>", node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _floats(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _floats(value, f"{path}[{i}]")


def shipped_files() -> list[Traversable]:
    """Every `rulebooks/<id>/v<n>.toml` in the package, sorted by path."""
    root = files(_PACKAGE) / _FOLDER
    found = [f for d in root.iterdir() if d.is_dir() for f in d.iterdir() if f.name.endswith(".toml")]
    return sorted(found, key=lambda f: (_parent_name(f), f.name))


def _parent_name(f: Traversable) -> str:
    return str(f).replace("\\", "/").rsplit("/", 2)[-2]


@functools.cache
def shipped_rulebooks() -> tuple[Rulebook, ...]:
    """All shipped rulebook versions, checked together: each file named after its id and version,
    each (id, version) once, later versions effective later."""
    books: list[Rulebook] = []
    problems: list[str] = []
    for f in shipped_files():
        name = f"{_parent_name(f)}/{f.name}"
        try:
            rb = parse_rulebook(f.read_text(encoding="utf-8"), name=name)
        except RulebookInvalid as e:
            problems += [f"{name}: {p}" for p in e.figures.get("problems", [e.detail])]
            continue
        m = _FILE.fullmatch(f.name)
        if _parent_name(f) != rb.id or m is None or int(m.group(1)) != rb.version:
            problems.append(f"{name}: holds {rb.id} v{rb.version}; it belongs at {rb.id}/v{rb.version}.toml")
        books.append(rb)
    problems += rulebook_set_problems(books)
    if problems:
        raise RulebookInvalid("the shipped rulebooks are not valid: " + "; ".join(problems), problems=problems)
    return tuple(sorted(books, key=lambda rb: (rb.id, rb.version)))
