"""Zero-install bootstrap: a tiny loader on the command line, the real code over stdin.

The remote is started as ``python -c LOADER``. The loader has no quote characters, so
it passes through any shell's quoting unharmed. It reads a 12-digit length, a 10-digit
CRC-32 and that many bytes of zlib-compressed *stage two* from stdin, checks them (a
truncated or garbled stream must not run) and executes stage two, which installs an
in-memory importer for the shipped packages (``_protocol`` and ``_remote``, under the
name ``_aiopushy_remote``) and calls ``_remote.main.main()``. Nothing is written to the
remote disk.

Stage two carries the sources and, to spare the remote the compile, their code objects
marshalled by the controller's interpreter; the remote uses those only if its bytecode
magic number and implementation match, and compiles the sources otherwise.
"""

from __future__ import annotations

import functools
import importlib.util
import marshal
import sys
import zlib
from pathlib import Path

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

# Stage two serves the shipped modules from memory. ``get_source`` lets tracebacks show
# their lines through linecache's lazy loading, without importing linecache up front.
_STAGE_TWO = """\
import sys
from importlib.machinery import ModuleSpec
SOURCES = {sources!r}
CODE = {{}}
_size, _crc = int(r(12)), int(r(10))
_blob = r(_size)
try:
    import marshal
    if sys.modules["_frozen_importlib_external"].MAGIC_NUMBER == {magic!r} and (
        sys.implementation.cache_tag == {cache_tag!r} and zlib.crc32(_blob) == _crc
    ):
        CODE = marshal.loads(zlib.decompress(_blob))
except Exception:
    pass
class _MemoryImporter:
    def find_spec(self, name, path=None, target=None):
        if name not in SOURCES:
            return None
        spec = ModuleSpec(name, self, is_package=SOURCES[name][0])
        if spec.submodule_search_locations is not None:
            spec.submodule_search_locations.append("<aiopushy>/" + name)
        return spec
    def create_module(self, spec):
        return None
    def get_source(self, name):
        return SOURCES[name][1]
    def exec_module(self, module):
        name = module.__name__
        filename = "<aiopushy>/" + name.replace(".", "/") + ".py"
        code = CODE.get(name) or compile(SOURCES[name][1], filename, "exec")
        exec(code, module.__dict__)
sys.meta_path.insert(0, _MemoryImporter())
from {package}._remote.main import main
main({max_frame_size})
"""


@functools.lru_cache(maxsize=1)
def _sources() -> dict[str, tuple[bool, str]]:
    root = Path(__file__).parent
    sources: dict[str, tuple[bool, str]] = {PACKAGE_NAME: (True, "")}
    for package in SHIPPED_PACKAGES:
        for path in sorted((root / package).glob("*.py")):
            is_package = path.stem == "__init__"
            name = f"{PACKAGE_NAME}.{package}" + ("" if is_package else f".{path.stem}")
            sources[name] = (is_package, path.read_text(encoding="utf-8"))
    return sources


def _filename(name: str) -> str:
    return "<aiopushy>/" + name.replace(".", "/") + ".py"


@functools.lru_cache(maxsize=1)
def _compiled() -> bytes:
    code = {name: compile(src, _filename(name), "exec") for name, (_, src) in _sources().items()}
    return zlib.compress(marshal.dumps(code), 9)


def stage_two(max_frame_size: int) -> str:
    """The source of stage two, for a remote accepting frames up to ``max_frame_size``."""
    return _STAGE_TWO.format(
        sources=_sources(),
        package=PACKAGE_NAME,
        max_frame_size=int(max_frame_size),
        magic=importlib.util.MAGIC_NUMBER,
        cache_tag=sys.implementation.cache_tag,
    )


@functools.lru_cache(maxsize=8)
def payload(max_frame_size: int) -> bytes:
    """What the controller writes to the remote's stdin right after starting it.

    Two length- and CRC-prefixed parts: stage two, then its compiled form.
    """
    parts = (zlib.compress(stage_two(max_frame_size).encode("utf-8"), 9), _compiled())
    return b"".join(b"%012d%010d" % (len(part), zlib.crc32(part)) + part for part in parts)


EXIT_INPUT_ENDED = 3
EXIT_CORRUPT = 4
EXIT_TOO_OLD = 5
"""Exit statuses of the loader, for start-up error messages."""


def command(python: list[str]) -> list[str]:
    """The argument vector that starts ``python`` with the loader."""
    return [*python, "-c", LOADER]
