"""The Lua scripts run in Redis: each a ``.lua`` file in its package's ``lua/`` folder.

A file starts with a header naming the ``KEYS`` and ``ARGV`` it reads. A script made of parts
names them in order, one line each, where their text goes::

    -- include: clock.lua

Each included file may include others from the same folder; every file comes in once per
script, where it is first included (the functions and locals it defines are then in scope for
the rest of the script). ``tests/test_redis_protocol.py`` checks every header and
include, and the field names and key layouts that Lua and Python share.
"""

from __future__ import annotations

import re
from importlib import resources
from importlib.resources.abc import Traversable

FOLDER = "lua"
INCLUDE = re.compile(r"^-- include: (\S+)[ \t]*$", re.MULTILINE)


class ScriptError(LookupError):
    """A script or one of its includes is not where it is named."""


def load(package: str | None, name: str) -> str:
    """The script ``name`` of ``package``'s ``lua/`` folder (a caller passes its own
    ``__package__``), with its includes in place."""
    if not package:
        raise ScriptError(f"Lua script {name}: no package named to find it in")
    return _expand(resources.files(package) / FOLDER, name, [], set())


def _expand(folder: Traversable, name: str, within: list[str], done: set[str]) -> str:
    path = folder / name
    if not path.is_file():
        where = f"included by {within[-1]}" if within else "asked for"
        raise ScriptError(f"Lua script {name} ({where}) is not in {folder}")
    if name in within:
        raise ScriptError(f"Lua script {name} includes itself: {' -> '.join([*within, name])}")
    done.add(name)
    chain = [*within, name]

    def include(match: re.Match[str]) -> str:
        part = match[1]
        if part in done and part not in chain:
            return ""  # already in the script, above
        return _expand(folder, part, chain, done).rstrip("\n")

    return INCLUDE.sub(include, path.read_text())
