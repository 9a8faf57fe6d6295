"""Target lists from inventories: Ansible's INI and YAML formats, and ``~/.ssh/config`` aliases.

INI: ``[group]`` sections list hosts, one per line, with ``key=value`` host variables;
``[group:vars]`` sets variables for a group's hosts and ``[group:children]`` nests
groups. YAML: groups map to ``hosts`` (host -> its variables, or nothing), ``vars`` and
``children`` (nested groups); top-level groups other than ``all`` belong to ``all``, and a
group defined in several places merges. Host names may hold numeric ranges
(``web[01:03]`` is ``web01``, ``web02``, ``web03``).

The variables aiopushy understands become the target and its connect options:
``ansible_host``, ``ansible_port`` (``port=``), ``ansible_user``,
``ansible_python_interpreter`` (``python=``) and ``ansible_become`` with
``ansible_become_user`` (``sudo=``). As in Ansible, host variables win over group ones,
a child group's over its parents', and ``all``'s apply to every host; groups at the same
depth apply in name order.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml

_ALL = "all"
_GROUP_KEYS = frozenset({"hosts", "vars", "children"})
_RANGE = re.compile(r"\[(\d+):(\d+)\]")


class _Inventory:
    """Hosts, groups and variables as read from one file, before resolution."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.hosts: dict[str, dict[str, Any]] = {}  # host -> its own variables, in file order
        self.members: dict[str, list[str]] = {_ALL: []}  # group -> its direct hosts
        self.children: dict[str, list[str]] = {}
        self.group_vars: dict[str, dict[str, Any]] = {}

    def add_group(self, group: str) -> None:
        self.members.setdefault(group, [])

    def add_host(self, group: str, host: str, variables: dict[str, Any]) -> None:
        self.hosts.setdefault(host, {}).update(variables)
        self.members.setdefault(group, []).append(host)
        self.members[_ALL].append(host)

    def add_vars(self, group: str, variables: dict[str, Any]) -> None:
        self.group_vars.setdefault(group, {}).update(variables)

    def add_child(self, group: str, child: str) -> None:
        if child == _ALL:
            raise ValueError(f"{self.path}: group {_ALL!r} cannot be a child of {group!r}")
        self.add_group(group)
        self.add_group(child)
        self.children.setdefault(group, []).append(child)

    def entries(self, group: str) -> list[tuple[str, dict[str, Any]]]:
        """``(target, connect options)`` for every host of ``group``."""
        if group not in self.members:
            raise ValueError(f"{self.path}: no group {group!r}")
        # Expanding every group first also rejects any cycle before _depths() meets it.
        hosts_of = {name: self._expand(name) for name in self.members}
        depths = self._depths()
        order = sorted(self.members, key=lambda name: (depths[name], name))
        member_of = {name: set(hosts) for name, hosts in hosts_of.items()}
        entries = []
        for host in hosts_of[group]:
            variables: dict[str, Any] = {}
            for name in order:
                if host in member_of[name]:
                    variables.update(self.group_vars.get(name, {}))
            variables.update(self.hosts[host])
            entries.append(self._entry(host, variables))
        return entries

    def _expand(self, group: str, seen: frozenset[str] = frozenset()) -> list[str]:
        if group in seen:
            raise ValueError(f"{self.path}: group {group!r} contains itself")
        found = list(self.members.get(group, []))
        for child in self.children.get(group, []):
            found += self._expand(child, seen | {group})
        return list(dict.fromkeys(found))

    def _depths(self) -> dict[str, int]:
        """Each group's longest distance from ``all`` (its own parents' plus one)."""
        parents: dict[str, list[str]] = {}
        for group, children in self.children.items():
            for child in children:
                parents.setdefault(child, []).append(group)
        depths = {_ALL: 0}

        def depth(group: str) -> int:
            if group not in depths:
                depths[group] = 1 + max((depth(p) for p in parents.get(group, [])), default=0)
            return depths[group]

        for group in self.members:
            depth(group)
        return depths

    def _entry(self, host: str, variables: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        try:
            return _entry(host, variables)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{self.path}: host {host!r}: {exc}") from exc


def _expand_host(pattern: str, where: str) -> list[str]:
    """The hosts a name stands for: ``web[01:03]`` is ``web01``, ``web02``, ``web03``."""
    match = _RANGE.search(pattern)
    if match is None:
        return [pattern]
    first, last = match.groups()
    if int(first) > int(last):
        raise ValueError(f"{where}: empty range in host {pattern!r}")
    width = len(first) if first.startswith("0") else 0
    head = pattern[: match.start()]
    tails = _expand_host(pattern[match.end() :], where)
    return [
        f"{head}{str(number).zfill(width)}{tail}"
        for number in range(int(first), int(last) + 1)
        for tail in tails
    ]


def _value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "yes"):
        return True
    if lowered in ("false", "no"):
        return False
    return int(text) if text.isdigit() else text


