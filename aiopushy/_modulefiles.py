"""The controller's module files as forwarding sends them: found, read, compiled and
compressed once per process, shared by every session.

``find_spec`` finds a module the way ``import`` would, without importing it or its
packages. ``module_file`` reads what that spec names, compiles it with this interpreter
and compresses both, and notes which modules of the same top-level package it imports
(``imports``), so that an answer can carry them along. Each file is done once, even
when many sessions ask for it at the same moment; the cache key is the file's path,
size and modification time.
"""

from __future__ import annotations

import dis
import importlib.machinery
import marshal
import os
import sys
import threading
import zlib
from concurrent.futures import Future
from dataclasses import dataclass
from types import CodeType
from typing import Any

#: How forwarded files are named on the remote (``__file__``, tracebacks): never a path
#: that could exist there, so ``linecache`` asks the module's loader for its lines.
FILENAME_PREFIX = "controller:"


@dataclass(frozen=True)
class ModuleFile:
    """A module ready to send."""

    name: str
    is_package: bool
    filename: str  # as the remote sees it
    source: bytes  # zlib-compressed UTF-8
    code: bytes  # zlib-compressed marshal data of the compiled module, or b""
    imports: tuple[tuple[str, Any], ...]  # (name, spec) of the modules of its top-level
    #                                        package that it imports
    resources: tuple[str, ...] = ()  # a package's data files ("data/x.json")
    directory: str = ""  # where a package's data files are, here


class Unsuitable(Exception):
    """The module exists here but cannot be forwarded (the message says why)."""


_lock = threading.Lock()
_files: dict[tuple[str, str, int, int], Future[ModuleFile]] = {}


def find_spec(fullname: str) -> Any:
    """The spec the controller's import system has for ``fullname``, found without
    importing it or its packages (``None`` if there is none)."""
    module = sys.modules.get(fullname)
    spec = getattr(module, "__spec__", None)
    if spec is not None:
        return spec
    parent, _, _ = fullname.rpartition(".")
    path = None
    if parent:
        parent_spec = find_spec(parent)
        if parent_spec is None or parent_spec.submodule_search_locations is None:
            return None
        path = list(parent_spec.submodule_search_locations)
    for finder in sys.meta_path:
        find = getattr(finder, "find_spec", None)
        if find is None:
            continue
        try:
            spec = find(fullname, path, None)
        except (ImportError, ValueError):
            continue
        if spec is not None:
            return spec
    return None


def module_file(fullname: str, spec: Any) -> ModuleFile:
    """``fullname`` (found as ``spec``) ready to send.

    Raises:
        Unsuitable: an extension module, a module without source, an unreadable one.
    """
    loader, origin = spec.loader, spec.origin
    if loader is None or (origin is None and spec.submodule_search_locations is not None):
        # a namespace package: nothing to run, its submodules are asked for one by one
        return ModuleFile(
            fullname, True, f"{FILENAME_PREFIX}{fullname} (namespace)", _EMPTY, b"", ()
        )
    if isinstance(loader, importlib.machinery.ExtensionFileLoader) or (
        isinstance(origin, str) and origin.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
    ):
        raise Unsuitable(
            f"{fullname} is a compiled extension module ({origin}); aiopushy forwards pure "
            "Python only: install it on the remote"
        )
    if (
        not isinstance(origin, str)
        or origin in ("built-in", "frozen")
        or not hasattr(loader, "get_source")
    ):
        raise Unsuitable(f"{fullname} has no source on the controller ({origin})")
    try:
        stat = os.stat(origin)
    except OSError:  # inside a zip file, say: not cached
        return _read(fullname, spec)
    key = (fullname, origin, stat.st_mtime_ns, stat.st_size)
    with _lock:
        future = _files.get(key)
        mine = future is None
        if mine:
            future = _files[key] = Future()
    assert future is not None
    if mine:  # the first to ask reads it; the others wait for that
        try:
            future.set_result(_read(fullname, spec))
        except BaseException as exc:
            with _lock:
                del _files[key]
            future.set_exception(exc)
    return future.result()


