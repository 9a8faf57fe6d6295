"""Zero-install bootstrap: a tiny loader on the command line, the real code over stdin.

The remote is started as ``python -c LOADER``. The loader has no quote characters, so
it passes through any shell's quoting unharmed. It reads a 12-digit length, a 10-digit
CRC-32 and that many bytes of zlib-compressed *stage two* from stdin, checks them (a
truncated or garbled stream must not run) and executes stage two, which installs an
in-memory importer for the shipped packages (``_protocol`` and ``_remote``, under the
name ``_aiopushy_remote``) and calls ``_remote.main.main()``. Nothing is written to the
remote disk.

Stage two is followed by the shipped modules' code objects, marshalled by the controller's
interpreter, and their sources. The remote uses the code objects only if its bytecode
magic number and implementation match, and compiles the sources otherwise; it
decompresses the sources only then, or when a traceback shows their lines.
"""

from __future__ import annotations

import functools
import importlib.util
import marshal
import sys
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

from ._exceptions import ConnectError, PythonNotFoundError, PythonTooOldError

if TYPE_CHECKING:
    from .transport import BaseTransport

PACKAGE_NAME = "_aiopushy_remote"
SHIPPED_PACKAGES = ("_protocol", "_remote")

LOADER = """\
import os,sys,zlib
if sys.version_info<(3,8):sys.exit(5)
def r(n):
 d=bytearray()
 while len(d)<n:
  c=os.read(0,n-len(d))
  if not c:sys.exit(3)
  d+=c
 return bytes(d)
n=int(r(12));h=int(r(10));d=r(n)
if zlib.crc32(d)!=h:sys.exit(4)
exec(zlib.decompress(d))
"""

# Stage two serves the shipped modules from memory. It is small (the loader compiles it):
# the modules come as two more parts, their code objects (used if the remote's bytecode
# matches ours) and their sources (kept compressed until a module must be compiled or a
# traceback wants its lines: ``get_source`` serves linecache's lazy loading).
_STAGE_TWO = """\
import sys
PACKAGES = {packages!r}
def _part():
    size, crc = int(r(12)), int(r(10))
    blob = r(size)
    return blob, zlib.crc32(blob) == crc
_code, _code_intact = _part()
_sources, _sources_intact = _part()
if not (_code_intact and _sources_intact):
    sys.exit(4)
CODE = {{}}
try:
    if sys.implementation.cache_tag == {cache_tag!r} and (
        sys.modules["_frozen_importlib_external"].MAGIC_NUMBER == {magic!r}
    ):
        import marshal
        CODE = marshal.loads(zlib.decompress(_code))
except Exception:
    pass
del _code
SOURCES = {{}}
def _source(name):
    if not SOURCES:
        text, pos = zlib.decompress(_sources).decode("utf-8"), 0
        while pos < len(text):
            end = text.index("\\n", pos)
            size_end = text.index("\\n", end + 1)
            start = size_end + 1
            stop = start + int(text[end + 1:size_end])
            SOURCES[text[pos:end]] = text[start:stop]
            pos = stop
    return SOURCES[name]
try:
    ModuleSpec = sys.modules["_frozen_importlib"].ModuleSpec
except (KeyError, AttributeError):
    from importlib.machinery import ModuleSpec
class _MemoryImporter:
    def find_spec(self, name, path=None, target=None):
        if name not in PACKAGES:
            return None
        spec = ModuleSpec(name, self, is_package=PACKAGES[name])
        if spec.submodule_search_locations is not None:
            spec.submodule_search_locations.append("<aiopushy>/" + name)
        return spec
    def create_module(self, spec):
        return None
    def get_source(self, name):
        return _source(name)
    def exec_module(self, module):
        name = module.__name__
        filename = "<aiopushy>/" + name.replace(".", "/") + ".py"
        code = CODE.get(name) or compile(_source(name), filename, "exec", optimize=2)
        exec(code, module.__dict__)
sys.meta_path.insert(0, _MemoryImporter())
from {package}._remote.main import main
main({max_frame_size})
"""

