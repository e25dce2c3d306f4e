"""node.* — npm scripts and installs (contract §4.2), and the Node commands behind repo.* (§4.3).

npm runs with its update notifier, funding and audit calls switched off: a tool call does not
reach the registry unless it installs.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from serve_app.domain.capability import PathField
from serve_app.domain.errors import invalid_argument
from serve_app.tools import projects
from serve_app.tools.base import Tool, ToolContext, ToolResult
from serve_app.tools.declare import Arguments
from serve_app.tools.languages import (
    DIST_DIR,
    Command,
    Completed,
    Coverage,
    FlagRules,
    Job,
    LanguageOutput,
    LanguageTestOutput,
    Packaged,
    ProjectCommands,
    failures,
    language_tool,
    output_dir,
    ran,
    relative_arg,
    reported,
    run_toolchain,
    target_path,
    toolchain_tool,
)

ENV = {
    "npm_config_update_notifier": "false",
    "npm_config_fund": "false",
    "npm_config_audit": "false",
}
# Only npm's own switches: anything for the script itself goes through `target`.
BUILD_FLAGS = FlagRules(exact=frozenset({"--silent", "--if-present"}))
TEST_FLAGS = FlagRules(exact=frozenset({"--silent"}))


def npm(*args: str) -> Command:
    return Command(["npm", *args], "node", ENV)


async def script_args(ctx: ToolContext, value: str | None) -> list[str]:
    """`-- ./target` for a script run: the target is a workspace path handed to the script."""
    path = await target_path(ctx, value)
    return ["--", relative_arg(path)] if path is not None else []


async def entry_file(job: Job) -> str:
    """What `node --check` validates: the target, else package.json `main`, else index.js."""
    path = await target_path(job.ctx, job.target)
    if path is not None:
        return relative_arg(path)
    main = (await projects.package_json(job.ctx.runtime)).get("main")
    for candidate in (main, "index.js"):
        if not isinstance(candidate, str) or not candidate:
            continue
        path = await job.ctx.path(candidate)
        info = await job.ctx.runtime.stat(path)
        if info is not None and info.kind == "file":
            return relative_arg(path)
    raise invalid_argument("no JavaScript entry file to validate (package.json main, index.js)")


# repo.* commands --------------------------------------------------------------------------------


async def _build(job: Job) -> Completed:
    extra = [arg for arg in job.extra_args if arg != "--if-present"]
    command = npm("run", "build", "--if-present", *extra, *await script_args(job.ctx, job.target))
    return await job.run(command)


async def _test(job: Job) -> Completed:
    return await job.run(npm("test", *job.extra_args, *await script_args(job.ctx, job.target)))


async def _validate(job: Job) -> Completed:
    if job.project.flavor == "typescript":
        return await job.run(npm("run", "typecheck", "--if-present"))
    return await job.run(Command(["node", "--check", await entry_file(job)], "node"))


async def _lint(job: Job) -> Completed:
    args = await script_args(job.ctx, job.target)
    return await job.run(npm("run", "lint", "--if-present", *args))


async def _coverage(job: Job) -> Coverage:
    # Coverage belongs to the project's own test script (c8, jest --coverage): not normalized.
    return Coverage(await _test(job), supported=False)


def packed_tarball(output: str) -> str:
    """The file `npm pack` reports (its last `*.tgz` line)."""
    lines = [line.strip() for line in output.splitlines() if line.strip().endswith(".tgz")]
    return lines[-1].rsplit(" ", 1)[-1] if lines else ""


async def _package(job: Job) -> Packaged:
    dist = await output_dir(job.ctx, DIST_DIR)
    run = await job.run(npm("pack", "--pack-destination", dist.relative))
    tarball = packed_tarball(run.output)
    return Packaged(run, f"{dist.relative}/{tarball}" if tarball else dist.relative)


COMMANDS = ProjectCommands(
    build_flags=BUILD_FLAGS,
    test_flags=TEST_FLAGS,
    build=_build,
    test=_test,
    validate=_validate,
    static_analysis=_lint,
    coverage=_coverage,
    package=_package,
)


# node.* tools -----------------------------------------------------------------------------------

OUTPUT_KB = 2048


class InstallArgs(Arguments):
    use_ci: Annotated[bool, Field(description="npm ci (default true) or npm install")] = True
    ignore_scripts: Annotated[bool, Field(description="--ignore-scripts (default true)")] = True


@toolchain_tool(
    "node.install",
    "Install Node dependencies using npm ci/install.",
    timeout=300,
    output_kb=OUTPUT_KB,
    network=True,
    examples=[{"use_ci": True, "ignore_scripts": True}],
)
async def install(ctx: ToolContext, args: InstallArgs) -> ToolResult[LanguageOutput]:
    argv = ["ci"] if args.use_ci else ["install"]
    if args.ignore_scripts:
        argv.append("--ignore-scripts")
    run = await run_toolchain(ctx, npm(*argv))
    return reported(ctx, run, LanguageOutput(**ran(ctx, run)))


class ScriptArgs(Arguments):
    target: Annotated[
        str | None, Field(description="Workspace path handed to the script after --")
    ] = None


async def _run_script(ctx: ToolContext, script: str, args: ScriptArgs) -> Completed:
    target = await script_args(ctx, args.target)
    return await run_toolchain(ctx, npm("run", script, "--if-present", *target))


def _script_tool(script: str, name: str, description: str, timeout: int) -> Tool:
    """`npm run <script>`; the test script's output names the failing tests too."""
    description = f"{description} Runs `npm run {script} --if-present [-- target]`."
    path_fields = [PathField(field="target")]
    if script == "test":

        async def run_tests(ctx: ToolContext, args: ScriptArgs) -> ToolResult[LanguageTestOutput]:
            run = await _run_script(ctx, script, args)
            return reported(ctx, run, LanguageTestOutput(**ran(ctx, run), **failures(run)))

        return language_tool(
            run_tests,
            arguments=ScriptArgs,
            output=LanguageTestOutput,
            name=name,
            description=description,
            timeout=timeout,
            output_kb=OUTPUT_KB,
            path_fields=path_fields,
            examples=[{}],
        )

    async def run_script(ctx: ToolContext, args: ScriptArgs) -> ToolResult[LanguageOutput]:
        run = await _run_script(ctx, script, args)
        return reported(ctx, run, LanguageOutput(**ran(ctx, run)))

    return language_tool(
        run_script,
        arguments=ScriptArgs,
        output=LanguageOutput,
        name=name,
        description=description,
        timeout=timeout,
        output_kb=OUTPUT_KB,
        path_fields=path_fields,
        examples=[{}],
    )


TOOLS: list[Tool] = [
    install,
    _script_tool("build", "node.build", "Run Node/TypeScript build script with npm.", 300),
    _script_tool("test", "node.test", "Run Node test script with npm.", 300),
    _script_tool("lint", "node.lint", "Run Node lint script with npm.", 240),
    _script_tool("typecheck", "node.typecheck", "Run TypeScript typecheck script with npm.", 240),
]
