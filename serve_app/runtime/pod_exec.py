"""Pod exec over the Kubernetes WebSocket protocol: the transport of the Kubernetes runtime.

One `PodExec.open` is one `pods/exec` request of the session's pod and container, upgraded to a
WebSocket (`v5.channel.k8s.io`, else `v4.channel.k8s.io`). Every frame starts with its channel:
0 stdin, 1 stdout, 2 stderr, 3 the status (a `v1.Status` in JSON once the command ended), and in
v5 255 the close signal (`[255, 0]` ends stdin). The command is an argv in the request's query,
never a shell string built from input.

The client is blocking (`websocket-client`, the library of the official client): an exec runs on
a thread of the executor's pool, reading with the socket's timeout set to what is left of its
deadline. `ExecCancel.abort` shuts the socket down from another thread (the event loop, when the
tool call is cancelled), which ends the blocked read at once.

Only the connection is reused from the official client (its configuration: host, TLS, bearer
token and its refresh hook, proxy); the request is made here rather than through
`kubernetes.stream.stream`, which swaps the shared `ApiClient.call_api` for the length of a call
and so is not safe on a client shared by concurrent calls.
"""

from __future__ import annotations

import contextlib
import json
import ssl
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubernetes.client import ApiClient
    from websocket import WebSocket

STDIN, STDOUT, STDERR, STATUS = 0, 1, 2, 3
CLOSE_SIGNAL = 255
V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
STDIN_FRAME_BYTES = 64 * 1024
CONNECT_TIMEOUT_SECONDS = 10.0
EXEC_PATH = "/api/v1/namespaces/{namespace}/pods/{name}/exec"


@dataclass(frozen=True)
class PodTarget:
    namespace: str
    pod: str
    container: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.pod} (container {self.container})"


class ExecError(Exception):
    """The exec could not be made or ended without a status (`status`: the HTTP status of a
    refused upgrade, when there was one)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class ExecDeadline(Exception):
    """The exec's deadline passed before it ended."""


class ExecCancelled(Exception):
    """The exec was aborted from another thread."""


