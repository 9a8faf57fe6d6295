"""Zero-install bootstrap: a tiny loader on the command line, the real code over stdin.

The remote is started as ``python -c LOADER``. The loader has no quote characters, so
it passes through any shell's quoting unharmed. It reads a 12-digit length, a SHA-256
digest and that many bytes of zlib-compressed *stage two* from stdin, checks the digest
and executes stage two, which installs an in-memory importer for the shipped packages
(``_protocol`` and ``_remote``, under the name ``_aiopushy_remote``) and calls
``_remote.main.main()``. Nothing is written to the remote disk.
"""

from __future__ import annotations

import functools
import hashlib
import zlib
from pathlib import Path

PACKAGE_NAME = "_aiopushy_remote"
SHIPPED_PACKAGES = ("_protocol", "_remote")

LOADER = """\
import os,sys,zlib,hashlib
def r(n):
 d=bytearray()
 while len(d)<n:
  c=os.read(0,n-len(d))
  if not c:sys.exit(3)
  d+=c
 return bytes(d)
n=int(r(12));h=r(32);d=r(n)
if hashlib.sha256(d).digest()!=h:sys.exit(4)
exec(zlib.decompress(d))
"""

_STAGE_TWO = """\
import sys, linecache
from importlib.machinery import ModuleSpec
SOURCES = {sources!r}
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
    def exec_module(self, module):
        is_package, source = SOURCES[module.__name__]
        filename = "<aiopushy>/" + module.__name__.replace(".", "/") + ".py"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        exec(compile(source, filename, "exec"), module.__dict__)
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


def stage_two(max_frame_size: int) -> str:
    """The source of stage two, for a remote accepting frames up to ``max_frame_size``."""
    return _STAGE_TWO.format(
        sources=_sources(), package=PACKAGE_NAME, max_frame_size=int(max_frame_size)
    )


@functools.lru_cache(maxsize=8)
def payload(max_frame_size: int) -> bytes:
    """What the controller writes to the remote's stdin right after starting it."""
    blob = zlib.compress(stage_two(max_frame_size).encode("utf-8"), 9)
    return b"%012d" % len(blob) + hashlib.sha256(blob).digest() + blob


def command(python: list[str]) -> list[str]:
    """The argument vector that starts ``python`` with the loader."""
    return [*python, "-c", LOADER]
