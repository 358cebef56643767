"""One way to listen to a service: ``subscribe`` returns the function that unsubscribes.

The download service, the settings store and the generation service each publish through a
:class:`Listeners`; a listener that raises is logged and never breaks the publisher or the
other listeners. No textual import (the App republishes to screens through it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class Listeners(Generic[T]):
    def __init__(self, name: str) -> None:
        self.name = name
        self._callbacks: list[Callable[[T], object]] = []

    def subscribe(self, callback: Callable[[T], object]) -> Callable[[], None]:
        """Call ``callback(value)`` on every publish until the returned function is called."""
        self._callbacks.append(callback)

        def unsubscribe() -> None:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

        return unsubscribe

    def publish(self, value: T) -> None:
        for callback in list(self._callbacks):
            try:
                callback(value)
            except Exception:  # a listener must never break the service or the others
                log.exception("%s listener failed", self.name)

    def __len__(self) -> int:
        return len(self._callbacks)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(list(self._callbacks))
