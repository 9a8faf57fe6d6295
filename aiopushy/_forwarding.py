"""What the controller forwards to a remote that imports a module it lacks.

A session's ``ForwardPolicy`` says which module names it forwards: the packages of the
functions passed to ``call()``, the names given as ``forward_modules``, or, with
``forward_modules=True``, any module outside the standard library. For an allowed name
the controller finds the module with its own import system, without importing it (the
finders of ``sys.meta_path``, as ``import`` would ask them), and answers with its
source, or its compiled code where the remote's bytecode is ours, with the modules of
the same package that it imports. The request only ever carries a module name: no path
the remote names is read. Module files are read once per process (``_modulefiles``).
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any

from ._modulefiles import ModuleFile, Unsuitable, find_spec, module_file, read_data_file
from ._protocol import messages as m

#: Which compiled code this interpreter makes: a remote with the same key can run it.
BYTECODE_KEY = m.bytecode_key()

#: The name of the controller's ``__main__`` script on the remote (see ``call``).
MAIN_ALIAS = "__aiopushy_main__"

Answer = tuple[Any, ...]


class ForwardPolicy:
    """The module names one session forwards (see the module)."""

    def __init__(self, modules: bool | Iterable[str] = ()) -> None:
        self.any_module = modules is True
        self._trees: set[str] = set()  # a name with its submodules
        self._parents: set[str] = set()  # packages on the way to one of those
        if isinstance(modules, bool):
            return
        if isinstance(modules, str):
            raise TypeError("forward_modules takes a list of module names, or True")
        for name in modules:
            self.allow(name)

    def allow(self, name: str) -> None:
        """Forward module ``name`` and its submodules (and the packages above it)."""
        if not isinstance(name, str) or not _is_module_name(name):
            raise ValueError(f"not a module name: {name!r}")
        self._trees.add(name)
        parts = name.split(".")
        self._parents.update(".".join(parts[:i]) for i in range(1, len(parts)))

    def permits(self, fullname: str) -> bool:
        """Whether ``fullname`` may be forwarded."""
        if fullname in self._parents:
            return True
        parts = fullname.split(".")
        if any(".".join(parts[:i]) in self._trees for i in range(1, len(parts) + 1)):
            return True
        return self.any_module and parts[0] not in sys.stdlib_module_names

    def describe(self) -> str:
        """What is forwarded, for error messages."""
        if self.any_module:
            return "any module outside the standard library"
        if not self._trees:
            return "nothing yet: the packages of functions passed to call(), and forward_modules"
        return ", ".join(sorted(self._trees)) + " (see forward_modules)"


def answer(fullname: str, policy: ForwardPolicy, bytecode: bytes = b"") -> Answer:
    """The answer to a remote asking for module ``fullname`` (``messages.MODULE_*``).

    A remote whose ``bytecode`` key (``BYTECODE_KEY`` there) is ours also gets the
    compiled code, and runs it without compiling.
    """
    if not _is_module_name(fullname):
        return (m.MODULE_MISSING, f"No module named {fullname!r}")
    if not policy.permits(fullname):  # not even whether the controller has it is told
        return (
            m.MODULE_REFUSED,
            f"No module named {fullname!r} on the remote, and the controller does not "
            f"forward it: it forwards {policy.describe()}",
        )
    spec = _main_spec() if fullname == MAIN_ALIAS else find_spec(fullname)
    if spec is None:
        return (
            m.MODULE_MISSING,
            f"No module named {fullname!r} (the controller does not have it either)",
        )
    try:
        found = module_file(fullname, spec)
    except Unsuitable as exc:
        return (m.MODULE_UNSUITABLE, str(exc))
    # The modules of its package that it imports come along: one round trip, not one
    # per module (a package whose __init__ imports its submodules, say).
    along = []
    for name, imported in found.imports:
        if policy.permits(name):
            with contextlib.suppress(Unsuitable):
                along.append((name, *_sendable(module_file(name, imported), bytecode)))
    return (m.MODULE_SOURCE, *_sendable(found, bytecode), tuple(along))


def _is_module_name(name: str) -> bool:
    return all(part.isidentifier() for part in name.split("."))


def _sendable(
    found: ModuleFile, bytecode: bytes
) -> tuple[bool, str, bytes, bytes, tuple[str, ...]]:
    """``(is_package, filename, source, code, data files)``: the compiled code for a
    remote whose bytecode is ours (the source, for tracebacks, only when it asks), else
    the source."""
    if found.code and bytecode and bytecode == BYTECODE_KEY:
        return found.is_package, found.filename, b"", found.code, found.resources
    return found.is_package, found.filename, found.source, b"", found.resources


def data_file(package: str, relative: str, policy: ForwardPolicy) -> bytes:
    """Data file ``relative`` of forwarded package ``package`` (``importlib.resources``
    on the remote): only a file the package's own listing names.

    Raises:
        FileNotFoundError: the package is not forwarded, or has no such data file.
    """
    spec = find_spec(package) if policy.permits(package) else None
    if spec is None:
        raise FileNotFoundError(f"{package} is not forwarded")
    try:
        return read_data_file(module_file(package, spec), relative)
    except Unsuitable:
        raise FileNotFoundError(f"{package} is not forwarded") from None


def _main_spec() -> Any:
    """A spec for the controller's ``__main__`` script, to forward as ``MAIN_ALIAS``."""
    path = getattr(sys.modules.get("__main__"), "__file__", None)
    if not isinstance(path, str) or not path.endswith(".py"):
        return None
    loader = importlib.machinery.SourceFileLoader(MAIN_ALIAS, os.path.abspath(path))
    return importlib.util.spec_from_loader(MAIN_ALIAS, loader)


def function_address(function: Callable[..., Any]) -> tuple[str, tuple[str, ...]]:
    """``(module, attribute path)`` by which the remote reaches ``function``: a
    module-level function, or a staticmethod or classmethod of a module-level class.

    Raises:
        TypeError: a lambda, a closure, a nested function, or anything not reachable by
            its module and qualified name.
    """
    plain = getattr(function, "__func__", function)  # a classmethod, bound to its class
    name = getattr(plain, "__qualname__", None)
    module = getattr(plain, "__module__", None)
    if not inspect.isfunction(plain) or not isinstance(name, str) or not module:
        raise TypeError(f"call() takes a Python function, not {function!r}")
    code = plain.__code__
    if plain.__name__ == "<lambda>" or "<locals>" in name or code.co_freevars:
        raise TypeError(
            f"call() cannot run {name}: lambdas, closures and nested functions have no "
            "name the remote can import; ship their source with compile() instead"
        )
    path = tuple(name.split("."))
    found: Any = sys.modules.get(module)
    for part in path:
        found = getattr(found, part, None)
    if getattr(found, "__func__", found) is not plain:
        raise TypeError(
            f"call() cannot run {name}: {module}.{name} is not that function "
            "(decorated, or replaced); ship its source with compile() instead"
        )
    if module == "__main__":
        return _main_name(name), path
    return module, path


def _main_name(function_name: str) -> str:
    """The name under which the remote imports the controller's ``__main__``: the
    module's own (``python -m pkg.tool``), or ``MAIN_ALIAS`` for a script; never
    ``__main__``, so the remote does not run its ``if __name__ == "__main__"`` block."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name and spec.name != "__main__":
        return str(spec.name)
    if isinstance(getattr(main, "__file__", None), str):
        return MAIN_ALIAS
    raise TypeError(
        f"call() cannot run {function_name}: __main__ is not a file here (an interactive "
        "session, or -c); ship its source with compile() instead"
    )
