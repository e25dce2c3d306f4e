"""The Kubernetes API client of one process: from `KUBECONFIG` (or `~/.kube/config`), else the
pod's in-cluster service account. Made once per replica (tools get it through their
`Toolbox.clients`; the backend keeps its own)."""

from __future__ import annotations

import os
from pathlib import Path

from kubernetes import client, config

from serve_app.config import Settings


def api_client(settings: Settings) -> client.ApiClient:
    """A client for the cluster the settings name; raises `RuntimeError` naming what was tried
    when no configuration is found."""
    path = settings.kubeconfig or os.environ.get("KUBECONFIG", "")
    candidates = [path] if path else [str(Path("~/.kube/config").expanduser())]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            made: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=candidate
            )
            return made
    try:
        configuration = client.Configuration()
        config.load_incluster_config(  # type: ignore[no-untyped-call]
            client_configuration=configuration
        )
    except config.ConfigException as exc:
        raise RuntimeError(
            f"no Kubernetes configuration: no kubeconfig at {', '.join(candidates)} and no "
            f"in-cluster service account ({exc})"
        ) from None
    return client.ApiClient(configuration)
