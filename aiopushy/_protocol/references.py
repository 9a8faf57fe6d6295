"""Turning objects into references and references back into objects, for one peer.

Both ends use ``References``: it pairs an ``ExportTable`` (our objects the peer holds) with
an ``ImportTable`` (proxies we hold for the peer's objects). The controller and the remote
subclass it to add the reference kinds only they accept.
"""

from __future__ import annotations

from .codec import DecodeError
from .messages import REF_RECEIVER, REF_SENDER
from .objects import ExportTable, ImportTable

TYPE_CHECKING = False  # typing costs milliseconds of remote start-up; mypy sees True
if TYPE_CHECKING:
    from typing import Any, Callable


def type_name(obj: Any) -> str:
    """``module.QualName`` of ``obj``'s type, for proxies' ``repr``."""
    kind = type(obj)
    module = getattr(kind, "__module__", None)
    name = getattr(kind, "__qualname__", kind.__name__)
    return name if module in (None, "builtins") else f"{module}.{name}"


class ByReference:
    """Wraps a result that must travel by reference even if it is a plain value."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class References:
    """Maps objects to persistent ids and back, for the codec.

    Args:
        release: called as ``release(oid, count)`` when a proxy for a peer object dies.
        make_proxy: builds the local proxy for peer object ``oid`` with type name ``name``.
        proxy_oid: returns the peer oid if its argument is one of our proxies for this
            peer, otherwise ``None``.
    """

    def __init__(
        self,
        release: Callable[[int, int], None],
        make_proxy: Callable[[int, str], Any],
        proxy_oid: Callable[[Any], int | None],
    ) -> None:
        self.exports = ExportTable()
        self.imports = ImportTable(release)
        self._make_proxy = make_proxy
        self._proxy_oid = proxy_oid
        self.resolvers: dict[Any, Callable[[tuple[Any, ...]], Any]] = {
            REF_SENDER: self._resolve_sender,
            REF_RECEIVER: self._resolve_receiver,
        }

    def reference(self, obj: Any) -> tuple[Any, ...]:
        """The persistent id for ``obj`` (the codec's ``reference`` callback)."""
        oid = self._proxy_oid(obj)
        if oid is not None:
            return (REF_RECEIVER, oid)
        if type(obj) is ByReference:
            obj = obj.value
        return (REF_SENDER, self.exports.export(obj), type_name(obj))

    def resolve(self, payload: tuple[Any, ...]) -> Any:
        """The object for a decoded reference (the codec's ``resolve`` callback)."""
        resolver = self.resolvers.get(payload[0])
        if resolver is None:
            raise DecodeError(f"reference of unknown kind {payload[0]!r:.40}")
        return resolver(payload)

    def _resolve_sender(self, payload: tuple[Any, ...]) -> Any:
        if len(payload) != 3 or type(payload[1]) is not int or type(payload[2]) is not str:
            raise DecodeError("malformed reference to a peer object")
        name = payload[2][:200]
        return self.imports.get(payload[1], lambda oid: self._make_proxy(oid, name))

    def _resolve_receiver(self, payload: tuple[Any, ...]) -> Any:
        if len(payload) != 2:
            raise DecodeError("malformed reference to a local object")
        try:
            return self.exports.get(payload[1])
        except KeyError:
            raise DecodeError(f"reference to unknown object id {payload[1]!r:.40}") from None