def _read(fullname: str, spec: Any) -> ModuleFile:
    try:
        source = spec.loader.get_source(fullname)
    except (ImportError, OSError, UnicodeDecodeError) as exc:
        raise Unsuitable(f"cannot read the source of {fullname}: {exc}") from None
    if source is None:
        raise Unsuitable(f"{fullname} has no source on the controller ({spec.origin})")
    is_package = spec.submodule_search_locations is not None
    filename = FILENAME_PREFIX + spec.origin
    directory = os.path.dirname(spec.origin) if is_package else ""
    resources = _data_files(directory) if directory else ()
    try:
        compiled = compile(source, filename, "exec", dont_inherit=True)
        code = zlib.compress(marshal.dumps(compiled))
        imports = _imported_modules(fullname, is_package, compiled)
    except (SyntaxError, ValueError):  # the remote compiles it, and reports the error
        code, imports = b"", ()
    return ModuleFile(
        fullname, is_package, filename, _compress(source), code, imports, resources, directory
    )


#: At most this many data files are listed per package.
MAX_DATA_FILES = 10_000
_CODE_SUFFIXES = (".py", ".pyc", *importlib.machinery.EXTENSION_SUFFIXES)


def _data_files(directory: str) -> tuple[str, ...]:
    """The data files of the package in ``directory``, as relative POSIX paths: regular
    files that are not code, in it and in its subdirectories that are not packages
    themselves (a subpackage lists its own)."""
    found: list[str] = []
    pending = [""]
    while pending and len(found) < MAX_DATA_FILES:
        relative = pending.pop()
        try:
            entries = list(os.scandir(os.path.join(directory, relative)))
        except OSError:
            continue
        for entry in entries:
            name = f"{relative}/{entry.name}" if relative else entry.name
            if entry.is_dir() and entry.name != "__pycache__":
                if not os.path.exists(os.path.join(entry.path, "__init__.py")):
                    pending.append(name)
            elif entry.is_file() and not entry.name.endswith(_CODE_SUFFIXES):
                found.append(name)
    return tuple(sorted(found[:MAX_DATA_FILES]))


def read_data_file(found: ModuleFile, relative: str) -> bytes:
    """The bytes of data file ``relative`` of package ``found``: only a file of its
    listing is read.

    Raises:
        FileNotFoundError: ``relative`` is not one of the package's data files.
    """
    if relative not in found.resources:
        raise FileNotFoundError(f"{found.name} has no data file {relative!r}")
    with open(os.path.join(found.directory, *relative.split("/")), "rb") as data:
        return data.read()


def _compress(source: str) -> bytes:
    return zlib.compress(source.encode("utf-8"))


def _imported_modules(
    fullname: str, is_package: bool, code: CodeType
) -> tuple[tuple[str, Any], ...]:
    """``(name, spec)`` of the modules of ``fullname``'s top-level package that the
    import statements of its top-level code name and that exist here (an imported name
    may be an attribute)."""
    top = fullname.partition(".")[0]
    package = fullname if is_package else fullname.rpartition(".")[0]
    instructions = list(dis.get_instructions(code))
    candidates: list[str] = []
    for index, instruction in enumerate(instructions):
        # import: LOAD_CONST level, LOAD_CONST fromlist, IMPORT_NAME module
        if instruction.opname != "IMPORT_NAME" or index < 2:
            continue
        level, names = instructions[index - 2].argval, instructions[index - 1].argval
        if type(level) is not int:
            continue
        base = ""
        if level:
            parts = package.split(".") if package else []
            if level - 1 > len(parts):
                continue
            base = ".".join(parts[: len(parts) - (level - 1)])
        module = ".".join(p for p in (base, instruction.argval) if p)
        if module:
            candidates.append(module)
            if type(names) is tuple:
                candidates += [f"{module}.{name}" for name in names if name != "*"]
    found = []
    for name in dict.fromkeys(candidates):
        if name != fullname and name.partition(".")[0] == top:
            spec = find_spec(name)
            if spec is not None:
                found.append((name, spec))
    return tuple(found)


_EMPTY = zlib.compress(b"")