#: Shipped modules the remote never imports: the strict decoder (and its bounds) reads what
#: a hostile peer sends, and only the controller has one.
_NOT_SHIPPED = frozenset({f"{PACKAGE_NAME}._protocol.strict", f"{PACKAGE_NAME}._protocol.bounds"})


@functools.lru_cache(maxsize=1)
def _sources() -> dict[str, tuple[bool, str]]:
    """``{module name: (is a package, source)}`` of everything shipped."""
    root = Path(__file__).parent
    sources: dict[str, tuple[bool, str]] = {PACKAGE_NAME: (True, "")}
    for package in SHIPPED_PACKAGES:
        for path in sorted((root / package).glob("*.py")):
            is_package = path.stem == "__init__"
            name = f"{PACKAGE_NAME}.{package}" + ("" if is_package else f".{path.stem}")
            if name not in _NOT_SHIPPED:
                sources[name] = (is_package, path.read_text(encoding="utf-8"))
    return sources


def _filename(name: str) -> str:
    return "<aiopushy>/" + name.replace(".", "/") + ".py"


@functools.lru_cache(maxsize=1)
def _compiled() -> bytes:
    # optimize=2: no docstrings to ship or load (the remote's asserts only narrow types).
    code = {
        name: compile(source, _filename(name), "exec", optimize=2)
        for name, (_, source) in _sources().items()
    }
    return zlib.compress(marshal.dumps(code), 9)


@functools.lru_cache(maxsize=1)
def _packed_sources() -> bytes:
    """Every source as ``name``, newline, length in characters, newline, text."""
    text = "".join(f"{name}\n{len(source)}\n{source}" for name, (_, source) in _sources().items())
    return zlib.compress(text.encode("utf-8"), 9)


def stage_two(max_frame_size: int) -> str:
    """The source of stage two, for a remote accepting frames up to ``max_frame_size``."""
    return _STAGE_TWO.format(
        packages={name: is_package for name, (is_package, _) in _sources().items()},
        package=PACKAGE_NAME,
        max_frame_size=int(max_frame_size),
        magic=importlib.util.MAGIC_NUMBER,
        cache_tag=sys.implementation.cache_tag,
    )


#: How many length- and CRC-prefixed parts ``payload`` holds.
PAYLOAD_PARTS = 3


@functools.lru_cache(maxsize=8)
def payload(max_frame_size: int) -> bytes:
    """What the controller writes to the remote's stdin right after starting it.

    Three length- and CRC-prefixed parts: stage two, the compiled modules, their sources.
    """
    parts = (
        zlib.compress(stage_two(max_frame_size).encode("utf-8"), 9),
        _compiled(),
        _packed_sources(),
    )
    assert len(parts) == PAYLOAD_PARTS
    return b"".join(b"%012d%010d" % (len(part), zlib.crc32(part)) + part for part in parts)


EXIT_INPUT_ENDED = 3
EXIT_CORRUPT = 4
EXIT_TOO_OLD = 5
"""Exit statuses of the loader, for start-up error messages."""

# Exit statuses of a remote that ended before the handshake: the shell's "command not
# found" and the loader's own.
_STARTUP_EXIT_CODES: dict[int | None, tuple[type[ConnectError], str]] = {
    127: (PythonNotFoundError, "was not found"),
    EXIT_TOO_OLD: (PythonTooOldError, "is older than Python 3.8"),
    EXIT_CORRUPT: (ConnectError, "received a corrupted bootstrap"),
    EXIT_INPUT_ENDED: (ConnectError, "did not receive the whole bootstrap"),
}


def startup_error(target: str, transport: BaseTransport, stderr: str) -> ConnectError:
    """The error for a remote that ended before the handshake, as precise as we can: the
    transport's own explanation, else what the exit status says."""
    code = transport.returncode
    explained = transport.explain_startup_failure(code, stderr)
    if explained is not None:
        kind, message = explained
    else:
        kind, reason = _STARTUP_EXIT_CODES.get(code, (ConnectError, "did not start"))
        status = f" (exit status {code})" if code is not None else ""
        message = f"the remote interpreter {reason}{status}"
    return kind(f"{target}: {message}", target=target, stderr=stderr)


def command(python: list[str]) -> list[str]:
    """The argument vector that starts ``python`` with the loader."""
    return [*python, "-c", LOADER]
