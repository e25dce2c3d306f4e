"""Java (Maven / Gradle) commands behind repo.* (contract §4.3): the project's `mvnw`/`gradlew`
wrapper when it has one, else `mvn`/`gradle` from PATH. There are no java.* tools.
"""

from __future__ import annotations

import re

from serve_app.domain.errors import invalid_argument
from serve_app.tools import projects
from serve_app.tools.languages import (
    Command,
    Completed,
    Coverage,
    FlagRules,
    Job,
    Packaged,
    ProjectCommands,
    checked_target,
)

_JAVA_TARGET = re.compile(r"^[A-Za-z0-9_.*#,$]+$")
MAVEN_FLAGS = FlagRules(
    exact=frozenset({"-q", "-o", "-B", "--batch-mode", "--offline", "-ntp"})
    | {"--no-transfer-progress"},
    valued=frozenset({"-P"}),
    prefixes=("-DskipTests", "-DskipITs", "-Dtest=", "-P"),
)
GRADLE_BUILD_FLAGS = FlagRules(
    exact=frozenset({"--no-daemon", "--info", "--stacktrace", "--offline", "-q"})
)
GRADLE_TEST_FLAGS = FlagRules(
    exact=GRADLE_BUILD_FLAGS.exact, valued=frozenset({"--tests"}), prefixes=("--tests=",)
)


def _java_target(value: str) -> str:
    target = checked_target(value)
    if target and not _JAVA_TARGET.fullmatch(target):
        raise invalid_argument(f"target must be a test class/method pattern, not {target!r}")
    return target


async def _java(job: Job, *args: str) -> Command:
    wrapper = "mvnw" if job.project.flavor == "maven" else "gradlew"
    tool = "mvn" if job.project.flavor == "maven" else "gradle"
    has_wrapper = await projects.root_file(job.ctx.runtime, wrapper) is not None
    return Command([f"./{wrapper}" if has_wrapper else tool, *args], "java")


def _java_commands(flavor: str) -> ProjectCommands:
    maven = flavor == "maven"

    async def build(job: Job) -> Completed:
        args = ["-q", "-DskipTests", "package"] if maven else ["build", "-x", "test"]
        return await job.run(await _java(job, *args, *job.extra_args))

    async def test(job: Job) -> Completed:
        target = _java_target(job.target)
        if maven:
            args = ["-q", "test", *([f"-Dtest={target}"] if target else [])]
        else:
            args = ["test", *(["--tests", target] if target else [])]
        return await job.run(await _java(job, *args, *job.extra_args))

    async def validate(job: Job) -> Completed:
        return await job.run(await _java(job, *(["-q", "compile"] if maven else ["classes"])))

    async def static_analysis(job: Job) -> Completed:
        args = ["-q", "-DskipTests", "verify"] if maven else ["check", "-x", "test"]
        return await job.run(await _java(job, *args))

    async def coverage(job: Job) -> Coverage:
        return Coverage(await test(job), supported=False)

    async def package(job: Job) -> Packaged:
        args = ["-q", "-DskipTests", "package"] if maven else ["assemble"]
        return Packaged(await job.run(await _java(job, *args)), "target" if maven else "build/libs")

    return ProjectCommands(
        build_flags=MAVEN_FLAGS if maven else GRADLE_BUILD_FLAGS,
        test_flags=MAVEN_FLAGS if maven else GRADLE_TEST_FLAGS,
        build=build,
        test=test,
        validate=validate,
        static_analysis=static_analysis,
        coverage=coverage,
        package=package,
    )


MAVEN = _java_commands("maven")
GRADLE = _java_commands("gradle")
