"""`make run`'s launcher: what `serve run CONFIG.yaml` does, but it fails fast.

    .venv/bin/python scripts/serve_run.py ray_config/local.yaml [--timeout 300]

`serve run` with a config file (Ray 2.60) submits the config and then waits forever, exit status
0 included, even when the application fails to build (a bad setting, Valkey unreachable) or a
replica never starts. This launcher makes the same calls `serve run` makes (`ray.init`, start
Serve with the file's HTTP/gRPC/proxy options, submit the config), then polls `serve.status()`:

- every application RUNNING: says so, and keeps serving in the foreground until Ctrl-C (SIGINT)
  or SIGTERM, which shut Serve and the local Ray down as `serve run` does;
- an application DEPLOY_FAILED or UNHEALTHY, or not RUNNING within `--timeout` seconds: prints
  the reason (the application's and its deployments' messages), shuts Ray down and exits 1.

Ray 2.60 is pinned in pyproject.toml; `_private_api.serve_start` and
`ServeControllerClient.deploy_apps` are the calls the `serve run` command itself makes.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

POLL_S = 1.0
FAILED = ("DEPLOY_FAILED", "UNHEALTHY")


class Stop(Exception):
    """SIGTERM: leave the serving loop and shut down as on Ctrl-C."""


def say(message: str) -> None:
    print(f"serve_run: {message}", file=sys.stderr, flush=True)


def status_name(status: Any) -> str:
    return str(getattr(status, "value", status))


def describe(name: str, application: Any) -> str:
    """The application's status and message, then each deployment that is not healthy."""
    lines = [f"application {name!r}: {status_name(application.status)}"]
    if application.message:
        lines.append(application.message.rstrip())
    for deployment_name, deployment in application.deployments.items():
        if status_name(deployment.status) != "HEALTHY":
            detail = f"deployment {deployment_name}: {status_name(deployment.status)}"
            if deployment.message:
                detail += f": {deployment.message.rstrip()}"
            lines.append(detail)
    return "\n".join(lines)


def reason(application: Any) -> str:
    """The last line of the application's message: the exception, for a build that failed."""
    texts = [application.message or ""]
    texts += [deployment.message or "" for deployment in application.deployments.values()]
    for text in texts:
        lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
        if lines:
            return lines[-1]
    return status_name(application.status)


def wait_until_running(names: list[str], timeout_s: float) -> tuple[bool, str]:
    """(True, "") once every application runs; (False, why) on a failure or the timeout."""
    from ray import serve

    deadline = time.monotonic() + timeout_s
    applications: dict[str, Any] = {}
    while True:
        applications = serve.status().applications
        for name in names:
            application = applications.get(name)
            if application is not None and status_name(application.status) in FAILED:
                return False, (
                    f"{describe(name, application)}\n"
                    f"application {name!r} {status_name(application.status)}: {reason(application)}"
                )
        running = [
            name
            for name in names
            if name in applications and status_name(applications[name].status) == "RUNNING"
        ]
        if len(running) == len(names):
            return True, ""
        if time.monotonic() >= deadline:
            states = [
                describe(name, applications[name])
                if name in applications
                else f"application {name!r}: not started"
                for name in names
            ]
            return False, "\n".join([*states, f"not RUNNING after {timeout_s:g} s"])
        time.sleep(POLL_S)


def stop_on_sigterm() -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        raise Stop

    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", type=Path, help="Serve config file (ray_config/local.yaml)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=float(os.environ.get("SERVE_RUN_TIMEOUT_S", "300")),
        help="seconds to wait for RUNNING (default 300, or SERVE_RUN_TIMEOUT_S)",
    )
    args = parser.parse_args(argv)

    import ray
    from ray import serve
    from ray.serve._private import api as private_api
    from ray.serve._private.constants import SERVE_NAMESPACE
    from ray.serve.config import gRPCOptions
    from ray.serve.schema import ServeDeploySchema

    config = ServeDeploySchema.model_validate(yaml.safe_load(args.config.read_text()))
    names = [application.name for application in config.applications]
    serving = False
    try:
        ray.init(address=os.environ.get("RAY_ADDRESS") or "local", namespace=SERVE_NAMESPACE)
        stop_on_sigterm()  # after ray.init, which installs a SIGTERM handler of its own
        client = private_api.serve_start(
            http_options=config.http_options.model_dump(),
            proxy_location=config.proxy_location,
            grpc_options=gRPCOptions(**config.grpc_options.model_dump()),
            controller_options=config.controller_options,
        )
        client.deploy_apps(config, _blocking=False)
        say(f"submitted {args.config}; waiting up to {args.timeout:g} s for {', '.join(names)}")
        ok, why = wait_until_running(names, args.timeout)
        if not ok:
            details, _, verdict = why.rpartition("\n")
            if details:
                print(details, file=sys.stderr)
            say(f"FAILED: {verdict}")
            return 1
        http = config.http_options
        say(f"RUNNING on http://{http.host}:{http.port} (Ctrl-C stops)")
        serving = True
        while True:
            time.sleep(10)
    except (KeyboardInterrupt, Stop):
        say("stopping")
        if serving:
            serve.shutdown()
        return 0 if serving else 130
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        ray.shutdown()


if __name__ == "__main__":
    sys.exit(main())
