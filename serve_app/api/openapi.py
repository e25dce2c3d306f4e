"""The finishing pass over the generated OpenAPI document, in one place: OpenAPI 3 links from the
responses that return an id to every operation that takes that id in its path, and no 422
responses (a request FastAPI cannot parse is answered 400 `invalid_argument`, never 422)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

Document = dict[str, Any]

# (method, path, status) of a response that returns an id → (path parameter, where in its body).
# The expressions follow the response envelopes of `api/schemas.py`: `{"session": Session}` and
# `{"invocation": Invocation}`.
LINK_SOURCES: dict[tuple[str, str, str], tuple[str, str]] = {
    ("post", "/v1/sessions", "201"): ("session_id", "$response.body#/session/id"),
    ("post", "/v1/sessions/{session_id}/tools/{tool_name}/invoke", "200"): (
        "invocation_id",
        "$response.body#/invocation/id",
    ),
}
UNUSED_COMPONENTS = ("HTTPValidationError", "ValidationError")


def install_openapi(app: FastAPI) -> None:
    """Make `app.openapi()` (and so `/openapi.json`) return the finished document."""
    generate: Callable[[], Document] = app.openapi

    def openapi() -> Document:
        if app.openapi_schema is None:
            app.openapi_schema = finish(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def finish(document: Document) -> Document:
    drop_unanswered_422(document)
    add_links(document)
    return document


def add_links(document: Document) -> None:
    """A link, named after its target (`GetSession`, `InvokeTool`, …), from each source response
    to each operation whose path takes the source's id."""
    paths: dict[str, dict[str, Any]] = document.get("paths", {})
    for (method, path, status), (parameter, expression) in LINK_SOURCES.items():
        response = paths[path][method]["responses"][status]
        links = response.setdefault("links", {})
        for target_path, operations in paths.items():
            if "{" + parameter + "}" not in target_path:
                continue
            for operation in operations.values():
                links[link_name(operation)] = {
                    "operationId": operation["operationId"],
                    "parameters": {parameter: expression},
                    "description": f"`{parameter}` is `{expression.split('#')[1]}` "
                    "of this response",
                }


def link_name(operation: dict[str, Any]) -> str:
    """`Get Session` → `GetSession` (FastAPI's summary is the handler's name in title case)."""
    return "".join(word[:1].upper() + word[1:] for word in operation["summary"].split())


def drop_unanswered_422(document: Document) -> None:
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            operation.get("responses", {}).pop("422", None)
    schemas = document.get("components", {}).get("schemas", {})
    for name in UNUSED_COMPONENTS:
        schemas.pop(name, None)
