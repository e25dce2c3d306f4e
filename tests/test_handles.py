"""The interface carried across a handle is declared once: the proxy and the replica's methods
are derived from the Protocol. The handle here is a stand-in that calls the replica object in
the same process (no Ray, no pickling); `tests/e2e` drives the real handles through Serve."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

import pytest

from serve_app.api.ports import SessionManagerPort
from serve_app.domain.errors import ErrorCode, ServiceError
from serve_app.handles import methods, proxy, serve_methods


class Greeter(Protocol):
    async def greet(self, session_id: str, name: str) -> str: ...

    async def count(self) -> int: ...


class Service:
    async def greet(self, session_id: str, name: str) -> str:
        if not name:
            raise ServiceError(ErrorCode.INVALID_ARGUMENT, "name is required")
        return f"{session_id}: hello {name}"

    async def count(self) -> int:
        return 3


@serve_methods(Greeter, target="_service", span_prefix="Greeter")
class Replica:
    def __init__(self) -> None:
        self._service = Service()
        self.contexts: list[dict[str, str] | None] = []

    async def count(self, context: dict[str, str] | None = None) -> int:
        self.contexts.append(context)
        return 42


class Method:
    def __init__(self, replica: Replica, name: str) -> None:
        self._call = getattr(replica, name)

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(*args, **kwargs)


class Handle:
    def __init__(self, replica: Replica) -> None:
        self._replica = replica

    def __getattr__(self, name: str) -> Method:
        return Method(self._replica, name)


def test_the_protocol_lists_its_methods() -> None:
    assert methods(Greeter) == ["greet", "count"]
    assert "invoke" in methods(SessionManagerPort)
    assert "create_session" in methods(SessionManagerPort)


def test_calls_cross_the_handle_and_errors_come_back_as_themselves() -> None:
    replica = Replica()
    greeter: Greeter = proxy(Greeter, Handle(replica))  # type: ignore[arg-type, type-abstract]

    async def scenario() -> None:
        assert await greeter.greet("s1", "ada") == "s1: hello ada"
        assert await greeter.greet(session_id="s2", name="bob") == "s2: hello bob"
        with pytest.raises(ServiceError) as caught:
            await greeter.greet("s1", "")
        assert caught.value.code is ErrorCode.INVALID_ARGUMENT
        # A method the replica defines itself is kept, and receives the call context.
        assert await greeter.count() == 42
        assert replica.contexts == [{}]

    asyncio.run(scenario())


def test_every_session_manager_method_is_served_by_the_replica() -> None:
    from serve_app.app import SessionManagerReplica

    for name in methods(SessionManagerPort):
        assert callable(getattr(SessionManagerReplica, name)), name
