"""The git.* tools against real repositories: driven through the ExecutionService (handlers), the
policy engine (argument rules) and the HTTP app (status codes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from serve_app.domain.capability import ArgField, Capability, PathField, PolicyMetadata
from serve_app.domain.errors import ErrorCode
from serve_app.domain.execution import ExecutionResult
from serve_app.domain.models import Session
from serve_app.domain.policy import evaluate
from serve_app.execution.executor import ExecutionService
from serve_app.execution.process import child_environment, run_command
from serve_app.tools import git
from tests.conftest import invoke, open_session, principal
from tests.support.execution import fails, ok, run
from tests.support.execution import make_session as support_session
from tests.support.git_repos import (
    SETUP_EMAIL,
    GitDaemon,
    GitHttpServer,
    bare_repo,
    clone,
    commit_file,
    head,
    init_repo,
    install_hook,
    repo_with_origin,
)
from tests.support.git_repos import git as setup_git

SECRET = "s3cret-token"


# helpers ----------------------------------------------------------------------------------------


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    return tmp_path / "remotes" / "origin.git"


@pytest.fixture
def repo(workspace: Path, origin: Path, git_daemon: GitDaemon) -> Path:
    """The workspace as a clone of `origin`, reached over git:// (the sandbox sees no host path)."""
    repo_with_origin(workspace, origin)
    setup_git(workspace, "remote", "set-url", "origin", git_daemon.url(origin))
    return workspace


def make_session(
    workspace: Path,
    *,
    metadata: dict[str, str] | None = None,
    actor: str = "agent-7",
    allowed_paths: list[str] | None = None,
    roles: list[str] | None = None,
) -> Session:
    return support_session(
        workspace,
        allowed_paths,
        session_id="sess-git",
        actor=actor,
        roles=roles,
        metadata=metadata,
    )


@pytest.fixture
def session(workspace: Path) -> Session:
    return make_session(workspace)


def branches_of(repo: Path) -> set[str]:
    return set(setup_git(repo, "branch", "--format=%(refname:short)").split())


def everything(result: ExecutionResult) -> str:
    """All a client could see of a result: output, logs and error."""
    return json.dumps(result.model_dump(mode="json"))


# catalog metadata (contract §4.2) ---------------------------------------------------------------

CONTRACT = {
    # name: (scope, risk, approval, side effects, idempotency, timeout, output KB, required)
    "git.status": ("repo", "low", False, "none", "guaranteed", 20, 256, []),
    "git.diff": ("repo", "low", False, "none", "guaranteed", 30, 1024, []),
    "git.apply_patch": ("repo", "medium", True, "reversible", "best-effort", 45, 512, ["patch"]),
    "git.checkout": ("repo", "medium", False, "reversible", "best-effort", 30, 512, ["ref"]),
    "git.log": ("repo", "low", False, "none", "guaranteed", 20, 1024, []),
    "git.show": ("repo", "low", False, "none", "guaranteed", 30, 1024, []),
    "git.branch_list": ("repo", "low", False, "none", "guaranteed", 20, 512, []),
    "git.commit": ("repo", "medium", True, "irreversible", "none", 30, 512, ["message"]),
    "git.push": ("repo", "high", True, "irreversible", "best-effort", 60, 1024, []),
    "git.fetch": ("repo", "medium", True, "reversible", "best-effort", 60, 1024, []),
    "git.pull": ("repo", "medium", True, "reversible", "best-effort", 60, 1024, []),
}
ARGUMENTS = {
    "git.status": {"short": "boolean"},
    "git.diff": {"staged": "boolean", "paths": "array", "base": "string"},
    "git.apply_patch": {"patch": "string", "check": "boolean"},
    "git.checkout": {
        "ref": "string",
        "create": "boolean",
        "start_point": "string",
        "force": "boolean",
    },
    "git.log": {"ref": "string", "max_count": "integer"},
    "git.show": {"ref": "string", "path": "string", "stat": "boolean", "patch": "boolean"},
    "git.branch_list": {"all": "boolean", "remotes": "boolean"},
    "git.commit": {"message": "string", "all": "boolean", "paths": "array"},
    "git.push": {
        "remote": "string",
        "refspec": "string",
        "set_upstream": "boolean",
        "force_with_lease": "boolean",
    },
    "git.fetch": {"remote": "string", "refspec": "string", "prune": "boolean", "tags": "boolean"},
    "git.pull": {"remote": "string", "refspec": "string", "rebase": "boolean"},
}
SHELL = [";", "|", "&", "`", "$(", ">", "<", "\n", "\r"]


def test_catalog_metadata_matches_the_contract() -> None:
    tools = {tool.name: tool.capability for tool in git.TOOLS}
    assert set(tools) == set(CONTRACT)
    for name, (scope, risk, approval, effects, idem, timeout, out_kb, required) in CONTRACT.items():
        capability = tools[name]
        assert capability.scope == scope, name
        assert capability.risk_level == risk, name
        assert capability.requires_approval is approval, name
        assert capability.side_effects == effects, name
        assert capability.idempotency == idem, name
        assert capability.constraints.timeout_seconds == timeout, name
        assert capability.constraints.output_limit_kb == out_kb, name
        assert capability.input_schema["required"] == required, name
        properties = capability.input_schema["properties"]
        assert {arg: spec["type"] for arg, spec in properties.items()} == ARGUMENTS[name], name
    max_count = tools["git.log"].input_schema["properties"]["max_count"]
    assert (max_count["minimum"], max_count["maximum"]) == (1, 200)


def ref_rule(field: str) -> ArgField:
    return ArgField(field=field, max_length=256, deny_characters=SHELL)


def test_policy_metadata_matches_the_contract() -> None:
    tools = {tool.name: tool.capability.policy for tool in git.TOOLS}
    remote_rules = [
        ArgField(field="remote", max_length=128, deny_characters=[*SHELL, " "]),
        ArgField(field="refspec", max_length=512, deny_characters=[*SHELL, " "]),
    ]
    assert tools["git.diff"].path_fields == [PathField(field="paths", multi=True)]
    assert tools["git.checkout"].arg_fields == [ref_rule("ref"), ref_rule("start_point")]
    assert tools["git.log"].arg_fields == [ref_rule("ref")]
    assert tools["git.show"].path_fields == [PathField(field="path")]
    assert tools["git.show"].arg_fields == [ref_rule("ref")]
    assert tools["git.commit"].path_fields == [PathField(field="paths", multi=True)]
    assert tools["git.commit"].arg_fields == [
        ArgField(field="message", max_length=1024, deny_characters=["\x00"])
    ]
    for name in ("git.push", "git.fetch", "git.pull"):
        assert tools[name].arg_fields == remote_rules, name
    for name in ("git.status", "git.apply_patch", "git.branch_list"):
        assert tools[name] == PolicyMetadata(), name


