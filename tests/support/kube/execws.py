"""Pod exec over WebSocket, as the API server and kubelet speak it to `kubernetes.stream.stream`.

Handshake: `GET /api/v1/namespaces/{ns}/pods/{name}/exec?command=…&command=…&stdin=…&stdout=…
&stderr=…&tty=…&container=…` with `Upgrade: websocket` and `Sec-WebSocket-Protocol` offering
`v5.channel.k8s.io` and/or `v4.channel.k8s.io`; v5 is chosen whenever it is offered.

Frames are binary; the first byte is the channel: 0 stdin (client → server), 1 stdout, 2 stderr,
3 the error/status channel (server → client), 4 resize (ignored). v5 adds 255, "close a
channel": the client sends `[255, 0]` to end stdin (the command then reads EOF); under v4 stdin
ends only with the connection. On open the server sends one empty frame on the lowest channel it
writes (as the real one does). When the command has exited and its output is sent, the server
writes channel 3 and closes:

- exit 0: `{"metadata":{},"status":"Success"}`
- exit n: `{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit
  code: error executing command [argv…], exit code n","reason":"NonZeroExitCode",
  "details":{"causes":[{"reason":"ExitCode","message":"n"}]}}`
- an executable not found in the container: the runtime's `InternalError` (code 500, the cause's
  message is text, not a number: `WSClient.returncode` raises on it, as against a real cluster).

A client that closes the connection before the command ends gets it killed (with everything it
started, process groups that left with setsid included): the stand-in does this so that a
runtime's deadline is enforced; a real kubelet does not promise it. Output is sent as it comes,
in frames of at most 64 KiB that never split a UTF-8 character (the client decodes each frame on
its own). No TTY: `tty=true` with `stderr=true` is refused as on a real server, `tty=true` alone
runs without a terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web

if TYPE_CHECKING:
    from tests.support.kube.kubelet import ContainerRun, Kubelet, PodRuntime

V4 = "v4.channel.k8s.io"
V5 = "v5.channel.k8s.io"
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
_FRAME = 65536
_DRAIN_AFTER_EXIT_S = 2.0


@dataclass
class ExecRecord:
    """One exec the stand-in served (for assertions: `Cluster.execs`)."""

    namespace: str
    pod: str
    container: str
    command: list[str]
    protocol: str
    stdin: bool
    exit_code: int | None = None
    """None while it runs, when the client left first, or when it could not start."""
    client_closed: bool = False
    error: str | None = None
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None


def choose_protocol(header: str) -> str | None:
    offered = {p.strip() for p in header.split(",") if p.strip()}
    for protocol in (V5, V4):
        if protocol in offered:
            return protocol
    return None


def _status_frame(status: dict[str, object]) -> bytes:
    return bytes([ERROR]) + json.dumps(status, separators=(",", ":")).encode()


def success_status() -> dict[str, object]:
    return {"metadata": {}, "status": "Success"}


def exit_status(argv: list[str], code: int) -> dict[str, object]:
    return {
        "metadata": {},
        "status": "Failure",
        "message": (
            "command terminated with non-zero exit code: error executing command "
            f"[{' '.join(argv)}], exit code {code}"
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def not_found_status(executable: str) -> dict[str, object]:
    cause = (
        "error executing command in container: failed to exec in container: failed to start "
        "exec: OCI runtime exec failed: exec failed: unable to start container process: exec: "
        f'"{executable}": executable file not found in $PATH: unknown'
    )
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"Internal error occurred: {cause}",
        "reason": "InternalError",
        "details": {"causes": [{"message": cause}]},
        "code": 500,
    }


def utf8_cut(data: bytes) -> int:
    """Where to cut `data` so that no UTF-8 sequence is split (the rest waits for more)."""
    end = len(data)
    start = max(0, end - 3)
    for index in range(end - 1, start - 1, -1):
        byte = data[index]
        if byte & 0xC0 == 0x80:  # a continuation byte: keep looking for the lead
            continue
        if byte & 0x80 == 0:
            return end
        length = 2 if byte & 0xE0 == 0xC0 else 3 if byte & 0xF0 == 0xE0 else 4
        return index if end - index < length else end
    return end


class ExecSession:
    def __init__(
        self,
        kubelet: Kubelet,
        pod: PodRuntime,
        container: ContainerRun,
        argv: list[str],
        *,
        stdin: bool,
        stdout: bool,
        stderr: bool,
        protocol: str,
        record: ExecRecord,
    ) -> None:
        self.kubelet = kubelet
        self.pod = pod
        self.container = container
        self.argv = argv
        self.want_stdin = stdin
        self.want_stdout = stdout
        self.want_stderr = stderr
        self.protocol = protocol
        self.record = record
        self.ws = web.WebSocketResponse(
            protocols=(protocol,), max_msg_size=0, timeout=2.0, compress=False
        )
        self._send_lock = asyncio.Lock()

    async def serve(self, request: web.BaseRequest) -> web.WebSocketResponse:
        await self.ws.prepare(request)
        try:
            await self._serve()
        except Exception as error:  # after the upgrade, report it the way a kubelet would
            self.record.error = repr(error)
            cause = f"stand-in exec failed: {error!r}"
            await self._finish(
                _status_frame(
                    {
                        "metadata": {},
                        "status": "Failure",
                        "message": f"Internal error occurred: {cause}",
                        "reason": "InternalError",
                        "details": {"causes": [{"message": cause}]},
                        "code": 500,
                    }
                )
            )
        finally:
            self.record.finished = time.monotonic()
        return self.ws

    async def _send(self, channel: int, data: bytes) -> bool:
        try:
            async with self._send_lock:
                await self.ws.send_bytes(bytes([channel]) + data)
        except (ConnectionError, RuntimeError):
            return False
        return True

    async def _serve(self) -> None:
        first = STDOUT if self.want_stdout else STDERR if self.want_stderr else ERROR
        await self._send(first, b"")
        if not self.kubelet.find_executable(self.container, self.argv[0]):
            self.record.error = f"executable file not found: {self.argv[0]}"
            await self._finish(_status_frame(not_found_status(self.argv[0])))
            return
        pipe = asyncio.subprocess.PIPE
        devnull = asyncio.subprocess.DEVNULL
        process = await asyncio.create_subprocess_exec(
            *self.kubelet.exec_argv(self.container, self.argv),
            stdin=pipe if self.want_stdin else devnull,
            stdout=pipe if self.want_stdout else devnull,
            stderr=pipe if self.want_stderr else devnull,
            env=self.container.env,
            start_new_session=True,
        )
        from tests.support.kube.kubelet import ExecProcess

        running = ExecProcess(process)
        self.pod.execs.add(running)
        client_gone = asyncio.Event()
        reader = asyncio.create_task(self._read_client(process, client_gone))
        pumps = [
            asyncio.create_task(self._pump(stream, channel))
            for stream, channel in ((process.stdout, STDOUT), (process.stderr, STDERR))
            if stream is not None
        ]
        exited = asyncio.create_task(process.wait())
        gone = asyncio.create_task(client_gone.wait())
        try:
            await asyncio.wait({exited, gone}, return_when=asyncio.FIRST_COMPLETED)
            if not exited.done():
                self.record.client_closed = True
                running.kill()
                await exited
                for pump in pumps:
                    pump.cancel()
                return
            # The command has exited: send what its pipes still hold, then the status.
            if pumps:
                _, late = await asyncio.wait(pumps, timeout=_DRAIN_AFTER_EXIT_S)
                for pump in late:
                    pump.cancel()
            if client_gone.is_set():
                self.record.client_closed = True
                return
            code = _exit_code(exited.result())
            self.record.exit_code = code
            status = success_status() if code == 0 else exit_status(self.argv, code)
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await self._finish(_status_frame(status))
        finally:
            gone.cancel()
            reader.cancel()
            if process.returncode is None:
                running.kill()
                await process.wait()
            self.pod.execs.discard(running)

    async def _finish(self, status_frame: bytes) -> None:
        try:
            async with self._send_lock:
                await self.ws.send_bytes(status_frame)
            await self.ws.close()
        except (ConnectionError, RuntimeError):
            pass

    async def _pump(self, stream: asyncio.StreamReader | None, channel: int) -> None:
        assert stream is not None
        pending = b""
        client_there = True
        while chunk := await stream.read(_FRAME):
            data = pending + chunk
            cut = utf8_cut(data)
            pending = data[cut:]
            if cut and client_there:
                client_there = await self._send(channel, data[:cut])
        if pending and client_there:
            await self._send(channel, pending)

    async def _read_client(
        self, process: asyncio.subprocess.Process, client_gone: asyncio.Event
    ) -> None:
        stdin = process.stdin
        try:
            async for message in self.ws:
                if message.type == WSMsgType.BINARY:
                    data: bytes = message.data
                elif message.type == WSMsgType.TEXT:
                    text: str = message.data
                    data = bytes([ord(text[0]) & 0xFF]) + text[1:].encode() if text else b""
                else:
                    continue
                if not data:
                    continue
                channel, payload = data[0], data[1:]
                if channel == STDIN and stdin is not None and not stdin.is_closing():
                    with contextlib.suppress(ConnectionError):
                        stdin.write(payload)
                        await stdin.drain()
                elif (
                    channel == CLOSE
                    and self.protocol == V5
                    and payload[:1] == bytes([STDIN])
                    and stdin is not None
                    and not stdin.is_closing()
                ):
                    stdin.close()
        finally:
            if stdin is not None and not stdin.is_closing():
                stdin.close()
        client_gone.set()


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode
