"""The writer's memory of hot state, so that a frequent command can decide without reading.

A command on the hot path (a warrant transfer) needs the same few facts again and again: the
series, the two accounts and their qualifications, balances, lots, holders. Reading them for
every command costs database round trips on the one serialized path of the system. The writer
keeps them instead, and they stay right because every change to them is an event that passes
through this very writer:

- each appended event is shown to the watchers registered for its type, which bring the memory
  up to date (or forget what the event changes);
- when another process appended (a second service instance: the head moved under the writer),
  its events are read, checked to chain from the writer's head, and shown to the same watchers;
- the memory is forgotten whole whenever the writer cannot vouch for it: a batch failed, a command
  failed after appending, the connection was lost, or another process appended more than the
  writer will read to catch up.

The projection tables stay the truth; what is remembered is always what a replay would say.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg

from registry.eventlog.projection import EventRecord

Watcher = Callable[["Memo", EventRecord], None]
_WATCHERS: dict[str, list[Watcher]] = {}
Prefetcher = Callable[[asyncpg.Connection, "Memo", Sequence[Any]], Awaitable[None]]
_PREFETCHERS: list[Prefetcher] = []
MEMO_LIMIT = 100_000
"""Entries kept before the memory is dropped and rebuilt on demand (bounds the service's size)."""


def watches(*prefixes: str) -> Callable[[Watcher], Watcher]:
    """Register `fn(memo, event)` for event types starting with any of `prefixes` (e.g. "account.")."""
    def register(fn: Watcher) -> Watcher:
        for prefix in prefixes:
            _WATCHERS.setdefault(prefix, []).append(fn)
        return fn
    return register


def prefetches(fn: Prefetcher) -> Prefetcher:
    """Register `fn(conn, memo, handlers)`: before a batch runs, load in a few queries what the batch's
    memo-only handlers will ask for and the memo lacks (instead of a few queries per command)."""
    _PREFETCHERS.append(fn)
    return fn


async def prefetch(conn: asyncpg.Connection, memo: Memo, handlers: Sequence[Any]) -> None:
    if handlers:
        for fn in _PREFETCHERS:
            await fn(conn, memo, handlers)


class Memo:
    """Key → value, namespaced by the feature that owns the key (a tuple whose first item names it)."""

    def __init__(self) -> None:
        self._data: dict[tuple[Any, ...], Any] = {}

    def get(self, key: tuple[Any, ...]) -> Any:
        """The remembered value, None when the writer does not remember it."""
        return self._data.get(key)

    def put(self, key: tuple[Any, ...], value: Any) -> None:
        if len(self._data) >= MEMO_LIMIT:
            self._data.clear()
        self._data[key] = value

    def forget(self, key: tuple[Any, ...]) -> None:
        self._data.pop(key, None)

    def forget_all(self, namespace: str) -> None:
        for key in [k for k in self._data if k[0] == namespace]:
            del self._data[key]

    def clear(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)

    def observe(self, event: EventRecord) -> None:
        """Show an appended event to every watcher of its type."""
        if not self._data:
            return
        for prefix, watchers in _WATCHERS.items():
            if event.type.startswith(prefix):
                for watcher in watchers:
                    watcher(self, event)