# policy engine rules (arg fields) ---------------------------------------------------------------


def capability(name: str) -> Capability:
    return next(tool.capability for tool in git.TOOLS if tool.name == name)


@pytest.mark.parametrize("bad", ["main;rm -rf /", "a|b", "a&b", "a`id`", "$(id)", "a>b", "a<b"])
def test_policy_denies_shell_metacharacters_in_refs(workspace: Path, bad: str) -> None:
    session = make_session(workspace)
    for tool, field in [
        ("git.checkout", "ref"),
        ("git.checkout", "start_point"),
        ("git.log", "ref"),
    ]:
        args = {"ref": "main", field: bad}
        decision = evaluate(capability(tool), session, args, approved=True)
        assert not decision.allowed, (tool, field, bad)
        assert decision.code is ErrorCode.POLICY_DENIED
        assert decision.reason == "argument not allowed by policy"
    assert not evaluate(capability("git.show"), session, {"ref": "HEAD\nx"}, True).allowed
    assert not evaluate(capability("git.log"), session, {"ref": "HEAD\rx"}, True).allowed


def test_policy_ref_length_limit(workspace: Path) -> None:
    session = make_session(workspace)
    assert evaluate(capability("git.log"), session, {"ref": "r" * 256}, True).allowed
    assert not evaluate(capability("git.log"), session, {"ref": "r" * 257}, True).allowed
    assert not evaluate(capability("git.checkout"), session, {"ref": "  "}, True).allowed


def test_policy_remote_and_refspec_rules(workspace: Path) -> None:
    session = make_session(workspace, roles=["platform_admin"])
    push = capability("git.push")
    assert evaluate(push, session, {"remote": "origin", "refspec": "HEAD:main"}, True).allowed
    assert not evaluate(push, session, {"remote": "origin x"}, True).allowed
    assert not evaluate(push, session, {"refspec": "main --force"}, True).allowed
    assert not evaluate(push, session, {"remote": "r" * 129}, True).allowed
    assert evaluate(push, session, {"refspec": "r" * 512}, True).allowed
    assert not evaluate(push, session, {"refspec": "r" * 513}, True).allowed
    for name in ("git.fetch", "git.pull"):
        assert not evaluate(capability(name), session, {"remote": "a;b"}, True).allowed


def test_policy_commit_message_rules(workspace: Path) -> None:
    session = make_session(workspace)
    commit = capability("git.commit")
    assert evaluate(commit, session, {"message": "fix: a; b | c > d"}, True).allowed
    assert not evaluate(commit, session, {"message": "a\x00b"}, True).allowed
    assert evaluate(commit, session, {"message": "m" * 1024}, True).allowed
    assert not evaluate(commit, session, {"message": "m" * 1025}, True).allowed


def test_policy_path_fields_use_allowed_paths(workspace: Path) -> None:
    session = make_session(workspace, allowed_paths=["src"])
    assert evaluate(capability("git.diff"), session, {"paths": ["src/a.py"]}, True).allowed
    denied = evaluate(capability("git.diff"), session, {"paths": ["src/a", "docs/b"]}, True)
    assert (denied.allowed, denied.reason) == (False, "path outside allowed_paths")
    assert not evaluate(capability("git.show"), session, {"path": "../x"}, True).allowed
    assert not evaluate(
        capability("git.commit"), session, {"message": "m", "paths": ["README.md"]}, True
    ).allowed


def test_policy_gates_push_by_role_and_approval(workspace: Path) -> None:
    push = capability("git.push")
    developer = make_session(workspace)
    admin = make_session(workspace, roles=["platform_admin"])
    assert evaluate(push, developer, {}, True).reason == (
        "high risk capability requires platform_admin role"
    )
    assert evaluate(push, admin, {}, False).code is ErrorCode.APPROVAL_REQUIRED
    assert evaluate(push, admin, {}, True).allowed


# handler-side allowlists (pure functions) -------------------------------------------------------


def test_ref_allowlist_tries_bare_names_in_each_namespace(workspace: Path) -> None:
    session = make_session(
        workspace, metadata={"allowed_git_ref_prefixes": "refs/heads/feature/, refs/tags/v"}
    )
    assert git.ref_allowed(session, "feature/x")
    assert git.ref_allowed(session, "refs/heads/feature/x")
    assert git.ref_allowed(session, "v1.2")
    assert git.ref_allowed(session, "HEAD") and git.ref_allowed(session, "HEAD~2")
    assert git.ref_allowed(session, "HEAD^^")
    assert not git.ref_allowed(session, "main")
    assert not git.ref_allowed(session, "refs/heads/main")
    assert not git.ref_allowed(session, "HEAD@{upstream}")
    assert not git.ref_allowed(session, "feature/x..main")
    assert git.ref_allowed(session, "feature/a...feature/b")
    assert git.refspec_allowed(session, "HEAD:refs/heads/feature/x")
    assert git.refspec_allowed(session, "+feature/x:feature/x")
    assert not git.refspec_allowed(session, "feature/x:main")
    assert git.refspec_allowed(session, "")
    remotes = make_session(workspace, metadata={"allowed_git_ref_prefixes": "origin/"})
    assert git.ref_allowed(remotes, "origin/main")


def test_empty_or_star_allowlists_allow_everything(workspace: Path) -> None:
    for metadata in (None, {}, {"allowed_git_ref_prefixes": " , "}, {"allowed_git_remotes": ""}):
        session = make_session(workspace, metadata=metadata)
        assert git.ref_allowed(session, "anything") and git.remote_allowed(session, "anywhere")
    star = make_session(
        workspace, metadata={"allowed_git_ref_prefixes": "x/,*", "allowed_git_remotes": "a, *"}
    )
    assert git.ref_allowed(star, "main") and git.remote_allowed(star, "upstream")
    listed = make_session(workspace, metadata={"allowed_git_remotes": "origin, mirror"})
    assert git.remote_allowed(listed, "mirror")
    assert not git.remote_allowed(listed, "upstream")


def test_commit_identity_from_metadata_and_fallbacks(workspace: Path) -> None:
    metadata = {"git_author_name": " Ada\nLovelace\r ", "git_author_email": "ada@example.test\n"}
    assert git.commit_identity(make_session(workspace, metadata=metadata)) == (
        "AdaLovelace",
        "ada@example.test",
    )
    long_name = {"git_author_name": "n" * 300, "git_author_email": "e" * 120 + "@example.test"}
    name, email = git.commit_identity(make_session(workspace, metadata=long_name))
    assert name == "n" * 128 and len(email) == 128
    assert git.commit_identity(make_session(workspace, actor="agent-7")) == (
        "agent-7",
        "agent-7@workspace.local",
    )
    no_at = {"git_author_email": "not-an-email"}
    assert git.commit_identity(make_session(workspace, metadata=no_at))[1] == (
        "agent-7@workspace.local"
    )
    assert git.commit_identity(make_session(workspace, actor="")) == (
        "workspace-bot",
        "workspace-bot@workspace.local",
    )


