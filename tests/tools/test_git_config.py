"""`git_config.parse` reads a config file exactly as git does: each case, written and generated,
is also read by the real git (`git config --file … --list -z`), and both must agree on every
variable's name and value, or both refuse the file."""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

import pytest

from serve_app.tools.git_config import ConfigSyntaxError, Variable, parse

Listing = list[tuple[bytes, bytes | None]]


def git_reads(path: Path, data: bytes) -> Listing | None:
    """What git lists for `data` as a config file, None when git refuses it."""
    path.write_bytes(data)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(path.parent),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
    }
    done = subprocess.run(
        ["git", "config", "-z", "--no-includes", "--file", str(path), "--list"],
        env=env,
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        return None
    listing: Listing = []
    for record in done.stdout.split(b"\0")[:-1]:
        name, newline, value = record.partition(b"\n")
        listing.append((name, value if newline else None))
    return listing


def we_read(data: bytes) -> Listing | None:
    try:
        return [(variable.name, variable.value) for variable in parse(data)]
    except ConfigSyntaxError:
        return None


CASES = [
    b'[filter "evil"]\n\tclean = x\n',
    b"[filter.LEGACY]\n\tclean = x\n",
    b"[FILTER.a.B]\n\tClean = x\n",
    b'[Filter "Odd=Name x.y"]\n\tclean = x\n',
    b'[filter "q\\"uo\\\\te\\x"]\n\tclean = x\n',
    b'[filter "x"] clean = on the header line\n',
    b'[filter\t"tab"]\nclean=x',
    b'[core]\n\tbare\n\tflag\r\n\tvalue = a ; comment\n\tv2 = "a ; not" # comment\n',
    b'[core]\n\tv = a\\\n  continued\n\tw = "quoted\\\n  too"\n',
    b'[core]\n\tv = \\t\\n\\b\\"\\\\\n',
    b"\xef\xbb\xbf[core]\n\tv = bom\n",
    b"\xef\xbb[core]\n",
    b"[core]\r\n\tv = crlf\r\n[x]\r\tv = cr\r",
    b"; comment\n# comment\n[core] ; comment\n\tv = 1\n",
    b'[core]\n\tv = "unterminated\n',
    b"[core]\n\tv = \\q\n",
    b"[core]\n\tbad key = x\n",
    b"[core]\n\t1key = x\n",
    b'[filter "newline\n"]\n',
    b'[filter "x" ]\n',
    b'[filter "x"\n',
    b"[]\n",
    b"[.]\n\tv = 1\n",
    b"[a..b]\n\tv = 1\n",
    b"[core\x0b]\n",
    b'[core \x0b"x"]\n',
    b"[core]\n\tv\x0b= 1\n",
    b'[includeIf "gitdir:/a/**"]\n\tpath = x\n[include]\n\tpath = y\n',
    b"[core]\n\tv = \xff\xfe\n",
    b'[filter "\xff"]\n\tclean = x\n',
    b"[core]\n\tv = a\\",
    b"[core]\n\tv",
    b'[core]\n\tv = "a"b"c"\n',
    b"key = no section\n",
]


@pytest.mark.parametrize("data", CASES)
def test_each_case_reads_as_git_reads_it(tmp_path: Path, data: bytes) -> None:
    assert we_read(data) == git_reads(tmp_path / "config", data)


def _generated(rnd: random.Random) -> bytes:
    """A config file of likely lines, each part now and then replaced by an awkward one."""

    def pick(usual: list[bytes], awkward: list[bytes]) -> bytes:
        return rnd.choice(awkward if rnd.random() < 0.06 else usual)

    lines = []
    for _ in range(rnd.randint(1, 8)):
        space = pick([b"", b"\t", b"  "], [b"\r", b"\x0b", b"\x0c"])
        roll = rnd.random()
        if roll < 0.35:
            name = pick(
                [b"filter", b"Filter", b"merge", b"diff", b"include", b"includeIf", b"core"],
                [b"a.b", b"x-y", b"", b".", b"a..b", b"1a", b"\xc3\xa9", b"a_b"],
            )
            if rnd.random() < 0.6:
                sub = pick(
                    [b"x", b"X y", b"a=b", b"dot.ted", b"gitdir:/a/**"],
                    [b'q\\"', b"b\\\\s", b"\\n", b"", b"\xff", b"t\tt", b"c\rr", b"\\\n", b'"'],
                )
                sep = pick([b" "], [b"  ", b"\t", b"\x0b", b"\r", b""])
                end = pick([b"]"], [b" ]", b"]x", b"", b'"]'])
                header = b"[" + name + sep + b'"' + sub + b'"' + end
            else:
                header = b"[" + name + pick([b"", b".sub", b".SUB"], [b". x", b".-", b".."]) + b"]"
            lines.append(space + header + pick([b""], [b" k = v", b" ; c", b"k", b"\tK=V"]))
        elif roll < 0.9:
            key = pick(
                [b"clean", b"Smudge", b"process", b"driver", b"path", b"a-1"],
                [b"1x", b"-x", b"k_y", b"k.y", b"k\xc3\xa9"],
            )
            equals = pick([b"=", b" = ", b"\t=\t"], [b"", b":", b" \x0b= "])
            value = pick(
                [b"v", b"sh -c 'x'", b'"q;#"', b"a ; c", b"  s  p  ", b'"a"b"c"', b"\\t\\n\\b"],
                [b'"open', b"x\\\ny", b"\\q", b"x\\", b"\\\r\ny", b"\xff", b'"\r"'],
            )
            lines.append(space + key + equals + value + pick([b""], [b" ;c", b" #c", b"\r"]))
        else:
            lines.append(pick([b"; comment", b"# c", b"", b"   "], [b"\xef\xbb\xbf", b"[", b"\\"]))
    data = pick([b"\n"], [b"\r\n", b"\n\n", b"\r"]).join(lines) + pick([b"\n", b""], [b"\r"])
    return pick([b""], [b"\xef\xbb\xbf", b"\xef\xbb"]) + data


def test_generated_files_read_as_git_reads_them(tmp_path: Path) -> None:
    rnd = random.Random(20240601)
    agreed = refused = 0
    for _ in range(200):
        data = _generated(rnd)
        ours = we_read(data)
        assert ours == git_reads(tmp_path / "config", data), data
        if ours is None:
            refused += 1
        else:
            agreed += 1
    assert agreed > 80 and refused > 20  # both kinds of file were tried


def test_a_nul_byte_is_refused_outright() -> None:
    with pytest.raises(ConfigSyntaxError):
        parse(b'[filter "ev\0il"]\n\tclean = x\n')


def test_a_variable_splits_as_git_splits_it() -> None:
    legacy, extended, plain = parse(b'[Filter.A.B]\nclean\n[merge "x.y"] driver=d\n[core]bare\n')
    assert (legacy.section, legacy.subsection, legacy.key) == (b"filter", b"a.b", b"clean")
    assert (extended.section, extended.subsection, extended.key) == (b"merge", b"x.y", b"driver")
    assert (plain.section, plain.subsection, plain.key) == (b"core", None, b"bare")
    assert plain == Variable(b"core.bare", None)
