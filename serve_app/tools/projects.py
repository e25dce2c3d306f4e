"""What a workspace project is: its type detected from the marker files at the workspace root in
the contract's order (§4.3), and its toolchain facts (language, build system, test framework,
the command that must be installed).

Detection gathers a few facts through the session's `WorkspaceRuntime` (the marker files at the
workspace root, `*.c` sources near it, package.json) and classifies them with pure functions.
Nothing runs a command. What the toolchains then print is parsed in `toolchain_output`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from serve_app.domain.errors import ErrorCode, ServiceError
from serve_app.domain.paths import WorkspacePath
from serve_app.runtime.interface import WorkspaceRuntime


@dataclass(frozen=True)
class Project:
    """A detected project: `name` is the language family, `flavor` the build system."""

    name: str
    flavor: str

    @property
    def known(self) -> bool:
        return self.name != "unknown"


UNKNOWN = Project("unknown", "")
C_SEARCH_DEPTH = 3
# Directories that never hold the project's own C sources (dependencies, outputs, tool state).
SKIPPED_DIRS = frozenset(
    {".git", "node_modules", "vendor", ".venv", "target", ".workspace-build", ".workspace-dist"}
)
# The files at the workspace root that detection and the toolchain facts look at.
MARKERS = frozenset(
    {
        "go.mod",
        "Cargo.toml",
        "package.json",
        "tsconfig.json",
        "pyproject.toml",
        "pytest.ini",
        "requirements.txt",
        "mvnw",
        "pom.xml",
        "gradlew",
        "build.gradle",
        "build.gradle.kts",
        "CMakeLists.txt",
        "Dockerfile",
        "Containerfile",
    }
)
ROOT_LISTING_MAX = 10_000
C_LISTING_MAX = 20_000
MANIFEST_MAX_BYTES = 4 * 1024 * 1024
_REFUSED = (ErrorCode.POLICY_DENIED, ErrorCode.INVALID_ARGUMENT)


def classify(markers: frozenset[str], has_c_sources: bool = False) -> Project:
    """The first marker that matches, in the contract's order (go.mod before Cargo.toml, …);
    `markers` are the names of the regular files at the workspace root."""

    def has(*names: str) -> bool:
        return any(name in markers for name in names)

    if has("go.mod"):
        return Project("go", "go")
    if has("Cargo.toml"):
        return Project("rust", "cargo")
    if has("package.json"):
        return Project("node", "typescript" if has("tsconfig.json") else "npm")
    if has("pyproject.toml", "pytest.ini", "requirements.txt"):
        return Project("python", "pytest")
    if has("mvnw", "pom.xml"):
        return Project("java", "maven")
    if has("gradlew", "build.gradle", "build.gradle.kts"):
        return Project("java", "gradle")
    if has("CMakeLists.txt") or has_c_sources:
        return Project("c", "cc")
    return UNKNOWN


def root_path(runtime: WorkspaceRuntime) -> WorkspacePath:
    """The workspace directory itself. Project detection looks at the project's own marker files
    whatever the session's allowed_paths, as it always has; an entry directly in the workspace
    has no directory component a symlink could send elsewhere, and the runtime never follows a
    final symlink."""
    return WorkspacePath(real=runtime.workspace, relative=".", requested=".")


def _root_entry(runtime: WorkspaceRuntime, name: str) -> WorkspacePath:
    return WorkspacePath(real=runtime.workspace / name, relative=name, requested=name)


async def regular_file(runtime: WorkspaceRuntime, name: str) -> WorkspacePath | None:
    """`name` through the jail when it is a regular file (through symlinks that stay inside the
    workspace and allowed_paths); None when it is absent, something else, or refused."""
    try:
        path = await runtime.resolve(name)
    except ServiceError as error:
        if error.code in _REFUSED:
            return None
        raise
    info = await runtime.stat(path)
    return path if info is not None and info.kind == "file" else None


async def root_file(runtime: WorkspaceRuntime, name: str) -> WorkspacePath | None:
    """A regular file directly in the workspace (a symlink counts when the jail admits its
    target), or None."""
    entry = _root_entry(runtime, name)
    info = await runtime.stat(entry)
    if info is None:
        return None
    if info.kind == "file":
        return entry
    if info.kind == "symlink":
        return await regular_file(runtime, name)
    return None


async def markers(runtime: WorkspaceRuntime) -> frozenset[str]:
    """The marker files (`MARKERS`) present at the workspace root as regular files."""
    listing = await runtime.list_dir(root_path(runtime), max_entries=ROOT_LISTING_MAX)
    found: set[str] = set()
    for entry in listing.entries:
        if entry.path not in MARKERS:
            continue
        if entry.kind == "file" or (
            entry.kind == "symlink" and await regular_file(runtime, entry.path) is not None
        ):
            found.add(entry.path)
    if listing.truncated:
        for name in sorted(MARKERS - {entry.path for entry in listing.entries}):
            if await root_file(runtime, name) is not None:
                found.add(name)
    return frozenset(found)


def is_c_test(relative: str) -> bool:
    name = relative.rsplit("/", 1)[-1]
    return name.startswith("test_") or name.endswith("test.c")


async def c_sources(runtime: WorkspaceRuntime) -> list[str]:
    """`*.c` files within three levels of the workspace root, workspace-relative and sorted;
    symlinks and dependency/output directories are skipped."""
    listing = await runtime.list_dir(
        root_path(runtime),
        recursive=True,
        max_entries=C_LISTING_MAX,
        skip_dirs=SKIPPED_DIRS,
        max_depth=C_SEARCH_DEPTH,
    )
    return sorted(
        entry.path
        for entry in listing.entries
        if entry.kind == "file" and entry.path.endswith(".c")
    )


async def detect(runtime: WorkspaceRuntime) -> Project:
    """The workspace's project (see `classify`); `*.c` sources are looked for only when no
    marker file matched."""
    found = await markers(runtime)
    project = classify(found)
    if project.known:
        return project
    return classify(found, bool(await c_sources(runtime)))


def parse_package_json(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


async def package_json(runtime: WorkspaceRuntime) -> dict[str, Any]:
    """The workspace's package.json as an object ({} when absent, too large or not JSON)."""
    path = await root_file(runtime, "package.json")
    if path is None:
        return {}
    content = await runtime.read_file(path, max_bytes=MANIFEST_MAX_BYTES)
    if content.truncated:
        return {}
    return parse_package_json(content.data.decode("utf-8", "replace"))