async def test_exit_codes_map_to_git_error_codes(workspace: Path) -> None:
    env = child_environment(home=workspace.parent / "home", workspace=workspace)

    async def failure(*args: str) -> Any:
        result = await run_command(["git", *args], cwd=workspace, env=env, timeout=10)
        return git.git_failure(result, args)

    repo_error = await failure("status")
    assert (repo_error.code, repo_error.exit_code) == (ErrorCode.GIT_REPO_ERROR, 128)
    assert "not a git repository" in repo_error.message
    init_repo(workspace)
    usage = await failure("status", "--no-such-option")
    assert (usage.code, usage.exit_code) == (ErrorCode.GIT_USAGE_ERROR, 129)
    (workspace / "README.md").write_text("changed\n")
    changed = await failure("diff", "--quiet")
    assert (changed.code, changed.exit_code) == (ErrorCode.EXECUTION_FAILED, 1)
    assert changed.output.dump()["output"] == ""


@pytest.mark.usefixtures("repo")
async def test_unknown_argument_names_are_refused(
    executor: ExecutionService, session: Session
) -> None:
    for tool, args in [("git.status", {"porcelain": True}), ("git.push", {"force": True})]:
        result = await fails(executor, session, tool, args, ErrorCode.INVALID_ARGUMENT)
        assert result.error is not None and "Extra inputs are not permitted" in result.error.message


# not a repository -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("git.status", {}),
        ("git.diff", {}),
        ("git.diff", {"paths": ["a.txt"]}),
        ("git.log", {}),
        ("git.show", {}),
        ("git.branch_list", {}),
        ("git.checkout", {"ref": "main"}),
        ("git.commit", {"message": "m", "all": True}),
        ("git.push", {}),
        ("git.fetch", {}),
        ("git.pull", {}),
    ],
)
async def test_workspace_that_is_not_a_repository_is_a_repo_error(
    executor: ExecutionService, session: Session, workspace: Path, tool: str, args: dict[str, Any]
) -> None:
    (workspace / "a.txt").write_text("a\n")
    result = await fails(executor, session, tool, args, ErrorCode.GIT_REPO_ERROR)
    assert result.error is not None
    assert "not a git repository" in result.error.message
    assert result.exit_code == 128
    assert "not a git repository" in result.output["output"]


async def test_workspace_inside_another_repository_is_still_not_one(
    executor: ExecutionService, tmp_path: Path
) -> None:
    outer = init_repo(tmp_path / "outer")
    workspace = outer / "t" / "s" / "repo"
    workspace.mkdir(parents=True)
    (outer / "t" / "s" / "home").mkdir()
    session = make_session(workspace)
    await fails(executor, session, "git.status", {}, ErrorCode.GIT_REPO_ERROR)


# git.status -------------------------------------------------------------------------------------


async def test_status_short_and_long(
    executor: ExecutionService, session: Session, repo: Path
) -> None:
    clean = await ok(executor, session, "git.status", {})
    assert clean["status"] == ""
    assert clean["command"] == ["git", "status", "--porcelain=v1"]
    (repo / "README.md").write_text("changed\n")
    (repo / "new.txt").write_text("new\n")
    short = await ok(executor, session, "git.status", {"short": True})
    assert short["status"].splitlines() == [" M README.md", "?? new.txt"]
    long = await ok(executor, session, "git.status", {"short": False})
    assert "On branch main" in long["status"] and "new.txt" in long["status"]


async def test_status_output_is_capped(
    executor: ExecutionService, session: Session, repo: Path
) -> None:
    name = "untracked-file-with-a-rather-long-name-to-fill-the-status-output-quickly"
    for index in range(4000):
        (repo / f"{name}-{index:05d}.txt").write_text("x")
    output = await ok(executor, session, "git.status", {})
    assert len(output["status"].encode()) <= 256 * 1024 + 64
    assert output["status"].endswith("[output truncated]\n")


# git.diff ---------------------------------------------------------------------------------------


async def test_diff_unstaged_staged_paths_and_base(
    executor: ExecutionService, session: Session, repo: Path
) -> None:
    first = head(repo)
    commit_file(repo, "src/app.py", "print(1)\n")
    (repo / "README.md").write_text("hello\nworld\n")
    (repo / "src" / "app.py").write_text("print(2)\n")
    setup_git(repo, "add", "src/app.py")

    unstaged = (await ok(executor, session, "git.diff", {}))["diff"]
    assert "+world" in unstaged and "print(2)" not in unstaged
    staged = (await ok(executor, session, "git.diff", {"staged": True}))["diff"]
    assert "+print(2)" in staged and "world" not in staged
    limited = await ok(executor, session, "git.diff", {"paths": ["src"], "base": "HEAD"})
    assert "+print(2)" in limited["diff"] and "README" not in limited["diff"]
    assert limited["command"][-3:] == ["HEAD", "--", "src"]
    against_first = (await ok(executor, session, "git.diff", {"base": first}))["diff"]
    assert "src/app.py" in against_first and "+world" in against_first
    assert (await ok(executor, session, "git.diff", {"paths": ["  "]}))["diff"] == unstaged


async def test_diff_paths_are_literal_and_jailed(
    executor: ExecutionService, session: Session, repo: Path
) -> None:
    (repo / "README.md").write_text("changed\n")
    # A pathspec with glob magic is taken literally: it names no file, so the diff is empty.
    assert (await ok(executor, session, "git.diff", {"paths": ["*.md"]}))["diff"] == ""
    assert (await ok(executor, session, "git.diff", {"paths": [":(glob)*"]}))["diff"] == ""
    await fails(executor, session, "git.diff", {"paths": ["../outside"]}, ErrorCode.POLICY_DENIED)
    (repo / "link").symlink_to(repo.parent)
    await fails(executor, session, "git.diff", {"paths": ["link/x"]}, ErrorCode.POLICY_DENIED)
    narrow = make_session(repo, allowed_paths=["src"])
    await fails(executor, narrow, "git.diff", {"paths": ["README.md"]}, ErrorCode.POLICY_DENIED)


@pytest.mark.usefixtures("repo")
async def test_diff_option_injection_is_refused(
    executor: ExecutionService, session: Session, tmp_path: Path
) -> None:
    target = tmp_path / "written-by-git"
    for args in (
        {"base": f"--output={target}"},
        {"base": "-R"},
        {"paths": [f"--output={target}"]},
        {"paths": ["-p"]},
    ):
        result = await fails(executor, session, "git.diff", args, ErrorCode.INVALID_ARGUMENT)
        assert result.error is not None and "must not start with '-'" in result.error.message
    assert not target.exists()