class ExecCancel:
    """Aborts an exec from another thread: the socket is shut down, so a blocked read returns."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._socket: WebSocket | None = None
        self.cancelled = False

    def attach(self, ws: WebSocket) -> None:
        with self._lock:
            self._socket = ws
            if self.cancelled:
                ws.abort()  # type: ignore[no-untyped-call]

    def abort(self) -> None:
        with self._lock:
            self.cancelled = True
            if self._socket is not None:
                self._socket.abort()  # type: ignore[no-untyped-call]


def exit_code(status: dict[str, Any] | None) -> int | None:
    """The exit code a `v1.Status` of the status channel reports: 0 for Success, the `ExitCode`
    cause of a `NonZeroExitCode` failure; None for any other failure."""
    if status is None:
        return None
    if status.get("status") == "Success":
        return 0
    details = status.get("details") or {}
    for cause in details.get("causes") or []:
        if cause.get("reason") == "ExitCode":
            with contextlib.suppress(TypeError, ValueError):
                return int(cause.get("message"))
    return None


class ExecStream:
    """One running exec. Iterate `frames()` for (channel, bytes) of stdout and stderr until the
    command ended; `status` is then its `v1.Status` (None when the stream ended without one)."""

    def __init__(
        self, ws: WebSocket, target: PodTarget, deadline: float, cancel: ExecCancel | None = None
    ) -> None:
        self._ws = ws
        self._target = target
        self._deadline = deadline
        self._cancel = cancel
        self.protocol: str = ws.subprotocol or V4
        self.status: dict[str, Any] | None = None
        self._status_bytes = bytearray()
        self._writer: threading.Thread | None = None
        self._write_error: BaseException | None = None

    @property
    def exit_code(self) -> int | None:
        return exit_code(self.status)

    # stdin --------------------------------------------------------------------------------------

    def send_stdin(self, data: bytes) -> None:
        """Send `data` on stdin from a helper thread (so that a command writing much output
        before it reads its input cannot block both sides), then close stdin (v5)."""

        def write() -> None:
            try:
                view = memoryview(data)
                for start in range(0, len(view), STDIN_FRAME_BYTES):
                    self._send(bytes([STDIN]) + view[start : start + STDIN_FRAME_BYTES])
                if self.protocol == V5:
                    self._send(bytes([CLOSE_SIGNAL, STDIN]))
            except BaseException as exc:  # reported only if the exec also fails to end
                self._write_error = exc

        if not data and self.protocol != V5:
            return
        self._writer = threading.Thread(target=write, name="pod-exec-stdin", daemon=True)
        self._writer.start()

    def _send(self, payload: bytes) -> None:
        from websocket import ABNF

        self._ws.send(payload, opcode=ABNF.OPCODE_BINARY)

    # output -------------------------------------------------------------------------------------

    def frames(self) -> Iterator[tuple[int, bytes]]:
        """(channel, data) of stdout (1) and stderr (2) in arrival order, until the command ended.
        Raises `ExecDeadline` at the deadline, `ExecCancelled` when aborted, `ExecError` when the
        connection broke."""
        from websocket import (
            ABNF,
            WebSocketConnectionClosedException,
            WebSocketException,
            WebSocketTimeoutException,
        )

        while True:
            if self._cancel is not None and self._cancel.cancelled:
                raise ExecCancelled()
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                raise ExecDeadline()
            try:
                self._ws.settimeout(remaining)
                opcode, frame = self._ws.recv_data_frame(False)
            except (WebSocketTimeoutException, TimeoutError):
                raise ExecDeadline() from None
            except (WebSocketConnectionClosedException, OSError, WebSocketException) as exc:
                if self.status is not None:
                    return
                raise self._broken(exc) from None
            if opcode == ABNF.OPCODE_CLOSE:
                self._finish_status()
                return
            if opcode not in (ABNF.OPCODE_BINARY, ABNF.OPCODE_TEXT):
                continue
            data = frame.data if isinstance(frame.data, bytes) else bytes(frame.data)
            if not data:
                continue
            channel, payload = data[0], data[1:]
            if channel in (STDOUT, STDERR):
                if payload:
                    yield channel, payload
            elif channel == STATUS:
                self._status_bytes += payload
                self._finish_status(partial=True)
            # v5 close signals from the server (a channel closed) and resize need nothing here.

    def _finish_status(self, *, partial: bool = False) -> None:
        if not self._status_bytes:
            return
        try:
            parsed = json.loads(bytes(self._status_bytes))
        except ValueError:
            if partial:
                return  # more of it in the next frame
            parsed = {"status": "Failure", "message": bytes(self._status_bytes).decode("replace")}
        if isinstance(parsed, dict):
            self.status = parsed

    def _broken(self, exc: BaseException) -> BaseException:
        if self._cancel is not None and self._cancel.cancelled:
            return ExecCancelled()
        return ExecError(f"the exec stream to {self._target} broke: {exc or type(exc).__name__}")

    def drain(self) -> None:
        """Read (and drop) the rest of the output until the command ended."""
        for _ in self.frames():
            pass

    def close(self) -> None:
        """Close the stream (the API server then ends the exec's connection to the kubelet)."""
        with contextlib.suppress(Exception):
            self._ws.close(timeout=0)
        with contextlib.suppress(Exception):
            self._ws.shutdown()  # type: ignore[no-untyped-call]
        if self._writer is not None:
            self._writer.join(timeout=1.0)


class PodExec:
    """Execs in one pod's container through one `ApiClient` (shared, thread-safe use)."""

    def __init__(
        self,
        api: ApiClient,
        target: PodTarget,
        *,
        protocols: Sequence[str] = (V5, V4),
        connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
    ) -> None:
        self._api = api
        self.target = target
        self._protocols = list(protocols)
        self._connect_timeout = connect_timeout

    def _url_and_headers(self, argv: Sequence[str], stdin: bool) -> tuple[str, list[str]]:
        from kubernetes.stream.ws_client import get_websocket_url

        query: list[tuple[str, Any]] = [
            ("command", list(argv)),
            ("container", self.target.container),
            ("stdin", stdin),
            ("stdout", True),
            ("stderr", True),
            ("tty", False),
        ]
        _, url, headers, _, _ = self._api.param_serialize(
            method="GET",
            resource_path=EXEC_PATH,
            path_params={"namespace": self.target.namespace, "name": self.target.pod},
            query_params=query,
            header_params={},
            auth_settings=["BearerToken"],
            collection_formats={"command": "multi"},
        )
        header = [
            f"{name}: {value}" for name, value in headers.items() if name.lower() == "authorization"
        ]
        return get_websocket_url(url), header  # type: ignore[no-untyped-call]

    def _ssl_options(self, url: str) -> dict[str, Any]:
        """TLS options as the official client's own WebSocket calls make them."""
        import certifi

        configuration = self._api.configuration
        options: dict[str, Any]
        if url.startswith("wss://") and configuration.verify_ssl:
            options = {
                "cert_reqs": ssl.CERT_REQUIRED,
                "ca_certs": configuration.ssl_ca_cert or certifi.where(),
            }
            if configuration.assert_hostname is not None:
                options["check_hostname"] = configuration.assert_hostname
        else:
            options = {"cert_reqs": ssl.CERT_NONE}
        if configuration.cert_file:
            options["certfile"] = configuration.cert_file
        if configuration.key_file:
            options["keyfile"] = configuration.key_file
        if configuration.tls_server_name:
            options["server_hostname"] = configuration.tls_server_name
        return options

    @contextlib.contextmanager
    def open(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None,
        deadline: float,
        cancel: ExecCancel | None = None,
    ) -> Iterator[ExecStream]:
        """Start `argv` in the pod; `stdin` (when not None) is sent and then closed. The stream is
        closed on exit."""
        from kubernetes.stream.ws_client import websocket_proxycare
        from websocket import WebSocket, WebSocketBadStatusException, WebSocketException

        url, header = self._url_and_headers(argv, stdin is not None)
        options: dict[str, Any] = {
            "header": header,
            "subprotocols": self._protocols,
            "timeout": max(min(self._connect_timeout, deadline - time.monotonic()), 0.001),
        }
        configuration = self._api.configuration
        if configuration.proxy or configuration.proxy_headers:
            options = websocket_proxycare(options, configuration, url, None)  # type: ignore[no-untyped-call]
        ws = WebSocket(sslopt=self._ssl_options(url), skip_utf8_validation=True)
        if cancel is not None:
            cancel.attach(ws)
        try:
            ws.connect(url, **options)  # type: ignore[no-untyped-call]
        except WebSocketBadStatusException as exc:
            ws.shutdown()  # type: ignore[no-untyped-call]
            status = getattr(exc, "status_code", None)
            raise ExecError(
                f"exec in {self.target} refused (HTTP {status}): {_reason(exc)}", status=status
            ) from None
        except (WebSocketException, OSError) as exc:
            ws.shutdown()  # type: ignore[no-untyped-call]
            if cancel is not None and cancel.cancelled:
                raise ExecCancelled() from None
            if time.monotonic() >= deadline:
                raise ExecDeadline() from None
            raise ExecError(f"cannot reach {self.target}: {exc or type(exc).__name__}") from None
        if cancel is not None and cancel.cancelled:
            ws.shutdown()  # type: ignore[no-untyped-call]
            raise ExecCancelled()
        stream = ExecStream(ws, self.target, deadline, cancel)
        try:
            if stdin is not None:
                stream.send_stdin(stdin)
            yield stream
        finally:
            stream.close()


def _reason(exc: Exception) -> str:
    """The message of a refused upgrade (the API server answers a `v1.Status`)."""
    body = getattr(exc, "resp_body", None)
    if isinstance(body, bytes | str):
        with contextlib.suppress(ValueError):
            parsed = json.loads(body)
            if isinstance(parsed, dict) and parsed.get("message"):
                return str(parsed["message"])
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        return text.strip()[:500] or str(exc)
    return str(exc)
