"""The one way tools run git: in the session's workspace and repository only, with nothing the
repository's or a user's configuration could make it run.

- The repository is named explicitly (`--git-dir=<workspace>/.git --work-tree=<workspace>`), so
  neither a `.git` *file* (`gitdir: …`) nor `core.worktree` can point git elsewhere; a `.git` that
  is not a real directory is refused before git starts, and so is a `.git/commondir` (git would
  read its config, refs and objects from the directory it names).
- Only the repository's own configuration is read: no system or user (global) file.
- What configuration could make git run, whatever the repository says (`HARDENING`, command-line
  configuration, which git reads after the repository's): hooks (`core.hooksPath=/dev/null`), the
  fsmonitor hook, `core.sshCommand`, credential helpers (an empty `credential.helper` empties their
  list, URL-scoped ones included), `core.askPass`, `core.alternateRefsCommand`, editors, signing
  and signature checks (`gpg.program` then never runs), the `ext::` transport, a pager
  (`--no-pager`). `core.gitProxy` is the one setting where git takes the *first* value it reads,
  so an empty `GIT_PROXY_COMMAND` in the environment turns it off instead.
- Drivers (`DRIVER_OVERRIDES`): `.gitattributes` name filter, merge and diff drivers that the
  repository's config defines by name, and there is no setting that turns them all off. So before
  every run `.git/config` (and `.git/config.worktree`) is read here, on the host, bounded, with
  git's own syntax (`git_config.parse`), and each driver it defines is overridden by name through
  `GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_<n>`/`GIT_CONFIG_VALUE_<n>` (command-line scope too; a name
  may contain `=`, which `-c` cannot carry): a filter gets no clean, smudge or process command and
  is not required (git then stores and checks out the bytes as they are), a merge driver becomes
  `git merge-file` (git's own three-way merge, conflict markers included), a diff driver's
  textconv becomes `cat` and its external command `false`. A config that includes other files
  (`include.path`, `includeIf.*.path`), which cannot be overridden without being read, is refused,
  as is one git itself could not read.
- Per subcommand (`SUBCOMMAND_OPTIONS`): `diff`, `show` and `log` never run an external diff or a
  textconv; `fetch`, `pull` and `push` name the stock `git-upload-pack`/`git-receive-pack` (git
  keeps the *first* `remote.<name>.uploadpack`/`receivepack` it reads, so configuration cannot
  override the repository's, but the command line does) and, like `checkout`, never recurse into
  submodules; `status` and `diff` do not run `git status` inside submodules to find dirty ones
  (`--ignore-submodules=dirty`: a submodule's own config is not read here).

Left open: `git add` (`git.commit` with paths or `all`) and the local changes `git checkout` lists
still run `git status` inside each checked-out submodule, which reads the submodule's own config
(neither command has an option against it, and the per-submodule `ignore` setting can come from
`.gitmodules`); and a concurrent tool process of the same session could change `.git/config`
between its reading here and git's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import PurePosixPath

from serve_app.domain.errors import ServiceError, policy_denied
from serve_app.domain.paths import WorkspacePath
from serve_app.runtime.interface import CommandResult, WorkspaceRuntime
from serve_app.tools.base import ToolContext
from serve_app.tools.git_config import ConfigSyntaxError, Variable, parse

HARDENING = (
    "--literal-pathspecs",
    "--no-pager",
    "-c",
    "color.ui=false",
    "-c",
    "core.quotepath=false",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.sshCommand=ssh",
    "-c",
    "protocol.ext.allow=never",
    "-c",
    "credential.helper=",
    "-c",
    "core.askPass=",
    "-c",
    "core.alternateRefsCommand=",
    "-c",
    "core.editor=:",
    "-c",
    "sequence.editor=:",
    "-c",
    "commit.gpgSign=false",
    "-c",
    "push.gpgSign=false",
    "-c",
    "merge.verifySignatures=false",
    "-c",
    "log.showSignature=false",
    "-c",
    "submodule.recurse=false",
    "-c",
    "status.submoduleSummary=false",
)
# The environment of every git run: no configuration but the repository's own, no proxy command.
ENVIRONMENT = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_PROXY_COMMAND": "",
}
SUBCOMMAND_OPTIONS: Mapping[str, tuple[str, ...]] = {
    "diff": ("--no-ext-diff", "--no-textconv", "--ignore-submodules=dirty"),
    "show": ("--no-ext-diff", "--no-textconv"),
    "log": ("--no-ext-diff", "--no-textconv"),
    "status": ("--ignore-submodules=dirty",),
    "checkout": ("--no-recurse-submodules",),
    "fetch": ("--upload-pack=git-upload-pack", "--no-recurse-submodules"),
    "pull": ("--upload-pack=git-upload-pack", "--no-recurse-submodules"),
    "push": ("--receive-pack=git-receive-pack", "--no-recurse-submodules"),
}
# git's own three-way merge in place of a merge driver (`%A` is ours and receives the result).
MERGE_FILE = "git merge-file --marker-size=%L -L ours -L base -L theirs %A %O %B"
DRIVER_OVERRIDES: Mapping[bytes, Mapping[bytes | None, tuple[tuple[str, str], ...]]] = {
    # section → the driver key that was set (None: any) → what to set for that driver
    b"filter": {
        None: (("clean", ""), ("smudge", ""), ("process", ""), ("required", "false")),
    },
    b"merge": {None: (("driver", MERGE_FILE),)},
    b"diff": {b"textconv": (("textconv", "cat"),), b"command": (("command", "false"),)},
}
INCLUDE_SECTIONS = frozenset({b"include", b"includeif"})
CONFIG_FILES = ("config", "config.worktree")
CONFIG_MAX_BYTES = 1024 * 1024
CONFIG_INLINE_BYTES = 64 * 1024
MAX_OVERRIDES = 1024
GIT_DIR = ".git"


def is_git_path(path: WorkspacePath) -> bool:
    """Whether a resolved path is a repository directory (`.git`, at any depth) or inside one."""
    return GIT_DIR in path.relative.split("/")


def _git_entry(runtime: WorkspaceRuntime, name: str = "") -> WorkspacePath:
    relative = f"{GIT_DIR}/{name}" if name else GIT_DIR
    return WorkspacePath(real=runtime.workspace / relative, relative=relative, requested=relative)


async def repository(runtime: WorkspaceRuntime) -> bool:
    """Whether the workspace is a repository: True for a real `.git` directory, False when there
    is none; anything else at `.git` (a `gitdir:` file, a link) is refused."""
    info = await runtime.stat(_git_entry(runtime))
    if info is None:
        return False
    if info.kind != "dir":
        raise policy_denied(
            ".git is not a directory: a .git file or link could point git outside the workspace"
        )
    return True


async def _read_config(ctx: ToolContext, name: str) -> list[Variable]:
    entry = _git_entry(ctx.runtime, name)
    info = await ctx.runtime.stat(entry)
    if info is None:
        return []
    if info.kind != "file":
        raise policy_denied(f"{entry.relative} is not a regular file: git would read it elsewhere")
    if info.size_bytes > CONFIG_MAX_BYTES:
        raise policy_denied(f"{entry.relative} is larger than {CONFIG_MAX_BYTES} bytes")
    try:
        content = await ctx.runtime.read_file(entry, max_bytes=CONFIG_MAX_BYTES + 1)
    except ServiceError as exc:
        raise policy_denied(f"cannot read {entry.relative}: {exc.message}") from None
    if content.truncated or len(content.data) > CONFIG_MAX_BYTES:
        raise policy_denied(f"{entry.relative} is larger than {CONFIG_MAX_BYTES} bytes")
    data = content.data
    try:
        if len(data) <= CONFIG_INLINE_BYTES:
            return parse(data)
        variables: list[Variable] = await ctx.blocking(lambda: parse(data))
        return variables
    except ConfigSyntaxError as exc:
        raise policy_denied(
            f"{entry.relative} is not valid git configuration ({exc}); git would refuse it too"
        ) from None


async def repository_config(ctx: ToolContext) -> list[Variable]:
    """The variables of the repository's own config files, as git reads them; a `commondir`
    (config elsewhere) is refused."""
    if await ctx.runtime.stat(_git_entry(ctx.runtime, "commondir")) is not None:
        raise policy_denied(
            ".git/commondir would make git read its config, refs and objects from another "
            "directory: remove it"
        )
    return [variable for name in CONFIG_FILES for variable in await _read_config(ctx, name)]


def _driver_name(section: bytes, subsection: bytes) -> str:
    try:
        name = subsection.decode("utf-8")
    except UnicodeDecodeError:
        raise policy_denied(
            f"the repository's config defines a {section.decode()} driver whose name is not UTF-8"
        ) from None
    return name


def driver_overrides(variables: Iterable[Variable]) -> dict[str, str]:
    """The configuration that turns off every driver `variables` define (see the module's
    docstring), in order; include directives are refused."""
    overrides: dict[str, str] = {}
    for variable in variables:
        section, subsection = variable.section, variable.subsection
        if section in INCLUDE_SECTIONS:
            raise policy_denied(
                "the repository's config includes other files (include.path / includeIf): git "
                "would read configuration that is not checked before it runs; remove the "
                f"[{section.decode()}] section from .git/config"
            )
        by_key = DRIVER_OVERRIDES.get(section)
        if by_key is None or subsection is None:
            continue
        settings = by_key.get(None) or by_key.get(variable.key)
        if settings is None:
            continue
        name = _driver_name(section, subsection)
        for key, value in settings:
            overrides[f"{section.decode()}.{name}.{key}"] = value
    if len(overrides) > MAX_OVERRIDES:
        raise policy_denied(f"the repository's config defines more than {MAX_OVERRIDES} drivers")
    return overrides


def config_environment(overrides: Mapping[str, str]) -> dict[str, str]:
    """`overrides` as git's command-line configuration in the environment."""
    env = {"GIT_CONFIG_COUNT": str(len(overrides))}
    for index, (key, value) in enumerate(overrides.items()):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    return env