@pytest.mark.usefixtures("repo")
async def test_diff_unknown_base_is_a_repo_error(
    executor: ExecutionService, session: Session
) -> None:
    result = await fails(
        executor, session, "git.diff", {"base": "no-such-ref"}, ErrorCode.GIT_REPO_ERROR
    )
    assert result.error is not None and "no-such-ref" in result.error.message


# git.apply_patch --------------------------------------------------------------------------------

PATCH = "--- a/README.md\n+++ b/README.md\n@@ -1 +1 @@\n-hello\n+patched\n"


async def test_apply_patch_check_then_apply(
    executor: ExecutionService, session: Session, repo: Path
) -> None:
    checked = await ok(executor, session, "git.apply_patch", {"patch": PATCH, "check": True})
    assert (checked["applied"], checked["checked"]) == (False, True)
    assert checked["changed_paths"] == ["README.md"]
    assert (repo / "README.md").read_text() == "hello\n"
    applied = await ok(executor, session, "git.apply_patch", {"patch": PATCH})
    assert (applied["applied"], applied["checked"]) == (True, False)
    assert (repo / "README.md").read_text() == "patched\n"


async def test_apply_patch_that_does_not_apply_changes_nothing(
    executor: ExecutionService, session: Session, repo: Path
) -> None:
    (repo / "other.txt").write_text("one\n")
    patch = PATCH + "--- a/other.txt\n+++ b/other.txt\n@@ -1 +1 @@\n-not what is there\n+three\n"
    result = await fails(
        executor, session, "git.apply_patch", {"patch": patch}, ErrorCode.EXECUTION_FAILED
    )
    assert result.output["applied"] is False
    assert "patch does not apply" in result.output["output"]
    assert (repo / "README.md").read_text() == "hello\n"


async def test_apply_patch_outside_the_jail_is_denied(
    executor: ExecutionService, session: Session, repo: Path
) -> None:
    escaping = "--- a/../x.txt\n+++ b/../x.txt\n@@ -0,0 +1 @@\n+x\n"
    await fails(executor, session, "git.apply_patch", {"patch": escaping}, ErrorCode.POLICY_DENIED)
    narrow = make_session(repo, allowed_paths=["src"])
    await fails(executor, narrow, "git.apply_patch", {"patch": PATCH}, ErrorCode.POLICY_DENIED)
    await fails(
        executor, session, "git.apply_patch", {"patch": "no headers"}, ErrorCode.INVALID_ARGUMENT
    )
    assert not (repo.parent / "x.txt").exists()


# git.checkout -----------------------------------------------------------------------------------


async def test_checkout_existing_and_new_branches(
    executor: ExecutionService, session: Session, repo: Path
) -> None:
    first = head(repo)
    commit_file(repo, "b.txt", "b\n")
    created = await ok(
        executor,
        session,
        "git.checkout",
        {"ref": "feature/x", "create": True, "start_point": first},
    )
    assert (created["ref"], created["created"]) == ("feature/x", True)
    assert "Switched to a new branch 'feature/x'" in created["output"]
    assert head(repo) == first and not (repo / "b.txt").exists()
    back = await ok(executor, session, "git.checkout", {"ref": "main"})
    assert back["created"] is False and (repo / "b.txt").exists()
    detached = await ok(executor, session, "git.checkout", {"ref": first})
    assert "HEAD is now at" in detached["output"]


async def test_checkout_ref_named_like_a_file_switches_branch(
    executor: ExecutionService, session: Session, repo: Path
) -> None:
    setup_git(repo, "branch", "README.md")
    (repo / "README.md").write_text("local edit\n")
    output = await ok(executor, session, "git.checkout", {"ref": "README.md"})
    assert "Switched to branch 'README.md'" in output["output"]
    assert (repo / "README.md").read_text() == "local edit\n"


async def test_checkout_force_discards_blocking_changes(
    executor: ExecutionService, session: Session, repo: Path
) -> None:
    setup_git(repo, "branch", "other")
    commit_file(repo, "README.md", "main version\n")
    (repo / "README.md").write_text("uncommitted\n")
    await fails(executor, session, "git.checkout", {"ref": "other"}, ErrorCode.EXECUTION_FAILED)
    assert (repo / "README.md").read_text() == "uncommitted\n"
    await ok(executor, session, "git.checkout", {"ref": "other", "force": True})
    assert (repo / "README.md").read_text() == "hello\n"


async def test_checkout_errors(executor: ExecutionService, session: Session, repo: Path) -> None:
    result = await fails(
        executor, session, "git.checkout", {"ref": "no-such"}, ErrorCode.GIT_REPO_ERROR
    )
    assert result.error is not None and "invalid reference: no-such" in result.error.message
    await fails(
        executor,
        session,
        "git.checkout",
        {"ref": "bad..name", "create": True},
        ErrorCode.GIT_REPO_ERROR,
    )
    await fails(
        executor,
        session,
        "git.checkout",
        {"ref": "x", "start_point": "main"},
        ErrorCode.INVALID_ARGUMENT,
    )
    for args in (
        {"ref": "--orphan=evil"},
        {"ref": "-b"},
        {"ref": "x", "create": True, "start_point": "--detach"},
        {"ref": " "},
    ):
        await fails(executor, session, "git.checkout", args, ErrorCode.INVALID_ARGUMENT)
    assert branches_of(repo) == {"main"}


async def test_checkout_ref_allowlist(
    executor: ExecutionService, workspace: Path, repo: Path
) -> None:
    setup_git(repo, "branch", "release")
    session = make_session(workspace, metadata={"allowed_git_ref_prefixes": "refs/heads/agent/"})
    denied = await fails(
        executor, session, "git.checkout", {"ref": "release"}, ErrorCode.POLICY_DENIED
    )
    assert denied.error is not None and denied.error.message == "ref outside allowlist"
    start = await fails(
        executor,
        session,
        "git.checkout",
        {"ref": "agent/x", "create": True, "start_point": "release"},
        ErrorCode.POLICY_DENIED,
    )
    assert start.error is not None and start.error.message == "start_point outside allowlist"
    assert branches_of(repo) == {"main", "release"}
    await ok(executor, session, "git.checkout", {"ref": "agent/x", "create": True})
    assert "agent/x" in branches_of(repo)


# git.log ----------------------------------------------------------------------------------------


