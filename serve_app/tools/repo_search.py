"""repo.symbol_search and repo.find_references: where a symbol occurs in the workspace (`grep -r`
in the sandbox, file/line/column per match, .git and binary files skipped), and which of those
lines declare it."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field

from serve_app.domain.capability import (
    ArgField,
    CostHint,
    Idempotency,
    PathField,
    RiskLevel,
    Scope,
    SideEffects,
)
from serve_app.domain.errors import ErrorCode, ServiceError, invalid_argument
from serve_app.domain.paths import WorkspacePath
from serve_app.tools.base import Tool, ToolContext, ToolFailed, ToolResult
from serve_app.tools.declare import Arguments, Output, WorkspacePathArg, bounded, tool
from serve_app.tools.fitting import leading, room_left
from serve_app.tools.languages import Command, Completed, run_toolchain

SYMBOL_MAX = 160
SYMBOL_DENY_CHARACTERS = ["\x00", "\n", "\r"]
SNIPPET_CHARS = 512
RESULTS_DEFAULT, RESULTS_MAX = 200, 2000
# grep's output is read whole (up to this much) to sort the matches; what is reported is then
# fitted to the tool's output limit.
SEARCH_OUTPUT_LIMIT = 8 * 1024 * 1024

Symbol = Annotated[str, Field(min_length=1, max_length=SYMBOL_MAX)]
SYMBOL_POLICY = ArgField(
    field="symbol", max_length=SYMBOL_MAX, deny_characters=list(SYMBOL_DENY_CHARACTERS)
)


def checked_symbol(value: str) -> str:
    symbol = value.strip()
    if not symbol:
        raise invalid_argument("symbol is required")
    if len(symbol) > SYMBOL_MAX or any(c in symbol for c in SYMBOL_DENY_CHARACTERS):
        raise invalid_argument(f"symbol must be one line of at most {SYMBOL_MAX} characters")
    return symbol


class Match(Output):
    path: str
    line: int
    column: int
    snippet: str


def _column(snippet: str, symbol: str, *, regex: bool, case_sensitive: bool, word: bool) -> int:
    flags = 0 if case_sensitive else re.IGNORECASE
    pattern = symbol if regex else re.escape(symbol)
    if word:
        pattern = rf"(?<![A-Za-z0-9_])(?:{pattern})(?![A-Za-z0-9_])"
    try:
        match = re.search(pattern, snippet, flags)
    except re.error:
        return 1
    return match.start() + 1 if match else 1


async def grep(
    ctx: ToolContext,
    symbol: str,
    path: WorkspacePath,
    *,
    case_sensitive: bool,
    whole_word: bool,
    use_regex: bool,
    limit: int,
) -> tuple[Completed, list[Match], bool]:
    """`grep -r` under `path` (symlinks inside the tree are not followed) with the symbol after
    `--`: the run, at most `limit` matches sorted by path, line and column, and whether there
    were more."""
    if await ctx.runtime.stat(path) is None:
        raise ServiceError(ErrorCode.NOT_FOUND, f"path not found: {path.requested}")
    argv = ["grep", "-r", "-n", "-H", "-I", "-Z", "--exclude-dir=.git"]
    argv += [] if case_sensitive else ["-i"]
    argv += ["-w"] if whole_word else []
    argv += [
        "-E" if use_regex else "-F",
        "--",
        symbol,
        "." if path.relative == "." else path.relative,
    ]
    run = await run_toolchain(ctx, Command(argv, "grep"), output_kb=SEARCH_OUTPUT_LIMIT // 1024)
    matches: list[Match] = []
    truncated = run.truncated
    for line in run.output.splitlines():
        name, separator, rest = line.partition("\0")
        number, colon, snippet = rest.partition(":")
        if not separator or not colon or not number.isdigit():
            continue
        if len(matches) >= limit:
            truncated = True
            break
        column = _column(
            snippet, symbol, regex=use_regex, case_sensitive=case_sensitive, word=whole_word
        )
        matches.append(
            Match(
                path=name.removeprefix("./"),
                line=int(number),
                column=column,
                snippet=snippet[:SNIPPET_CHARS],
            )
        )
    if run.exit_code >= 2 and not matches:
        message = run.output.strip().splitlines()[-1] if run.output.strip() else "grep failed"
        if use_regex:
            raise invalid_argument(f"invalid regular expression: {message}")
        raise ToolFailed(ErrorCode.EXECUTION_FAILED, message, exit_code=run.exit_code)
    matches.sort(key=lambda match: (match.path, match.line, match.column))
    return run, matches, truncated


# repo.symbol_search -----------------------------------------------------------------------------


class SymbolSearchArgs(Arguments):
    symbol: Symbol
    path: WorkspacePathArg = "."
    max_results: Annotated[int, bounded(1, RESULTS_MAX, f"Default {RESULTS_DEFAULT}")] = (
        RESULTS_DEFAULT
    )
    case_sensitive: Annotated[bool, Field(description="Default true")] = True
    whole_word: Annotated[bool, Field(description="Default false")] = False
    use_regex: Annotated[bool, Field(description="POSIX extended regex (default false)")] = False


class SymbolSearchOutput(Output):
    """`matches_count` counts the matches reported; `truncated` says there were more (past
    `max_results` or the output limit)."""

    symbol: str
    path: str
    case_sensitive: bool
    whole_word: bool
    use_regex: bool
    command: list[str]
    exit_code: int
    matches_count: int
    truncated: bool
    matches: list[Match]
    summary: str
    output: str


@tool(
    name="repo.symbol_search",
    description="Search symbols with deterministic file/line/column matches in allowed workspace "
    "paths (grep -F, or -E with use_regex; .git and binary files skipped).",
    scope=Scope.REPO,
    risk=RiskLevel.LOW,
    approval=False,
    side_effects=SideEffects.NONE,
    idempotency=Idempotency.BEST_EFFORT,
    timeout=120,
    output_kb=1024,
    cost=CostHint.MEDIUM,
    path_fields=[PathField(field="path")],
    arg_fields=[SYMBOL_POLICY],
    examples=[
        {"symbol": "CreateTodo", "path": "."},
        {"symbol": "^Test.*Todo", "use_regex": True},
    ],
)
async def symbol_search(ctx: ToolContext, args: SymbolSearchArgs) -> ToolResult[SymbolSearchOutput]:
    symbol = checked_symbol(args.symbol)
    path = await ctx.path(args.path or ".")
    run, found, truncated = await grep(
        ctx,
        symbol,
        path,
        case_sensitive=args.case_sensitive,
        whole_word=args.whole_word,
        use_regex=args.use_regex,
        limit=args.max_results,
    )
    output = SymbolSearchOutput(
        symbol=symbol,
        path=path.requested,
        case_sensitive=args.case_sensitive,
        whole_word=args.whole_word,
        use_regex=args.use_regex,
        command=run.command,
        exit_code=run.exit_code,
        matches_count=0,
        truncated=truncated,
        matches=[],
        summary="",
        output="",
    )
    matches = leading(found, room_left(output, ctx.output_limit))
    summary = f"found {len(matches)} symbol matches"
    output.matches, output.matches_count = matches, len(matches)
    output.truncated = truncated or len(matches) < len(found)
    output.summary = output.output = summary
    return ToolResult(output=output, exit_code=run.exit_code)


# repo.find_references ---------------------------------------------------------------------------


class FindReferencesArgs(Arguments):
    symbol: Symbol
    path: WorkspacePathArg = "."
    max_references: Annotated[int | None, bounded(1, RESULTS_MAX, f"Default {RESULTS_DEFAULT}")] = (
        None
    )
    max_results: Annotated[int | None, bounded(1, RESULTS_MAX, "Alias of max_references")] = None
    case_sensitive: Annotated[bool, Field(description="Default true")] = True
    include_declarations: Annotated[bool, Field(description="Default true")] = True

    @property
    def limit(self) -> int:
        """`max_references`, else its alias `max_results`, else the default."""
        return self.max_references or self.max_results or RESULTS_DEFAULT


class Reference(Match):
    is_declaration: bool


class FindReferencesOutput(Output):
    """`references_count` counts the references reported; `truncated` says there were more (past
    `max_references` or the output limit). `declaration_count` counts every declaring line
    found."""

    symbol: str
    path: str
    case_sensitive: bool
    include_declarations: bool
    command: list[str]
    exit_code: int
    references_count: int
    declaration_count: int
    truncated: bool
    references: list[Reference]
    summary: str
    output: str


@tool(
    name="repo.find_references",
    description="Find symbol references with declaration tagging for refactor-safe reasoning "
    "(whole-word, fixed-string matches).",
    scope=Scope.REPO,
    risk=RiskLevel.LOW,
    approval=False,
    side_effects=SideEffects.NONE,
    idempotency=Idempotency.BEST_EFFORT,
    timeout=120,
    output_kb=1024,
    cost=CostHint.MEDIUM,
    path_fields=[PathField(field="path")],
    arg_fields=[SYMBOL_POLICY],
    examples=[
        {"symbol": "CreateTodo", "path": "."},
        {"symbol": "Todo", "include_declarations": False},
    ],
)
async def find_references(
    ctx: ToolContext, args: FindReferencesArgs
) -> ToolResult[FindReferencesOutput]:
    symbol = checked_symbol(args.symbol)
    path = await ctx.path(args.path or ".")
    run, matches, truncated = await grep(
        ctx,
        symbol,
        path,
        case_sensitive=args.case_sensitive,
        whole_word=True,
        use_regex=False,
        limit=RESULTS_MAX,
    )
    found: list[Reference] = []
    declarations = 0
    for match in matches:
        declaration = is_declaration(match.snippet, symbol, args.case_sensitive)
        declarations += declaration
        if declaration and not args.include_declarations:
            continue
        if len(found) >= args.limit:
            truncated = True
            break
        found.append(Reference(**match.model_dump(), is_declaration=declaration))
    output = FindReferencesOutput(
        symbol=symbol,
        path=path.requested,
        case_sensitive=args.case_sensitive,
        include_declarations=args.include_declarations,
        command=run.command,
        exit_code=run.exit_code,
        references_count=0,
        declaration_count=declarations,
        truncated=truncated,
        references=[],
        summary="",
        output="",
    )
    references = leading(found, room_left(output, ctx.output_limit))
    summary = f"found {len(references)} symbol references ({declarations} declarations)"
    output.references, output.references_count = references, len(references)
    output.truncated = truncated or len(references) < len(found)
    output.summary = output.output = summary
    return ToolResult(output=output, exit_code=run.exit_code)


# declarations -----------------------------------------------------------------------------------

_MODIFIERS = (
    r"^\s*(?:(?:export|default|pub(?:\([^)]*\))?|async|static|public|private|protected|final|"
    r"abstract|inline|extern|unsafe|override|virtual)\s+)*"
)
# Words that start statements, not definitions, in C and the languages searched alongside it.
_STATEMENT_WORDS = frozenset(
    {"return", "else", "if", "while", "for", "switch", "case", "sizeof", "do", "goto", "new"}
    | {"assert", "await", "yield", "raise", "throw", "not", "and", "or", "in", "is", "lambda"}
    | {"del", "with", "elif", "print", "echo", "typeof", "delete"}
)


def is_declaration(snippet: str, symbol: str, case_sensitive: bool) -> bool:
    """Whether the line declares `symbol` (func/def/fn/class/struct/type/let/const/var/#define,
    `symbol :=`, or a C-style function definition)."""
    flags = 0 if case_sensitive else re.IGNORECASE
    name = re.escape(symbol)
    keyword = (
        r"(?:type|class|struct|enum|union|interface|trait|def|fn|function\*?|let|var|const|mod|"
        r"impl|typedef(?:\s+\w+)*)"
    )
    patterns = [
        _MODIFIERS + r"func\s*(?:\([^)]*\)\s*)?" + name + r"\b",
        _MODIFIERS + keyword + r"\s+" + name + r"\b",
        r"^\s*" + name + r"\s*(?::=|=(?!=))",
        r"^\s*#\s*define\s+" + name + r"\b",
    ]
    if any(re.search(pattern, snippet, flags) for pattern in patterns):
        return True
    c_definition = re.match(
        r"^\s*(?P<first>[A-Za-z_]\w*)[\w\s\*]*?[\s\*]" + name + r"\s*\([^;]*$", snippet, flags
    )
    return c_definition is not None and c_definition["first"] not in _STATEMENT_WORDS


TOOLS: list[Tool] = [symbol_search, find_references]
