"""What a virtual route shows of its upstreams' tools and prompts: filtered, projected and prefixed names that every
client accepts, and the way back from such a name to the upstream and its own name.

Names: ``{prefix}_{name}``, where ``name`` is the upstream's (or the projection's). Clients accept
``[A-Za-z0-9_-]`` and several cap tool names at 64 characters, so a name that does not fit as it is gets the
*hashed form*: ``{prefix}_{the name with other characters as '_', cut}__{8 hex of its SHA-256}``, stable across
containers and calls, and never equal to a plain name that fits (the tests check both). The way back needs no state
for a plain name (:meth:`Catalog.tool_target`); a hashed one is looked up among the hashed names the catalog has
shown (:meth:`Catalog.known`): every list it builds teaches it the hashed names in it, so a call of such a name needs
the upstream's list only when this container never listed that upstream. What it learns never goes stale: a hashed
name is a function of the configuration (prefix, projections, filter) and the upstream's own name.

Projections are the configuration's (rename, new description, annotations); filters are ``allow`` / ``deny`` glob
patterns on the upstream's own names. Prompts take the prefix, not the tool filter. A virtual route with a single
upstream may set its prefix to ``""``: its names are then the upstream's own (still filtered and projected).
"""

from __future__ import annotations

import copy
import hashlib
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from gateway.config import ToolFilter, ToolProjection, VirtualUpstream

MAX_NAME = 64
MAX_KNOWN_NAMES = 10_000  # hashed names remembered per virtual route (the oldest are forgotten first)
MAX_KNOWN_RESOURCES = 10_000  # MCP Apps resources tools point to, remembered per virtual route
SEPARATOR = "_"
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_-]")
_PLAIN = re.compile(r"^[A-Za-z0-9_-]+$")
_HASHED = re.compile(r"__[0-9a-f]{8}$")


def allowed(name: str, tools: ToolFilter) -> bool:
    """Whether the tool filter lets ``name`` (the upstream's own name) through: allow (empty: all), then deny."""
    if tools.allow and not any(fnmatchcase(name, pattern) for pattern in tools.allow):
        return False
    return not any(fnmatchcase(name, pattern) for pattern in tools.deny)


def _lead(prefix: str) -> str:
    return f"{prefix}{SEPARATOR}" if prefix else ""