async def test_log_entries_and_bounds(
    executor: ExecutionService, session: Session, repo: Path
) -> None:
    first = head(repo)
    second = commit_file(repo, "a.txt", "a\n", "second commit")
    output = await ok(executor, session, "git.log", {})
    assert (output["ref"], output["count"]) == ("HEAD", 2)
    newest = output["entries"][0]
    assert newest["commit"] == newest["hash"] == second
    assert newest["author_email"] == SETUP_EMAIL
    assert newest["author"] == f"Setup Bot <{SETUP_EMAIL}>"
    assert newest["subject"] == "second commit"
    assert newest["parents"] == [first]
    assert output["entries"][1]["parents"] == []
    assert newest["date"][:4].isdigit() and "T" in newest["date"]
    one = await ok(executor, session, "git.log", {"max_count": 1})
    assert [entry["commit"] for entry in one["entries"]] == [second]
    ranged = await ok(executor, session, "git.log", {"ref": f"{first}..main"})
    assert [entry["commit"] for entry in ranged["entries"]] == [second]


async def test_log_subjects_with_special_characters(
    executor: ExecutionService, session: Session, repo: Path
) -> None:
    commit_file(repo, "a.txt", "a\n", "feat: ünïcode | pipes; and $(dollars)")
    entries = (await ok(executor, session, "git.log", {"max_count": 1}))["entries"]
    assert entries[0]["subject"] == "feat: ünïcode | pipes; and $(dollars)"


async def test_log_errors_and_injection(
    executor: ExecutionService, session: Session, repo: Path, tmp_path: Path
) -> None:
    await fails(executor, session, "git.log", {"ref": "nope"}, ErrorCode.GIT_REPO_ERROR)
    target = tmp_path / "log-output"
    await fails(
        executor, session, "git.log", {"ref": f"--output={target}"}, ErrorCode.INVALID_ARGUMENT
    )
    assert not target.exists()
    unborn = repo.parent / "unborn"
    unborn.mkdir()
    setup_git(unborn, "init", "-q", "-b", "main")
    result = await fails(executor, make_session(unborn), "git.log", {}, ErrorCode.GIT_REPO_ERROR)
    assert result.error is not None and "bad revision 'HEAD'" in result.error.message


async def test_log_ref_allowlist(executor: ExecutionService, workspace: Path, repo: Path) -> None:
    setup_git(repo, "branch", "feature/ok")
    setup_git(repo, "tag", "v1")
    session = make_session(
        workspace, metadata={"allowed_git_ref_prefixes": "refs/heads/feature/,refs/tags/v"}
    )
    assert (await ok(executor, session, "git.log", {}))["count"] == 1
    assert (await ok(executor, session, "git.log", {"ref": "feature/ok"}))["count"] == 1
    assert (await ok(executor, session, "git.log", {"ref": "v1"}))["count"] == 1
    await fails(executor, session, "git.log", {"ref": "main"}, ErrorCode.POLICY_DENIED)
    await fails(executor, session, "git.show", {"ref": "main"}, ErrorCode.POLICY_DENIED)
    await fails(executor, session, "git.diff", {"base": "main"}, ErrorCode.POLICY_DENIED)


# git.show ---------------------------------------------------------------------------------------


async def test_show_variants(executor: ExecutionService, session: Session, repo: Path) -> None:
    commit_file(repo, "a.txt", "alpha\n", "add a")
    commit_file(repo, "b.txt", "beta\n", "add b")
    both = await ok(executor, session, "git.show", {})
    assert both["ref"] == "HEAD" and both["path"] == ""
    assert "add b" in both["show"] and "b.txt | 1 +" in both["show"] and "+beta" in both["show"]
    stat_only = (await ok(executor, session, "git.show", {"patch": False}))["show"]
    assert "b.txt | 1 +" in stat_only and "+beta" not in stat_only
    patch_only = (await ok(executor, session, "git.show", {"stat": False}))["show"]
    assert "+beta" in patch_only and "b.txt | 1 +" not in patch_only
    bare = (await ok(executor, session, "git.show", {"stat": False, "patch": False}))["show"]
    assert "Commit:" in bare and "+beta" not in bare
    limited = await ok(executor, session, "git.show", {"ref": "HEAD~1", "path": "a.txt"})
    assert limited["path"] == "a.txt" and "+alpha" in limited["show"]
    other = await ok(executor, session, "git.show", {"path": "a.txt"})
    assert "+beta" not in other["show"]


@pytest.mark.usefixtures("repo")
async def test_show_errors(executor: ExecutionService, session: Session) -> None:
    await fails(executor, session, "git.show", {"ref": "HEAD~5"}, ErrorCode.GIT_REPO_ERROR)
    await fails(executor, session, "git.show", {"ref": "--format=%x"}, ErrorCode.INVALID_ARGUMENT)
    await fails(executor, session, "git.show", {"path": "-x"}, ErrorCode.INVALID_ARGUMENT)
    await fails(executor, session, "git.show", {"path": "../x"}, ErrorCode.POLICY_DENIED)


# git.branch_list --------------------------------------------------------------------------------


async def test_branch_list_local_remote_and_all(
    executor: ExecutionService, session: Session, repo: Path
) -> None:
    setup_git(repo, "branch", "feature/x")
    local = await ok(executor, session, "git.branch_list", {})
    assert local["count"] == 2
    by_name = {branch["name"]: branch for branch in local["branches"]}
    assert by_name["main"]["current"] is True and by_name["feature/x"]["current"] is False
    assert by_name["main"]["upstream"] == "origin/main"
    assert by_name["main"]["commit"] == head(repo)
    remotes = await ok(executor, session, "git.branch_list", {"remotes": True})
    assert [branch["name"] for branch in remotes["branches"]] == ["origin/main"]
    everything_listed = await ok(executor, session, "git.branch_list", {"all": True})
    assert {branch["name"] for branch in everything_listed["branches"]} == {
        "main",
        "feature/x",
        "origin/main",
    }


# git.commit -------------------------------------------------------------------------------------


async def test_commit_staged_changes_with_metadata_identity(
    executor: ExecutionService, workspace: Path, repo: Path
) -> None:
    session = make_session(
        workspace,
        metadata={"git_author_name": "Ada\nLovelace", "git_author_email": "ada@example.test"},
    )
    (repo / "README.md").write_text("changed\n")
    setup_git(repo, "add", "README.md")
    output = await ok(executor, session, "git.commit", {"message": "docs: change readme"})
    assert output["committed"] is True
    assert output["commit"] == head(repo)
    assert "docs: change readme" in output["output"]
    author = setup_git(repo, "log", "-1", "--format=%an|%ae|%cn|%ce|%s")
    assert author.strip() == "AdaLovelace|ada@example.test|AdaLovelace|ada@example.test|" + (
        "docs: change readme"
    )


