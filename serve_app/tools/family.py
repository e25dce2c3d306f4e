"""What a tool family is made with. A family is either a list of tools that need nothing, or a
factory that receives a `Toolbox` — the settings and the replica's long-lived clients — and
returns its tools, so that a family with a network client shares one pool per executor replica
instead of building a client per call.

Clients are made on first use, by the handler that needs one: the session manager, which makes
the families only to read their capabilities, never makes (or imports) a client.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from serve_app.config import Settings
from serve_app.tools.base import Tool

log = logging.getLogger(__name__)
T = TypeVar("T")


class Clients:
    """The long-lived clients of one replica's tools (connection pools), each made on first use
    by `make`, shared by every call after, and closed with the replica."""

    def __init__(self, *, usable: bool = True) -> None:
        self._usable = usable
        self._made: dict[Hashable, Any] = {}

    def get(self, key: Hashable, make: Callable[[], T]) -> T:
        """The client for `key`, made now if it is the first use."""
        if not self._usable:
            raise RuntimeError("tool clients are made only where tools run (executor replicas)")
        if key not in self._made:
            self._made[key] = make()
        client: T = self._made[key]
        return client

    def __len__(self) -> int:
        return len(self._made)

    async def close(self) -> None:
        """Close every client made (`aclose`, `close` or `disconnect`, awaited when async)."""
        made, self._made = self._made, {}
        for key, client in made.items():
            for name in ("aclose", "close", "disconnect"):
                closer = getattr(client, name, None)
                if callable(closer):
                    try:
                        result = closer()
                        if inspect.isawaitable(result):
                            await asyncio.wait_for(result, 5)
                    except Exception:
                        log.exception("could not close tool client %r", key)
                    break


@dataclass(frozen=True)
class Toolbox:
    """What a family's factory receives."""

    settings: Settings
    clients: Clients = field(default_factory=Clients)

    @classmethod
    def for_catalog(cls, settings: Settings) -> Toolbox:
        """A toolbox for reading capabilities only: asking it for a client is an error."""
        return cls(settings=settings, clients=Clients(usable=False))


KUBERNETES_API = "kubernetes.api"
"""The key of the replica's Kubernetes API client in `Clients`: one client shared by the runner
pods' runtime and the k8s.* tools."""

Factory = Callable[[Toolbox], Sequence[Tool]]
Family = Sequence[Tool] | Factory


def tools_of(family: object, toolbox: Toolbox, name: str) -> list[Tool]:
    """The tools of a family (a list of tools or a factory), checked."""
    made = family(toolbox) if callable(family) else family
    if not isinstance(made, Sequence) or not all(isinstance(tool, Tool) for tool in made):
        raise ValueError(f"{name} is neither a list of tools nor a factory returning one")
    return list(made)
