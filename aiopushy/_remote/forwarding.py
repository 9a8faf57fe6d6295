"""Import forwarding: a module the remote lacks is asked of the controller.

One finder sits at the end of ``sys.meta_path``, so whatever the remote has itself is
imported as usual. On a miss it asks the controller of the session whose request the
importing thread serves (``output.current.peer``; a thread of remote code's own asks the
session that started the process, if there is one). The controller decides what it
forwards; it answers with the module's compiled code (where our bytecode is its own) or
its source, with the modules of its package that it imports, or says why not, which
becomes the ``ModuleNotFoundError`` (or ``ImportError``) of the import.
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
    from typing import Any, Callable, Iterator, Sequence

_lock = threading.Lock()
_installed: list[Finder] = []


_BYTECODE_KEY = m.bytecode_key()


class ForwardedLoader:
    """Runs a module the controller sent: its compiled code where the controller's
    bytecode is ours, else its source. The source stays compressed until it is compiled
    or a traceback wants it; with compiled code it is not sent at all, but asked for then.
    """

    def __init__(self, peer: Any, name: str, module: tuple[Any, ...]) -> None:
        self._peer = peer
        self._name = name
        self.package, self.filename, source, code, self._data = module
        self._source = source  # compressed, or b"" (ask the controller)
        self._code = code  # compressed marshal data, or b""

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
        return bool(self.package)

    def get_resource_reader(self, fullname: str) -> DataFiles | None:
        """A package's data files (``importlib.resources.files``), read from the
        controller when opened."""
        return DataFiles(self._peer, fullname, self._data) if self.package else None

    def files(self) -> DataPath:
        """The package's data directory (what Python 3.9's ``importlib.resources``
        asks the loader itself for)."""
        return DataFiles(self._peer, self._name, self._data if self.package else ()).files()

    def get_source(self, fullname: str) -> str | None:
        """The forwarded source: what tracebacks show (``linecache``)."""
        if not self._source:
            try:
                answer = self._peer.request(m.OP_FIND_MODULE, (fullname, b""))
            except ConnectionError:
                return None
            if answer[0] != m.MODULE_SOURCE:
                return None
            self._source = answer[3]
        return zlib.decompress(self._source).decode("utf-8")


def _without_import_lock(call: Callable[..., Any], *args: Any) -> Any:
    """``call(*args)`` with the global import lock released.

    importlib holds that lock around every ``find_spec``. A thread that waits there for
    the controller's answer must not hold it: the thread that reads the answer may need
    it first (an import of its own, or a module lock freed by the garbage collector),
    and the two would wait for each other forever.
    """
    import _imp

    released = 0
    while _imp.lock_held():
        try:
            _imp.release_lock()
        except RuntimeError:  # held, but by another thread: none of ours is left
            break
        released += 1
    try:
        return call(*args)
    finally:
        for _ in range(released):
            _imp.acquire_lock()


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
            request = (fullname, _BYTECODE_KEY)
            answer = _without_import_lock(peer.request, m.OP_FIND_MODULE, request)
        except ConnectionError:
            return None
        status = answer[0]
        if status == m.MODULE_SOURCE:
            with _lock:
                for name, *module in answer[6]:
                    along.setdefault(name, tuple(module))
            return _spec(peer, fullname, answer[1:6])
        if status == m.MODULE_UNSUITABLE:
            raise ImportError(answer[1], name=fullname)
        raise ModuleNotFoundError(answer[1], name=fullname)


def _spec(peer: Any, fullname: str, module: tuple[Any, ...]) -> Any:
    """The spec of a module sent as ``(is_package, filename, source, code, data)``."""
    from importlib.machinery import ModuleSpec

    is_package, filename = module[:2]
    loader = ForwardedLoader(peer, fullname, module)
    spec = ModuleSpec(  # a duck-typed loader: importlib.abc would cost start-up
        fullname,
        loader,  # type: ignore[arg-type]
        origin=filename,
        is_package=is_package,
    )
    spec.has_location = True  # __file__ names where the controller read it
    return spec


class DataFiles:
    """The resource reader of a forwarded package: ``files()`` is its directory."""

    def __init__(self, peer: Any, package: str, names: tuple[str, ...]) -> None:
        self._peer = peer
        self._package = package
        self._names = frozenset(names)

    def files(self) -> DataPath:
        return DataPath(self, "")

    # The older resource reader protocol (read_text, open_binary, ... of
    # importlib.resources), for the files directly in the package.

    def open_resource(self, resource: str) -> Any:
        import io

        return io.BytesIO(self.read(resource))

    def resource_path(self, resource: str) -> str:
        raise FileNotFoundError(f"{resource} of {self._package} is not a file on this host")

    def is_resource(self, name: str) -> bool:
        return name in self._names

    def contents(self) -> list[str]:
        return self.children("")

    def read(self, relative: str) -> bytes:
        """The bytes of data file ``relative``, from the controller."""
        if relative not in self._names:
            raise FileNotFoundError(f"{self._package} has no data file {relative!r}")
        data: bytes = self._peer.request(m.OP_READ_DATA, (self._package, relative))
        return data

    def children(self, relative: str) -> list[str]:
        """The names directly inside directory ``relative``."""
        prefix = relative + "/" if relative else ""
        return sorted(
            {n[len(prefix) :].split("/")[0] for n in self._names if n.startswith(prefix)}
        )

    def is_file(self, relative: str) -> bool:
        return relative in self._names

    def is_dir(self, relative: str) -> bool:
        return not relative or any(n.startswith(relative + "/") for n in self._names)


class DataPath:
    """A file or directory of a forwarded package's data (an ``importlib.resources``
    ``Traversable``)."""

    def __init__(self, files: DataFiles, relative: str) -> None:
        self._files = files
        self._relative = relative

    @property
    def name(self) -> str:
        return self._relative.rpartition("/")[2]

    def iterdir(self) -> Iterator[DataPath]:
        for child in self._files.children(self._relative):
            yield self / child

    def is_dir(self) -> bool:
        return self._files.is_dir(self._relative)

    def is_file(self) -> bool:
        return self._files.is_file(self._relative)

    def joinpath(self, *parts: str) -> DataPath:
        relative = self._relative
        for part in parts:
            for piece in str(part).split("/"):
                if piece in ("", "."):
                    continue
                if piece == "..":
                    relative = relative.rpartition("/")[0]
                else:
                    relative = f"{relative}/{piece}" if relative else piece
        return DataPath(self._files, relative)

    def __truediv__(self, child: str) -> DataPath:
        return self.joinpath(child)

    def read_bytes(self) -> bytes:
        return self._files.read(self._relative)

    def read_text(self, encoding: str | None = None, errors: str | None = None) -> str:
        return self.read_bytes().decode(encoding or "utf-8", errors or "strict")

    def open(self, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        import io

        if mode not in ("r", "rb"):
            raise ValueError(f"forwarded data files are read-only, not opened with {mode!r}")
        stream = io.BytesIO(self.read_bytes())
        return stream if mode == "rb" else io.TextIOWrapper(stream, *args, **kwargs)

    def __repr__(self) -> str:
        return f"<forwarded data {self._files._package}:{self._relative or '.'}>"


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