async def test_commit_identity_falls_back_to_the_actor(
    executor: ExecutionService, workspace: Path, repo: Path
) -> None:
    session = make_session(workspace, actor="agent-7")
    (repo / "new.txt").write_text("new\n")
    await ok(executor, session, "git.commit", {"message": "add new", "all": True})
    author = setup_git(repo, "log", "-1", "--format=%an <%ae>").strip()
    assert author == "agent-7 <agent-7@workspace.local>"
    anonymous = make_session(workspace, actor="")
    (repo / "other.txt").write_text("x\n")
    await ok(executor, anonymous, "git.commit", {"message": "add other", "all": True})
    author = setup_git(repo, "log", "-1", "--format=%an <%ae>").strip()
    assert author == "workspace-bot <workspace-bot@workspace.local>"


async def test_commit_selected_paths_only(
    executor: ExecutionService, session: Session, repo: Path
) -> None:
    (repo / "README.md").write_text("changed\n")
    (repo / "src").mkdir()
    (repo / "src" / "new.py").write_text("print()\n")
    (repo / "untouched.txt").write_text("stays untracked\n")
    output = await ok(
        executor, session, "git.commit", {"message": "add src", "paths": ["src/new.py"]}
    )
    assert output["committed"] is True
    files = setup_git(repo, "show", "--name-only", "--format=", "HEAD").split()
    assert files == ["src/new.py"]
    status = setup_git(repo, "status", "--porcelain=v1").splitlines()
    assert status == [" M README.md", "?? untouched.txt"]


async def test_commit_all_stages_everything(
    executor: ExecutionService, session: Session, repo: Path
) -> None:
    (repo / "README.md").unlink()
    (repo / "added.txt").write_text("added\n")
    await ok(executor, session, "git.commit", {"message": "everything", "all": True})
    files = setup_git(repo, "show", "--name-status", "--format=", "HEAD").splitlines()
    assert sorted(files) == ["A\tadded.txt", "D\tREADME.md"]
    assert setup_git(repo, "status", "--porcelain=v1") == ""


async def test_commit_with_nothing_to_commit_fails(
    executor: ExecutionService, session: Session, repo: Path
) -> None:
    before = head(repo)
    result = await fails(
        executor, session, "git.commit", {"message": "empty"}, ErrorCode.EXECUTION_FAILED
    )
    assert result.output["committed"] is False and result.output["commit"] == ""
    assert "nothing to commit" in result.output["output"]
    assert result.exit_code == 1
    assert head(repo) == before


async def test_commit_bad_input_changes_nothing(
    executor: ExecutionService, session: Session, repo: Path
) -> None:
    (repo / "a.txt").write_text("a\n")
    for args in (
        {"message": "  \n"},
        {"message": "a\x00b", "all": True},
        {"message": "m", "all": True, "paths": ["a.txt"]},
        {"message": "m", "paths": ["-a"]},
    ):
        await fails(executor, session, "git.commit", args, ErrorCode.INVALID_ARGUMENT)
    await fails(
        executor,
        session,
        "git.commit",
        {"message": "m", "paths": ["../x"]},
        ErrorCode.POLICY_DENIED,
    )
    assert setup_git(repo, "status", "--porcelain=v1") == "?? a.txt\n"
    assert setup_git(repo, "rev-list", "--count", "HEAD").strip() == "1"


async def test_commit_message_that_looks_like_an_option_is_just_a_message(
    executor: ExecutionService, session: Session, repo: Path
) -> None:
    (repo / "a.txt").write_text("a\n")
    await ok(executor, session, "git.commit", {"message": "--amend", "all": True})
    assert setup_git(repo, "log", "-1", "--format=%s").strip() == "--amend"
    assert setup_git(repo, "rev-list", "--count", "HEAD").strip() == "2"


@pytest.mark.parametrize(
    ("hook", "tool", "args"),
    [
        ("pre-commit", "git.commit", {"message": "m", "all": True}),
        ("post-commit", "git.commit", {"message": "m", "all": True}),
        ("pre-push", "git.push", {}),
        ("post-checkout", "git.checkout", {"ref": "main"}),
    ],
)
async def test_repository_hooks_never_run(
    executor: ExecutionService,
    session: Session,
    repo: Path,
    hook: str,
    tool: str,
    args: dict[str, object],
) -> None:
    """A hook is a program the workspace's own files define: git.* runs none of them."""
    marker = repo / f"{hook}.ran"
    install_hook(repo, hook, f'touch "{marker}"\n')
    (repo / "a.txt").write_text("a\n")
    setup_git(repo, "add", "a.txt")
    await run(executor, session, tool, args)
    assert not marker.exists(), f"the {hook} hook ran"


# git.push / git.fetch / git.pull ----------------------------------------------------------------


async def test_push_to_origin(
    executor: ExecutionService, session: Session, repo: Path, origin: Path
) -> None:
    pushed_commit = commit_file(repo, "a.txt", "a\n")
    output = await ok(executor, session, "git.push", {})
    assert (output["remote"], output["refspec"], output["pushed"]) == ("origin", "", True)
    assert head(origin, "main") == pushed_commit
    setup_git(repo, "checkout", "-q", "-b", "feature/y")
    output = await ok(
        executor,
        session,
        "git.push",
        {"remote": "origin", "refspec": "feature/y", "set_upstream": True},
    )
    assert "feature/y -> feature/y" in output["output"]
    assert setup_git(repo, "rev-parse", "--abbrev-ref", "feature/y@{upstream}").strip() == (
        "origin/feature/y"
    )
    assert output["command"] == [
        "git",
        "push",
        "--set-upstream",
        "--end-of-options",
        "origin",
        "feature/y",
    ]


async def test_push_rejected_and_force_with_lease(
    executor: ExecutionService, session: Session, repo: Path, origin: Path, tmp_path: Path
) -> None:
    other = clone(origin, tmp_path / "other")
    remote_commit = commit_file(other, "theirs.txt", "theirs\n")
    setup_git(other, "push", "-q", "origin", "main")
    mine = commit_file(repo, "mine.txt", "mine\n")
    rejected = await fails(executor, session, "git.push", {}, ErrorCode.EXECUTION_FAILED)
    assert "rejected" in rejected.output["output"] and rejected.output["pushed"] is False
    assert head(origin, "main") == remote_commit
    # The lease is our (stale) origin/main: the remote moved, so even a forced push is refused.
    await fails(
        executor, session, "git.push", {"force_with_lease": True}, ErrorCode.EXECUTION_FAILED
    )
    assert head(origin, "main") == remote_commit
    setup_git(repo, "fetch", "-q", "origin")
    await ok(executor, session, "git.push", {"force_with_lease": True})
    assert head(origin, "main") == mine


