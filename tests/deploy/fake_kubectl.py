"""A stand-in for kubectl in the Makefile tests (there is no API server here): it records every
call as a JSON line in $FAKE_KUBECTL_STATE/calls.jsonl and answers the few reads the Makefile's
recipes make from files in that directory.

    token            Secret workspace-auth's shared_token (absent: no token yet)
    valkey-password  Secret workspace-valkey's password (absent: none yet)
    crds             present: the Prometheus Operator CRDs are installed
    fail-apply       a file name: `apply -f` of a path ending with it fails
    stuck            present: the RayService keeps serving from its first cluster
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

OLD_CLUSTER, NEW_CLUSTER = "workspace-old", "workspace-new"


def main() -> int:
    state = Path(os.environ["FAKE_KUBECTL_STATE"])
    args = sys.argv[1:]
    with (state / "calls.jsonl").open("a") as calls:
        calls.write(json.dumps(args) + "\n")
    if args[:2] == ["-n", "swe-ai-fleet"]:
        args = args[2:]
    verb = args[0] if args else ""
    if verb == "get" and args[1] == "crd":
        return 0 if (state / "crds").exists() else 1
    if verb == "get" and args[1:3] == ["secret", "workspace-auth"]:
        token = state / "token"
        sys.stdout.write(token.read_text() if token.exists() else "")
        return 0
    if verb == "patch" and args[1:3] == ["secret", "workspace-auth"]:
        patch = json.loads(sys.stdin.read())
        (state / "secret-patch.json").write_text(json.dumps(patch))
        (state / "token").write_text(patch["stringData"]["shared_token"])
        return 0
    if verb == "get" and args[1:3] == ["secret", "workspace-valkey"]:
        password = state / "valkey-password"
        sys.stdout.write(password.read_text() if password.exists() else "")
        return 0
    if verb == "patch" and args[1:3] == ["secret", "workspace-valkey"]:
        patch = json.loads(sys.stdin.read())
        (state / "valkey-secret-patch.json").write_text(json.dumps(patch))
        (state / "valkey-password").write_text(patch["stringData"]["password"])
        return 0
    if verb == "patch" and args[1] == "rayservice/workspace":
        (state / "restarted").write_text(args[args.index("-p") + 1])
        return 0
    if verb == "get" and args[1] == "rayservice/workspace" and "-o" in args:
        polls = state / "polls"
        count = int(polls.read_text()) + 1 if polls.exists() else 1
        polls.write_text(str(count))
        moved = (state / "restarted").exists() and not (state / "stuck").exists() and count > 3
        sys.stdout.write(NEW_CLUSTER if moved else OLD_CLUSTER)
        return 0
    if verb == "apply":
        failing = state / "fail-apply"
        if failing.exists() and args[args.index("-f") + 1].endswith(failing.read_text()):
            sys.stderr.write(f"error: applying {args[-1]} failed\n")
            return 1
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