def git_argv(
    workspace: PurePosixPath,
    args: Sequence[str],
    *,
    repository: bool,
    identity: tuple[str, str] | None = None,
) -> list[str]:
    """git's command line: the session's repository (when it has one), the hardening options,
    the commit identity, then `args` (with the `SUBCOMMAND_OPTIONS` of its subcommand)."""
    argv = ["git"]
    if repository:
        argv += [f"--git-dir={workspace / GIT_DIR}", f"--work-tree={workspace}"]
    argv += HARDENING
    if identity is not None:
        argv += ["-c", f"user.name={identity[0]}", "-c", f"user.email={identity[1]}"]
    if args and args[0] in SUBCOMMAND_OPTIONS:
        return [*argv, args[0], *SUBCOMMAND_OPTIONS[args[0]], *args[1:]]
    return [*argv, *args]


async def git_command(
    ctx: ToolContext, args: Sequence[str], *, identity: tuple[str, str] | None = None
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that run `args` with the rules above."""
    repo = await repository(ctx.runtime)
    env = dict(ENVIRONMENT)
    if repo:
        env |= config_environment(driver_overrides(await repository_config(ctx)))
    return git_argv(ctx.workspace, args, repository=repo, identity=identity), env


async def run_git(
    ctx: ToolContext,
    args: Sequence[str],
    *,
    output_limit: int | None = None,
    stdin: bytes | None = None,
    identity: tuple[str, str] | None = None,
    env: Mapping[str, str] | None = None,
) -> CommandResult:
    """Run git in the workspace with the rules above, keeping `output_limit` bytes of its output
    (by default the tool's `command_output_limit`)."""
    argv, git_env = await git_command(ctx, args, identity=identity)
    return await ctx.run(
        argv, stdin=stdin, output_limit=output_limit, env={**git_env, **(env or {})}
    )
