"""A small thread-safe least-recently-used store: the caches of analyses, decoded audio, head
models and channel maps."""

from __future__ import annotations

from collections import OrderedDict
from threading import Lock
from typing import Any, Callable, Hashable


class LRU:
    """Keeps the ``capacity`` values used last, with hit and miss counters."""

    def __init__(self, capacity: int):
        self.capacity = int(capacity)
        self._items: OrderedDict = OrderedDict()
        self._lock = Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The value kept for ``key`` (now the most recently used), else ``default``."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key]
            self.misses += 1
            return default

    def put(self, key: Hashable, value: Any) -> None:
        """Keep ``value`` for ``key``, dropping the least recently used beyond capacity."""
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The value kept for ``key``, else ``compute()`` (run outside the lock, so slow work
        for one key does not hold up the others) kept and returned."""
        missing = object()
        value = self.get(key, missing)
        if value is missing:
            value = compute()
            self.put(key, value)
        return value

    def __len__(self) -> int:
        return len(self._items)

    def stats(self) -> dict:
        """{"hits", "misses", "size"}: for the server's /stats."""
        return {"hits": self.hits, "misses": self.misses, "size": len(self._items)}
