"""Real git repositories for tests: working repositories, bare `origin`s, commits and hooks.

Setup runs git with a throwaway HOME and no system/global config, so the developer's own git
configuration never leaks into a test.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

SETUP_NAME = "Setup Bot"
SETUP_EMAIL = "setup@example.test"


def _environment(home: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LC_ALL": "C.UTF-8",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
    }


def git(cwd: Path, *args: str) -> str:
    """Run git for test setup (identity set, failure raises) and return its stdout."""
    home = cwd.parent / ".git-setup-home"
    home.mkdir(exist_ok=True)
    completed = subprocess.run(
        ["git", "-c", f"user.name={SETUP_NAME}", "-c", f"user.email={SETUP_EMAIL}", *args],
        cwd=cwd,
        env=_environment(home),
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {completed.stderr}")
    return completed.stdout


def commit_file(repo: Path, name: str, content: str, message: str | None = None) -> str:
    """Write `name`, commit it, and return the new commit's hash."""
    path = repo / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    git(repo, "add", "--", name)
    git(repo, "commit", "-q", "-m", message or f"update {name}")
    return head(repo)


def head(repo: Path, ref: str = "HEAD") -> str:
    return git(repo, "rev-parse", "--verify", ref).strip()


def init_repo(path: Path, files: dict[str, str] | None = None) -> Path:
    """A repository on branch main with one commit of `files` (default a README)."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    for name, content in (files or {"README.md": "hello\n"}).items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(content)
    git(path, "add", "--all")
    git(path, "commit", "-q", "-m", "initial commit")
    return path


def bare_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "--bare", "-b", "main")
    return path


def repo_with_origin(workspace: Path, origin: Path) -> tuple[Path, Path]:
    """`workspace` as a repository whose `origin` is a new bare repository holding its main."""
    init_repo(workspace)
    bare_repo(origin)
    git(workspace, "remote", "add", "origin", str(origin))
    git(workspace, "push", "-q", "-u", "origin", "main")
    return workspace, origin


def clone(origin: Path, destination: Path) -> Path:
    destination.parent.mkdir(parents=True, exist_ok=True)
    git(destination.parent, "clone", "-q", str(origin), destination.name)
    return destination


def install_hook(repo: Path, name: str, script: str) -> Path:
    hook = repo / ".git" / "hooks" / name
    hook.write_text("#!/bin/sh\n" + script)
    hook.chmod(0o755)
    return hook


class GitDaemon:
    """A real `git daemon` on loopback serving every repository on this machine by absolute path
    (read and push): how a sandboxed session, which sees no path outside its workspace, reaches
    the test's remotes — over the network, as a network tool."""

    def __init__(self) -> None:
        from tests.support.network import free_port

        self.port = free_port()
        self._process = subprocess.Popen(
            [
                "git",
                "daemon",
                "--export-all",
                "--enable=receive-pack",
                "--informative-errors",
                "--reuseaddr",
                "--listen=127.0.0.1",
                f"--port={self.port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        import socket
        import time

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("git daemon did not start")

    def url(self, repository: Path) -> str:
        return f"git://127.0.0.1:{self.port}{repository}"

    def stop(self) -> None:
        self._process.kill()
        self._process.wait(timeout=10)


class GitHttpServer:
    """Git's smart HTTP protocol on loopback: `git http-backend` (real git, as CGI) behind a
    small threaded HTTP server, serving every repository on this machine by absolute path, push
    included. It accepts any credentials and asks for none: it exists so that remotes can carry
    `user:password@` in their URLs, which git:// does not take. Not modelled: authentication,
    chunked request bodies (git sends them only past http.postBuffer, 1 MiB)."""

    def __init__(self) -> None:
        import http.server
        import threading

        backend = self._respond

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                backend(self)

            def do_POST(self) -> None:
                backend(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, repository: Path, credentials: str = "") -> str:
        userinfo = f"{credentials}@" if credentials else ""
        return f"http://{userinfo}127.0.0.1:{self.port}{repository}"

    def _respond(self, request: Any) -> None:
        path, _, query = request.path.partition("?")
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": "/",
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_PARAMETERS": "'http.receivepack'='true'",
            "REQUEST_METHOD": request.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": request.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_CONTENT_ENCODING": request.headers.get("Content-Encoding", ""),
            "GIT_PROTOCOL": request.headers.get("Git-Protocol", ""),
            "REMOTE_ADDR": "127.0.0.1",
        }
        done = subprocess.run(
            ["git", "http-backend"], input=body, env=env, capture_output=True, timeout=60
        )
        head, _, payload = done.stdout.partition(b"\r\n\r\n")
        status = 200
        headers = []
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        request.send_response(status)
        for name, value in headers:
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
