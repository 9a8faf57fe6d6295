"""Target lists from inventories: Ansible's INI format, and ``~/.ssh/config`` aliases.

``[group]`` sections list hosts, one per line, with ``key=value`` host variables;
``[group:vars]`` sets variables for a group's hosts and ``[group:children]`` nests
groups. The variables aiopushy understands become the target and its connect options:
``ansible_host``, ``ansible_port``, ``ansible_user``, ``ansible_python_interpreter``
(``python=``) and ``ansible_become`` (``sudo=``). Host variables win over group ones.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

_ALL = "all"


def _value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "yes"):
        return True
    if lowered in ("false", "no"):
        return False
    return int(text) if text.isdigit() else text


def _variables(words: list[str], where: str) -> dict[str, Any]:
    variables = {}
    for word in words:
        key, equals, value = word.partition("=")
        if not equals:
            raise ValueError(f"{where}: expected key=value, not {word!r}")
        variables[key] = _value(value)
    return variables


def read_ansible_ini(path: str, group: str = _ALL) -> list[tuple[str, dict[str, Any]]]:
    """``(target, connect options)`` for every host of ``group`` in an INI inventory.

    Raises:
        ValueError: a malformed line, or ``group`` is not in the inventory.
    """
    hosts: dict[str, dict[str, Any]] = {}  # host -> its own variables, in file order
    members: dict[str, list[str]] = {_ALL: []}
    children: dict[str, list[str]] = {}
    group_vars: dict[str, dict[str, Any]] = {}
    section, kind = "ungrouped", "hosts"
    for number, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split(";", 1)[0].split("#", 1)[0].strip()
        where = f"{path}:{number}"
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            section, _, kind = line[1:-1].partition(":")
            kind = kind or "hosts"
            members.setdefault(section, [])
            continue
        words = shlex.split(line)
        if kind == "vars":
            group_vars.setdefault(section, {}).update(_variables(words, where))
        elif kind == "children":
            children.setdefault(section, []).append(words[0])
        else:
            name = words[0]
            hosts.setdefault(name, {}).update(_variables(words[1:], where))
            members.setdefault(section, []).append(name)
            members[_ALL].append(name)

    def expand(name: str, seen: frozenset[str] = frozenset()) -> list[str]:
        if name in seen:
            raise ValueError(f"{path}: group {name!r} contains itself")
        found = list(members.get(name, []))
        for child in children.get(name, []):
            found += expand(child, seen | {name})
        return list(dict.fromkeys(found))

    if group not in members and group not in children:
        raise ValueError(f"{path}: no group {group!r}")

    def groups_of(host: str) -> list[str]:
        return [g for g in [_ALL, *members] if host in expand(g)]

    entries = []
    for host in expand(group):
        variables: dict[str, Any] = {}
        for name in groups_of(host):
            variables.update(group_vars.get(name, {}))
        variables.update(hosts[host])
        entries.append(_entry(host, variables))
    return entries


def _entry(host: str, variables: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    address = str(variables.get("ansible_host", host))
    user = variables.get("ansible_user")
    target = f"ssh:{user}@{address}" if user else f"ssh:{address}"
    options: dict[str, Any] = {}
    if "ansible_port" in variables:
        options["port"] = int(variables["ansible_port"])
    if "ansible_python_interpreter" in variables:
        options["python"] = str(variables["ansible_python_interpreter"])
    if variables.get("ansible_become"):
        become_user = variables.get("ansible_become_user")
        options["sudo"] = str(become_user) if become_user else True
    return target, options


def read_ssh_config_hosts(path: str | None = None, pattern: str = "*") -> list[str]:
    """``ssh:ALIAS`` for every concrete ``Host`` alias in an ssh config matching ``pattern``.

    Wildcard and negated patterns (``*``, ``?``, ``!``) are not hosts and are skipped;
    the ssh transport then honours the alias's own settings from the config.
    """
    import fnmatch

    config = Path(path or Path.home() / ".ssh" / "config").expanduser()
    aliases: list[str] = []
    for raw in config.read_text(encoding="utf-8").splitlines():
        words = raw.split("#", 1)[0].split()
        if len(words) < 2 or words[0].lower() != "host":
            continue
        for alias in words[1:]:
            if not any(c in alias for c in "*?!") and fnmatch.fnmatch(alias, pattern):
                aliases.append(alias)
    return [f"ssh:{alias}" for alias in dict.fromkeys(aliases)]
