"""The floor Ray sets on this machine: the same three-deployment topology as the application
(FastAPI ingress → manager → executor) with no work in it, answering the same invoke route."""

from typing import Any

from fastapi import FastAPI, Request
from ray import serve
from ray.serve import Application
from ray.serve.handle import DeploymentHandle

echo_api = FastAPI()


@serve.deployment(
    name="EchoExecutor", max_ongoing_requests=256, ray_actor_options={"num_cpus": 0.25}
)
class EchoExecutor:
    async def execute(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"output": body.get("args")}


@serve.deployment(
    name="EchoManager", max_ongoing_requests=1024, ray_actor_options={"num_cpus": 0.25}
)
class EchoManager:
    def __init__(self, executor: DeploymentHandle) -> None:
        self._executor = executor

    async def invoke(self, session_id: str, tool: str, body: dict[str, Any]) -> dict[str, Any]:
        result = await self._executor.execute.remote(body)
        return {"invocation": {"session_id": session_id, "tool_name": tool, **result}}


@serve.deployment(
    name="EchoIngress", max_ongoing_requests=1024, ray_actor_options={"num_cpus": 0.25}
)
@serve.ingress(echo_api)
class EchoIngress:
    def __init__(self, manager: DeploymentHandle) -> None:
        self._manager = manager

    @echo_api.post("/v1/sessions/{session_id}/tools/{tool}/invoke")
    async def invoke(self, session_id: str, tool: str, request: Request) -> dict[str, Any]:
        result: dict[str, Any] = await self._manager.invoke.remote(
            session_id, tool, await request.json()
        )
        return result


def build_echo() -> Application:
    app: Application = EchoIngress.bind(EchoManager.bind(EchoExecutor.bind()))
    return app