def _true(value: Any) -> bool:
    return bool(_value(value) if isinstance(value, str) else value)


def _variables(words: list[str], where: str) -> dict[str, Any]:
    variables = {}
    for word in words:
        key, equals, value = word.partition("=")
        if not equals:
            raise ValueError(f"{where}: expected key=value, not {word!r}")
        variables[key] = _value(value)
    return variables


def read_inventory(path: str, group: str = _ALL) -> list[tuple[str, dict[str, Any]]]:
    """``(target, connect options)`` for every host of ``group`` in an Ansible inventory.

    A ``.yml`` or ``.yaml`` file is read as YAML, any other as INI.

    Raises:
        ValueError: a malformed file, or ``group`` is not in the inventory.
    """
    if Path(path).suffix.lower() in (".yml", ".yaml"):
        return read_ansible_yaml(path, group)
    return read_ansible_ini(path, group)


def read_ansible_ini(path: str, group: str = _ALL) -> list[tuple[str, dict[str, Any]]]:
    """``(target, connect options)`` for every host of ``group`` in an INI inventory.

    Raises:
        ValueError: a malformed line, or ``group`` is not in the inventory.
    """
    inventory = _Inventory(path)
    section, kind = "ungrouped", "hosts"
    for number, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split(";", 1)[0].split("#", 1)[0].strip()
        where = f"{path}:{number}"
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            section, _, kind = line[1:-1].partition(":")
            kind = kind or "hosts"
            inventory.add_group(section)
            continue
        words = shlex.split(line)
        if kind == "vars":
            inventory.add_vars(section, _variables(words, where))
        elif kind == "children":
            inventory.add_child(section, words[0])
        else:
            variables = _variables(words[1:], where)
            for host in _expand_host(words[0], where):
                inventory.add_host(section, host, variables)
    return inventory.entries(group)


def read_ansible_yaml(path: str, group: str = _ALL) -> list[tuple[str, dict[str, Any]]]:
    """``(target, connect options)`` for every host of ``group`` in a YAML inventory.

    Raises:
        ValueError: invalid YAML, a malformed structure, or ``group`` is not in the
            inventory.
    """
    with open(path, encoding="utf-8") as stream:
        try:
            document = yaml.safe_load(stream)
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: invalid YAML: {exc}") from exc
    inventory = _Inventory(path)
    for name, body in _mapping(document, path, "the top level").items():
        _read_yaml_group(inventory, str(name), body)
    return inventory.entries(group)


def _read_yaml_group(
    inventory: _Inventory, group: str, body: object, ancestors: tuple[str, ...] = ()
) -> None:
    path, where = inventory.path, f"group {group!r}"
    if group in ancestors:  # also stops a YAML alias that nests a group in itself
        raise ValueError(f"{path}: {where} contains itself")
    fields = _mapping(body, path, where)
    unknown = sorted(str(key) for key in fields.keys() - _GROUP_KEYS)
    if unknown:
        raise ValueError(
            f"{path}: {where}: unknown key {unknown[0]!r} (not hosts, vars, children)"
        )
    inventory.add_group(group)
    for host, variables in _mapping(fields.get("hosts"), path, f"{where} hosts").items():
        own = _mapping(variables, path, f"host {host!r}")
        for name in _expand_host(str(host), f"{path}: {where}"):
            inventory.add_host(group, name, own)
    inventory.add_vars(group, _mapping(fields.get("vars"), path, f"{where} vars"))
    for child, child_body in _mapping(fields.get("children"), path, f"{where} children").items():
        inventory.add_child(group, str(child))
        _read_yaml_group(inventory, str(child), child_body, (*ancestors, group))


def _mapping(value: object, path: str, where: str) -> dict[Any, Any]:
    """``value`` if it is a mapping, ``{}`` if it is empty (YAML ``null``)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{path}: {where}: expected a mapping, not {type(value).__name__}")
    return value


def _entry(host: str, variables: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    address = str(variables.get("ansible_host", host))
    user = variables.get("ansible_user")
    target = f"ssh:{user}@{address}" if user else f"ssh:{address}"
    options: dict[str, Any] = {}
    if "ansible_port" in variables:
        options["port"] = int(variables["ansible_port"])
    if "ansible_python_interpreter" in variables:
        options["python"] = str(variables["ansible_python_interpreter"])
    if _true(variables.get("ansible_become")):
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
