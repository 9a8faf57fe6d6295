"""``site`` on demand, for an interpreter started with ``-S`` (``connect(site="lazy")``).

Importing ``site`` at start-up costs what the ``.pth`` files of site-packages cost, often
more than all the rest of a connect. ``install`` puts a finder on ``sys.meta_path``, after
the standard ones and before import forwarding's, that runs ``site.main()`` the first
time an import finds nothing on the path, and then looks for that module again with what
``site`` added: site-packages and the user site on ``sys.path``, and any finder a ``.pth``
file installed. Forwarding then moves back to the end of ``sys.meta_path``, behind those
finders, where it was with ``site`` run at start-up.
"""

from __future__ import annotations

import sys
import threading

TYPE_CHECKING = False  # typing costs milliseconds of remote start-up; mypy sees True
if TYPE_CHECKING:
    from typing import Any


class SiteOnFirstMiss:
    """The finder: runs ``site`` once, on the first miss, then looks again on every miss
    (a miss that began before ``site`` had finished must see its paths too)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()  # site's own imports come back here: re-entrant
        self._started = False
        self._running_in: int | None = None  # the thread running site, while it does
        self._added: list[Any] = []  # the finders ``site`` installed

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        """The spec ``site``'s paths and finders give ``name``, after running ``site``
        if it has not run yet; ``None`` if they give none.

        Raises:
            ModuleNotFoundError: an import of ``site`` itself (``.pth`` files, optional
                imports) that finds nothing: it fails as it would at start-up, without
                asking the controller (forwarding comes after this finder).
        """
        with self._lock:
            if not self._started:
                self._started = True  # before it runs: its own misses come back here
                self._running_in = threading.get_ident()
                try:
                    self._run_site()
                finally:
                    self._running_in = None
        from importlib.machinery import PathFinder

        for finder in (PathFinder, *self._added):
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None:
                return spec
        if self._running_in == threading.get_ident():
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

    def _run_site(self) -> None:
        before = list(sys.meta_path)
        import site

        site.main()
        self._added = [finder for finder in sys.meta_path if finder not in before]
        from .forwarding import Finder

        for finder in [f for f in sys.meta_path if f is self or isinstance(f, Finder)]:
            sys.meta_path.remove(finder)  # behind what site added, as at start-up
            sys.meta_path.append(finder)


def install() -> SiteOnFirstMiss | None:
    """Put the finder before import forwarding's, if this interpreter skipped ``site``
    (``-S``) and has none yet; the finder, or ``None``."""
    if not sys.flags.no_site or any(isinstance(f, SiteOnFirstMiss) for f in sys.meta_path):
        return None
    finder = SiteOnFirstMiss()
    from .forwarding import Finder

    forwarding = [i for i, f in enumerate(sys.meta_path) if isinstance(f, Finder)]
    sys.meta_path.insert(forwarding[0] if forwarding else len(sys.meta_path), finder)
    return finder