def node_test_framework(manifest: dict[str, Any]) -> str:
    dependencies: dict[str, Any] = {}
    for key in ("dependencies", "devDependencies"):
        section = manifest.get(key)
        if isinstance(section, dict):
            dependencies.update(section)
    for framework in ("vitest", "jest", "mocha", "ava"):
        if framework in dependencies:
            return framework
    scripts = manifest.get("scripts")
    test_script = scripts.get("test", "") if isinstance(scripts, dict) else ""
    return "node:test" if "node --test" in str(test_script) else "npm test"


@dataclass(frozen=True)
class Toolchain:
    language: str
    build_system: str
    test_framework: str
    command: str  # the executable the tools run first; its presence means the toolchain is there


def toolchain_of(
    project: Project, markers: frozenset[str], manifest: dict[str, Any] | None = None
) -> Toolchain:
    """The toolchain facts of a detected project, from its marker files and (for Node) its
    package.json."""
    match project.name:
        case "go":
            return Toolchain("go", "go", "go test", "go")
        case "rust":
            return Toolchain("rust", "cargo", "cargo test", "cargo")
        case "node":
            language = "typescript" if project.flavor == "typescript" else "javascript"
            return Toolchain(language, "npm", node_test_framework(manifest or {}), "npm")
        case "python":
            return Toolchain("python", "pip", "pytest", "python3")
        case "java":
            command = "mvn" if project.flavor == "maven" else "gradle"
            return Toolchain("java", project.flavor, "junit", command)
        case "c":
            build = "cmake" if "CMakeLists.txt" in markers else "cc"
            return Toolchain("c", build, "test binary", "cc")
    return Toolchain("unknown", "unknown", "unknown", "")


async def toolchain(
    runtime: WorkspaceRuntime, project: Project, found: frozenset[str] | None = None
) -> Toolchain:
    """`toolchain_of` with the facts gathered from the workspace (`found`: the markers, when
    the caller has them already)."""
    found = await markers(runtime) if found is None else found
    manifest = await package_json(runtime) if project.name == "node" else None
    return toolchain_of(project, found, manifest)


def containerizable(markers: frozenset[str]) -> bool:
    return bool(markers & {"Dockerfile", "Containerfile"})
