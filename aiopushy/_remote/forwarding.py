"""Import forwarding: a module the remote lacks is asked of the controller.

One finder sits at the end of ``sys.meta_path``, so whatever the remote has itself is
imported as usual. On a miss it asks the controller of the session whose request the
importing thread serves (``output.current.peer``; a thread of remote code's own asks the
session that started the process, if there is one). The controller decides what it
forwards; it answers with the module's source, which is compiled here, or says why not,
which becomes the ``ModuleNotFoundError`` (or ``ImportError``) of the import.
"""

from __future__ import annotations

import sys
import threading
import weakref
import zlib

from .._protocol import messages as m
from . import output

TYPE_CHECKING = False  # typing costs milliseconds of remote start-up; mypy sees True
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any, Sequence

_lock = threading.Lock()
_installed: list[Finder] = []


def bytecode_key() -> bytes:
    """Which compiled code this interpreter runs (the controller's ``BYTECODE_KEY``)."""
    tag = sys.implementation.cache_tag
    external = sys.modules.get("_frozen_importlib_external")
    magic = getattr(external, "MAGIC_NUMBER", None)
    if not tag or not isinstance(magic, bytes):
        return b"-"
    return tag.encode() + b":" + magic


_BYTECODE_KEY = bytecode_key()


class ForwardedLoader:
    """Runs a module the controller sent: its compiled code where the controller's
    bytecode is ours, else its source. The source stays compressed until it is compiled
    or a traceback wants it; with compiled code it is not sent at all, but asked for then.
    """

    def __init__(
        self, peer: Any, filename: str, source: bytes, code: bytes, is_package: bool
    ) -> None:
        self._peer = peer
        self.filename = filename
        self._source = source  # compressed, or b"" (ask the controller)
        self._code = code  # compressed marshal data, or b""
        self.package = is_package

    def create_module(self, spec: Any) -> None:
        return None  # the default module object

    def exec_module(self, module: ModuleType) -> None:
        if self._code:
            import marshal

            code = marshal.loads(zlib.decompress(self._code))
        else:
            source = self.get_source(module.__name__) or ""
            code = compile(source, self.filename, "exec", dont_inherit=True)
        exec(code, module.__dict__)

    def is_package(self, fullname: str) -> bool:
        return self.package

    def get_source(self, fullname: str) -> str | None:
        """The forwarded source: what tracebacks show (``linecache``)."""
        if not self._source:
            try:
                answer = self._peer.request(m.OP_FIND_MODULE, (fullname, b"-"))
            except ConnectionError:
                return None
            if answer[0] != m.MODULE_SOURCE:
                return None
            self._source = answer[3]
        return zlib.decompress(self._source).decode("utf-8")


class Finder:
    """The meta path finder of forwarded modules (see the module)."""

    def __init__(self) -> None:
        self.fallback: Any = None  # the peer of a process that serves one session
        # Modules that came along with another one, by peer (a daemon serves many).
        self._along: weakref.WeakKeyDictionary[Any, dict[str, tuple[Any, ...]]] = (
            weakref.WeakKeyDictionary()
        )

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: Any = None
    ) -> Any:
        peer = getattr(output.current, "peer", None) or self.fallback
        if peer is None or peer.stopped.is_set():
            return None
        with _lock:
            along = self._along.setdefault(peer, {})
            sent = along.pop(fullname, None)
        if sent is not None:
            return _spec(peer, fullname, sent)
        try:
            answer = peer.request(m.OP_FIND_MODULE, (fullname, _BYTECODE_KEY))
        except ConnectionError:
            return None
        status = answer[0]
        if status == m.MODULE_SOURCE:
            with _lock:
                for name, *module in answer[5]:
                    along.setdefault(name, tuple(module))
            return _spec(peer, fullname, answer[1:5])
        if status == m.MODULE_UNSUITABLE:
            raise ImportError(answer[1], name=fullname)
        raise ModuleNotFoundError(answer[1], name=fullname)


def _spec(peer: Any, fullname: str, module: tuple[Any, ...]) -> Any:
    """The spec of a module sent as ``(is_package, filename, source, code)``."""
    from importlib.machinery import ModuleSpec

    is_package, filename, source, code = module
    loader = ForwardedLoader(peer, filename, source, code, is_package)
    spec = ModuleSpec(  # a duck-typed loader: importlib.abc would cost start-up
        fullname,
        loader,  # type: ignore[arg-type]
        origin=filename,
        is_package=is_package,
    )
    spec.has_location = True  # __file__ names where the controller read it
    return spec


def install(fallback: Any = None) -> Finder:
    """Put the finder at the end of ``sys.meta_path`` (once per process)."""
    with _lock:
        if not _installed:
            _installed.append(Finder())
            sys.meta_path.append(_installed[0])
        finder = _installed[0]
        if fallback is not None:
            finder.fallback = fallback
        return finder