async def test_push_remote_and_refspec_allowlists(
    executor: ExecutionService, workspace: Path, repo: Path, origin: Path, tmp_path: Path
) -> None:
    mirror = bare_repo(tmp_path / "mirror.git")
    setup_git(repo, "remote", "add", "mirror", str(mirror))
    session = make_session(
        workspace,
        metadata={
            "allowed_git_remotes": "origin",
            "allowed_git_ref_prefixes": "refs/heads/agent/",
        },
    )
    denied = await fails(
        executor,
        session,
        "git.push",
        {"remote": "mirror", "refspec": "HEAD:agent/x"},
        ErrorCode.POLICY_DENIED,
    )
    assert denied.error is not None and denied.error.message == "remote outside allowlist"
    denied = await fails(
        executor, session, "git.push", {"refspec": "HEAD:main"}, ErrorCode.POLICY_DENIED
    )
    assert denied.error is not None and denied.error.message == "refspec outside allowlist"
    await fails(executor, session, "git.push", {"refspec": "main"}, ErrorCode.POLICY_DENIED)
    await fails(executor, session, "git.push", {"remote": str(mirror)}, ErrorCode.POLICY_DENIED)
    assert setup_git(mirror, "for-each-ref") == ""
    await ok(executor, session, "git.push", {"refspec": "HEAD:refs/heads/agent/x"})
    assert head(origin, "agent/x") == head(repo)
    fetch_denied = await fails(
        executor, session, "git.fetch", {"remote": "mirror"}, ErrorCode.POLICY_DENIED
    )
    assert fetch_denied.error is not None
    await fails(executor, session, "git.pull", {"remote": "mirror"}, ErrorCode.POLICY_DENIED)


@pytest.mark.usefixtures("repo")
@pytest.mark.parametrize(
    "args",
    [
        {"remote": "--upload-pack=touch /tmp/pwned-by-upload-pack"},
        {"remote": "--receive-pack=touch /tmp/pwned"},
        {"remote": "-v"},
        {"refspec": "--mirror"},
        {"refspec": "-f"},
        {"remote": "origin", "refspec": "--delete"},
    ],
)
async def test_remote_option_injection_is_refused(
    executor: ExecutionService, session: Session, origin: Path, args: dict[str, str]
) -> None:
    for tool in ("git.push", "git.fetch", "git.pull"):
        result = await fails(executor, session, tool, args, ErrorCode.INVALID_ARGUMENT)
        assert result.error is not None and "must not start with '-'" in result.error.message
    assert setup_git(origin, "for-each-ref", "--format=%(refname)").split() == ["refs/heads/main"]


