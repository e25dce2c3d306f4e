"""Label and field selectors as the API server parses them (`?labelSelector=`, `?fieldSelector=`).

Label selectors: `a=b`, `a==b`, `a!=b`, `a` (exists), `!a` (does not exist), `a in (x,y)`,
`a notin (x,y)`, comma-separated (all must hold). Field selectors: `f=v`, `f==v`, `f!=v` on the
fields the real server indexes for the kind (`metadata.name`, `metadata.namespace` everywhere; a
few more for pods, events, secrets, namespaces); any other field answers 400 like the real one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


class SelectorError(ValueError):
    """A selector the server refuses (answered as 400 BadRequest)."""


_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def label_key_problem(key: str) -> str | None:
    """Why `key` is not a valid label key, or None (the rules of metadata.labels keys)."""
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return f"prefix part {prefix!r} must be a DNS subdomain"
    if not name or len(name) > 63 or not _LABEL_NAME.match(name):
        return (
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
            "and end with an alphanumeric character (at most 63 characters)"
        )
    return None


def label_value_problem(value: str) -> str | None:
    """Why `value` is not a valid label value, or None (empty is valid)."""
    if value == "":
        return None
    if len(value) > 63:
        return "must be no more than 63 characters"
    if not _LABEL_NAME.match(value):
        return (
            "a valid label must be an empty string or consist of alphanumeric characters, '-', "
            "'_' or '.', and must start and end with an alphanumeric character"
        )
    return None


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # "exists", "!exists", "=", "!=", "in", "notin"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator == "exists":
            return present
        if self.operator == "!exists":
            return not present
        if self.operator in ("=", "in"):
            return present and value in self.values
        # "!=" and "notin" also match objects without the label, as on a real server.
        return not present or value not in self.values


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


_SET = re.compile(r"^\s*(?P<key>[^\s!=(),]+)\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)\s*$")
_EQUALITY = re.compile(r"^\s*(?P<key>[^\s!=(),]+)\s*(?P<op>==|=|!=)\s*(?P<value>[^\s!=(),]*)\s*$")
_EXISTS = re.compile(r"^\s*(?P<neg>!)?\s*(?P<key>[^\s!=(),]+)\s*$")


def parse_label_selector(text: str) -> list[Requirement]:
    """The requirements of a label selector; raises SelectorError for what a server refuses."""
    if not text.strip():
        return []
    requirements: list[Requirement] = []
    for part in _split_top_level(text):
        requirement = _parse_requirement(part)
        problem = label_key_problem(requirement.key)
        if problem is None:
            problem = next(filter(None, map(label_value_problem, requirement.values)), None)
        if problem is not None:
            raise SelectorError(f"unable to parse requirement: {part.strip()!r}: {problem}")
        requirements.append(requirement)
    return requirements


def _parse_requirement(part: str) -> Requirement:
    if match := _SET.match(part):
        values = tuple(v.strip() for v in match["values"].split(","))
        return Requirement(match["key"], match["op"], values)
    if match := _EQUALITY.match(part):
        operator = "!=" if match["op"] == "!=" else "="
        return Requirement(match["key"], operator, (match["value"],))
    if match := _EXISTS.match(part):
        return Requirement(match["key"], "!exists" if match["neg"] else "exists")
    raise SelectorError(
        f"unable to parse requirement: found {part.strip()!r}, expected a requirement"
    )


def labels_match(requirements: Sequence[Requirement], labels: Mapping[str, str] | None) -> bool:
    labels = labels or {}
    return all(requirement.matches(labels) for requirement in requirements)


# The fields each kind's field selectors may name on a real server (besides metadata.*).
SELECTABLE_FIELDS: dict[str, frozenset[str]] = {
    "pods": frozenset(
        {
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.podIPs",
            "status.nominatedNodeName",
        }
    ),
    "events": frozenset(
        {
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        }
    ),
    "secrets": frozenset({"type"}),
    "namespaces": frozenset({"status.phase"}),
    "replicasets": frozenset({"status.replicas"}),
}
_ALWAYS_SELECTABLE = frozenset({"metadata.name", "metadata.namespace"})


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    equal: bool
    value: str

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return (field_value(obj, self.field) == self.value) == self.equal


def parse_field_selector(text: str, plural: str) -> list[FieldRequirement]:
    if not text.strip():
        return []
    allowed = _ALWAYS_SELECTABLE | SELECTABLE_FIELDS.get(plural, frozenset())
    requirements: list[FieldRequirement] = []
    for part in text.split(","):
        match = _EQUALITY.match(part)
        if match is None:
            raise SelectorError(f"invalid selector: {text!r}; can't understand {part.strip()!r}")
        if match["key"] not in allowed:
            raise SelectorError(f"field label not supported: {match['key']}")
        requirements.append(FieldRequirement(match["key"], match["op"] != "!=", match["value"]))
    return requirements


def field_value(obj: Mapping[str, Any], path: str) -> str:
    """The string a field selector compares: "" when absent, booleans lower-cased."""
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return ""
        value = value.get(part)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(
            str(item.get("ip", item)) if isinstance(item, dict) else str(item) for item in value
        )
    return str(value)


def fields_match(requirements: Sequence[FieldRequirement], obj: Mapping[str, Any]) -> bool:
    return all(requirement.matches(obj) for requirement in requirements)