def exposed_name(prefix: str, name: str) -> str:
    """The name clients see for ``name`` behind ``prefix``: plain when it fits, else the hashed form."""
    plain = f"{_lead(prefix)}{name}"
    if len(plain) <= MAX_NAME and _PLAIN.match(name) and not _HASHED.search(plain):
        return plain
    digest = hashlib.sha256(plain.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    room = MAX_NAME - len(_lead(prefix)) - 2 - len(digest)
    cut = _NOT_ALLOWED.sub("_", name)[: max(room, 0)]
    return f"{_lead(prefix)}{cut}__{digest}"


def unprefixed(prefix: str, exposed: str) -> str:
    """``exposed`` without ``prefix`` and its separator (the caller checked that it starts with them)."""
    return exposed[len(_lead(prefix)) :]


def is_hashed(exposed: str) -> bool:
    return bool(_HASHED.search(exposed))


@dataclass(frozen=True, slots=True)
class Member:
    """One upstream of a virtual route, as the catalog sees it."""

    name: str
    prefix: str
    upstream: VirtualUpstream

    def projection(self, tool: str) -> ToolProjection | None:
        return self.upstream.projections.get(tool)

    def unprojected(self, shown: str) -> str:
        """The upstream's own name of a tool shown (before the prefix) as ``shown``."""
        for original, projection in self.upstream.projections.items():
            if projection.name == shown:
                return original
        return shown


def members_of(upstreams: dict[str, VirtualUpstream]) -> list[Member]:
    return [
        Member(name, name if upstream.prefix is None else upstream.prefix, upstream)
        for name, upstream in upstreams.items()
    ]


class Catalog:
    """The tools and prompts of a virtual route's upstreams, as clients see them."""

    def __init__(self, members: list[Member]) -> None:
        self.members = members
        self._by_prefix = {member.prefix: member for member in members}
        self._by_name = {member.name: member for member in members}
        self._hashed: dict[tuple[str, str], tuple[Member, str]] = {}  # (kind, hashed name) -> (upstream, own name)
        self._resources: dict[str, str] = {}  # the ui:// resource a listed tool points to -> its upstream

    def resource_member(self, uri: object) -> str | None:
        """The upstream whose listed tool points to the resource ``uri`` (MCP Apps: a tool's ``_meta.ui.resourceUri``),
        so that reading it asks that upstream first."""
        return self._resources.get(uri) if isinstance(uri, str) else None

    def _remember_resource(self, tool: dict[str, Any], member: Member) -> None:
        meta = tool.get("_meta")
        ui = meta.get("ui") if isinstance(meta, dict) else None
        uri = ui.get("resourceUri") if isinstance(ui, dict) else None
        if isinstance(uri, str):
            if uri not in self._resources and len(self._resources) >= MAX_KNOWN_RESOURCES:
                del self._resources[next(iter(self._resources))]
            self._resources[uri] = member.name

    def known(self, kind: str, exposed: str) -> tuple[Member, str] | None:
        """(upstream, its own name) of a hashed ``tool`` or ``prompt`` name a list of this catalog has shown."""
        return self._hashed.get((kind, exposed))

    def _remember(self, kind: str, exposed: str, member: Member, original: str) -> None:
        if is_hashed(exposed):
            if len(self._hashed) >= MAX_KNOWN_NAMES:
                del self._hashed[next(iter(self._hashed))]
            self._hashed[(kind, exposed)] = (member, original)

    def member(self, name: str) -> Member | None:
        return self._by_name.get(name)

    def member_of(self, exposed: str) -> Member | None:
        """The upstream whose prefix ``exposed`` starts with (prefixes are unambiguous, the config checks it)."""
        if "" in self._by_prefix:
            return self._by_prefix[""]  # the one upstream of its route (the config allows no other)
        prefix, separator, _ = exposed.partition(SEPARATOR)
        while separator:
            member = self._by_prefix.get(prefix)
            if member is not None:
                return member
            head, separator, _ = exposed[len(prefix) + 1 :].partition(SEPARATOR)
            prefix = f"{prefix}{SEPARATOR}{head}"
        return None

    # --- tools -----------------------------------------------------------------------------------------------

    def tools(self, member: Member, listed: list[Any]) -> list[dict[str, Any]]:
        """``member``'s listed tools that pass its filter, projected and renamed (anything not a tool is dropped)."""
        shown: list[dict[str, Any]] = []
        for tool in listed:
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                continue
            original = tool["name"]
            if not allowed(original, member.upstream.tools):
                continue
            view = copy.deepcopy(tool)
            projection = member.projection(original)
            base = original
            if projection is not None:
                base = projection.name or original
                if projection.description is not None:
                    view["description"] = projection.description
                if projection.annotations:
                    annotations = view.get("annotations")
                    view["annotations"] = {**(annotations if isinstance(annotations, dict) else {})}
                    view["annotations"].update(projection.annotations)
            view["name"] = exposed_name(member.prefix, base)
            self._remember("tool", view["name"], member, original)
            self._remember_resource(view, member)
            shown.append(view)
        return shown

    def tool_target(self, exposed: str) -> tuple[Member, str] | None:
        """(upstream, its own tool name) for a plain exposed name, without any list; None for a name that is not
        this route's, is filtered out, or is in the hashed form (look that one up with :meth:`known`)."""
        member = self.member_of(exposed)
        if member is None or is_hashed(exposed):
            return None
        original = member.unprojected(unprefixed(member.prefix, exposed))
        if not original or not allowed(original, member.upstream.tools):
            return None
        projection = member.projection(original)
        if (
            projection is not None
            and projection.name is not None
            and exposed_name(member.prefix, projection.name) != exposed
        ):
            return None  # renamed: its old name is not this route's
        return member, original

    def find_tool(self, member: Member, exposed: str, listed: list[Any]) -> str | None:
        """The upstream's own name of ``exposed`` among ``member``'s listed tools (for hashed names)."""
        for tool in listed:
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                continue
            original = tool["name"]
            projection = member.projection(original)
            base = projection.name if projection is not None and projection.name else original
            if allowed(original, member.upstream.tools) and exposed_name(member.prefix, base) == exposed:
                return str(original)
        return None

    # --- prompts ---------------------------------------------------------------------------------------------

    def prompts(self, member: Member, listed: list[Any]) -> list[dict[str, Any]]:
        shown = []
        for prompt in listed:
            if isinstance(prompt, dict) and isinstance(prompt.get("name"), str):
                view = {**prompt, "name": exposed_name(member.prefix, prompt["name"])}
                self._remember("prompt", view["name"], member, prompt["name"])
                shown.append(view)
        return shown

    def prompt_target(self, exposed: str) -> tuple[Member, str] | None:
        member = self.member_of(exposed)
        if member is None or is_hashed(exposed) or not unprefixed(member.prefix, exposed):
            return None
        return member, unprefixed(member.prefix, exposed)

    def find_prompt(self, member: Member, exposed: str, listed: list[Any]) -> str | None:
        for prompt in listed:
            name = prompt.get("name") if isinstance(prompt, dict) else None
            if isinstance(name, str) and exposed_name(member.prefix, name) == exposed:
                return name
        return None