async def test_ext_transport_is_refused_even_when_the_repository_allows_it(
    executor: ExecutionService, session: Session, repo: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "ext-ran"
    setup_git(repo, "config", "protocol.ext.allow", "always")
    setup_git(repo, "remote", "add", "evil", f"ext::sh -c touch% {marker}")
    result = await fails(
        executor, session, "git.fetch", {"remote": "evil"}, ErrorCode.GIT_REPO_ERROR
    )
    assert "transport 'ext' not allowed" in result.output["output"]
    assert not marker.exists()


async def test_repository_config_cannot_run_commands_from_read_only_tools(
    executor: ExecutionService, session: Session, repo: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    script = tmp_path / "touch-marker.sh"
    script.write_text(f'#!/bin/sh\ntouch "{marker}"\n')
    script.chmod(0o755)
    setup_git(repo, "config", "core.fsmonitor", str(script))
    setup_git(repo, "config", "diff.external", str(script))
    (repo / "README.md").write_text("changed\n")
    await ok(executor, session, "git.status", {})
    assert "+changed" in (await ok(executor, session, "git.diff", {}))["diff"]
    await ok(executor, session, "git.show", {})
    assert not marker.exists()


async def test_fetch_updates_remote_tracking_refs_and_prunes(
    executor: ExecutionService, session: Session, repo: Path, origin: Path, tmp_path: Path
) -> None:
    other = clone(origin, tmp_path / "other")
    theirs = commit_file(other, "theirs.txt", "theirs\n")
    setup_git(other, "push", "-q", "origin", "main", "main:refs/heads/temp")
    output = await ok(executor, session, "git.fetch", {})
    assert output["fetched"] is True
    assert head(repo, "origin/main") == theirs and head(repo, "origin/temp") == theirs
    assert head(repo, "main") != theirs
    setup_git(other, "push", "-q", "origin", "--delete", "temp")
    await ok(executor, session, "git.fetch", {"prune": True})
    assert "origin/temp" not in setup_git(repo, "branch", "-r")
    setup_git(other, "tag", "v9")
    setup_git(other, "push", "-q", "origin", "v9")
    await ok(executor, session, "git.fetch", {"tags": True, "refspec": "refs/heads/main"})
    assert setup_git(repo, "tag").split() == ["v9"]


@pytest.mark.usefixtures("repo")
async def test_fetch_unknown_remote_is_a_repo_error(
    executor: ExecutionService, session: Session
) -> None:
    result = await fails(
        executor, session, "git.fetch", {"remote": "nowhere"}, ErrorCode.GIT_REPO_ERROR
    )
    # Not a configured remote, so git takes it for a local path: a transport the sandbox refuses.
    assert result.error is not None and "transport 'file' not allowed" in result.error.message


async def test_pull_fast_forward_merge_and_rebase(
    executor: ExecutionService, workspace: Path, repo: Path, origin: Path, tmp_path: Path
) -> None:
    session = make_session(workspace, metadata={"git_author_name": "Puller"})
    other = clone(origin, tmp_path / "other")
    theirs = commit_file(other, "theirs.txt", "1\n")
    setup_git(other, "push", "-q", "origin", "main")
    output = await ok(executor, session, "git.pull", {})
    assert output["pulled"] is True and head(repo) == theirs
    # Diverged: a merge commit by the session's identity.
    commit_file(other, "theirs.txt", "2\n")
    setup_git(other, "push", "-q", "origin", "main")
    commit_file(repo, "mine.txt", "mine\n")
    await ok(executor, session, "git.pull", {"refspec": "main"})
    merge = setup_git(repo, "log", "-1", "--format=%P|%an").strip()
    parents, author = merge.split("|")
    assert len(parents.split()) == 2 and author == "Puller"
    # Diverged again: rebase keeps history linear.
    latest = commit_file(other, "theirs.txt", "3\n")
    setup_git(other, "push", "-q", "origin", "main")
    commit_file(repo, "mine2.txt", "mine2\n")
    await ok(executor, session, "git.pull", {"rebase": True})
    assert latest in setup_git(repo, "rev-list", "HEAD").split()
    assert setup_git(repo, "rev-list", "--merges", f"{latest}..HEAD") == ""
    assert (repo / "mine2.txt").exists() and (repo / "theirs.txt").read_text() == "3\n"


async def test_pull_conflict_fails_with_git_output(
    executor: ExecutionService, session: Session, repo: Path, origin: Path, tmp_path: Path
) -> None:
    other = clone(origin, tmp_path / "other")
    commit_file(other, "README.md", "theirs\n")
    setup_git(other, "push", "-q", "origin", "main")
    commit_file(repo, "README.md", "mine\n")
    result = await fails(executor, session, "git.pull", {}, ErrorCode.EXECUTION_FAILED)
    assert result.output["pulled"] is False
    assert "CONFLICT (content): Merge conflict in README.md" in result.output["output"]
    assert result.error is not None and "Automatic merge failed" in result.error.message
    assert "<<<<<<<" in (repo / "README.md").read_text()


# credentials ------------------------------------------------------------------------------------


async def test_credentials_in_remote_urls_are_masked(
    executor: ExecutionService,
    session: Session,
    repo: Path,
    origin: Path,
    git_http: GitHttpServer,
) -> None:
    url = git_http.url(origin, f"agent:{SECRET}")
    masked = git_http.url(origin, "***")
    setup_git(repo, "remote", "add", "secured", url)
    # git prints its own URLs without credentials; a commit message shows one verbatim.
    commit_file(repo, "a.txt", "a\n")
    setup_git(repo, "commit", "-q", "--amend", "-m", f"mirror of {url}")
    result = await run(executor, session, "git.push", {"remote": "secured", "refspec": "main"})
    assert result.error is None, result.error
    assert SECRET not in everything(result)
    shown = await run(executor, session, "git.show", {"stat": False, "patch": False})
    assert shown.error is None, shown.error
    assert SECRET not in everything(shown)
    assert f"mirror of {masked}" in shown.output["show"]
    assert any("***@" in line.message for line in shown.logs)

    by_url = await run(executor, session, "git.push", {"remote": url, "refspec": "main:other"})
    assert by_url.error is None, by_url.error
    assert by_url.output["remote"] == masked
    assert SECRET not in everything(by_url)


async def test_credentials_are_masked_in_failures(
    executor: ExecutionService,
    session: Session,
    repo: Path,
    origin: Path,
    git_http: GitHttpServer,
) -> None:
    gone = git_http.url(Path(f"{origin}-missing"), f"agent:{SECRET}")
    setup_git(repo, "remote", "add", "secured", gone)
    result = await fails(
        executor, session, "git.push", {"remote": "secured"}, ErrorCode.GIT_REPO_ERROR
    )
    assert "not found" in result.output["output"]
    assert SECRET not in everything(result)
    missing = await fails(
        executor, session, "git.fetch", {"remote": gone}, ErrorCode.GIT_REPO_ERROR
    )
    assert SECRET not in everything(missing)


# over HTTP: status codes ------------------------------------------------------------------------


def http_repo(session: dict[str, object], tmp_path: Path) -> tuple[Path, Path]:
    workspace = Path(str(session["workspace_path"]))
    return repo_with_origin(workspace, tmp_path / "http-origin.git")


def test_http_push_needs_platform_admin_and_approval(
    client: TestClient, tmp_path: Path, git_daemon: GitDaemon
) -> None:
    developer = open_session(client)
    workspace, origin = http_repo(developer, tmp_path)
    commit_file(workspace, "a.txt", "a\n")
    status, body = invoke(client, developer["id"], "git.push", {}, approved=True)
    assert status == 403
    assert body["error"] == {
        "code": "policy_denied",
        "message": "high risk capability requires platform_admin role",
    }
    assert body["invocation"]["status"] == "denied"
    assert head(origin, "main") != head(workspace)

    admin = open_session(client, principal=principal(roles=["platform_admin"]))
    admin_workspace = Path(str(admin["workspace_path"]))
    clone(origin, admin_workspace)
    setup_git(admin_workspace, "remote", "set-url", "origin", git_daemon.url(origin))
    pushed = commit_file(admin_workspace, "b.txt", "b\n")
    status, body = invoke(client, admin["id"], "git.push", {"refspec": "main"})
    assert status == 428
    assert body["error"] == {
        "code": "approval_required",
        "message": "tool requires explicit approval",
    }
    assert head(origin, "main") != pushed
    status, body = invoke(client, admin["id"], "git.push", {"refspec": "main"}, approved=True)
    assert status == 200, body
    assert body["invocation"]["status"] == "succeeded"
    assert body["invocation"]["output"]["pushed"] is True
    assert head(origin, "main") == pushed


def test_http_handler_denials_are_500_and_engine_denials_403(
    client: TestClient, tmp_path: Path
) -> None:
    session = open_session(
        client,
        metadata={"allowed_git_remotes": "upstream", "allowed_git_ref_prefixes": "agent/"},
    )
    http_repo(session, tmp_path)
    status, body = invoke(client, session["id"], "git.fetch", {}, approved=True)
    assert status == 500
    assert body["error"] == {"code": "policy_denied", "message": "remote outside allowlist"}
    assert body["invocation"]["status"] == "failed"
    status, body = invoke(client, session["id"], "git.checkout", {"ref": "main"})
    assert (status, body["error"]["code"]) == (500, "policy_denied")
    status, body = invoke(client, session["id"], "git.checkout", {"ref": "agent/x;id"})
    assert status == 403
    assert body["error"] == {"code": "policy_denied", "message": "argument not allowed by policy"}
    assert body["invocation"]["status"] == "denied"
    status, body = invoke(client, session["id"], "git.log", {"max_count": 0})
    assert (status, body["error"]["code"]) == (400, "invalid_argument")


def test_http_git_errors_and_commit(client: TestClient, tmp_path: Path) -> None:
    session = open_session(client, metadata={"git_author_email": "http@example.test"})
    status, body = invoke(client, session["id"], "git.status", {})
    assert status == 500
    assert body["error"]["code"] == "git_repo_error"
    assert "not a git repository" in body["error"]["message"]
    assert body["invocation"]["exit_code"] == 128
    workspace, _ = http_repo(session, tmp_path)
    (workspace / "n.txt").write_text("n\n")
    status, body = invoke(client, session["id"], "git.commit", {"message": "n", "all": True})
    assert status == 428
    status, body = invoke(
        client, session["id"], "git.commit", {"message": "n", "all": True}, approved=True
    )
    assert status == 200, body
    assert body["invocation"]["output"]["commit"] == head(workspace)
    author = setup_git(workspace, "log", "-1", "--format=%an <%ae>").strip()
    assert author == "agent-1 <http@example.test>"
    status, body = invoke(client, session["id"], "git.log", {"max_count": 1})
    assert status == 200 and body["invocation"]["output"]["entries"][0]["subject"] == "n"
