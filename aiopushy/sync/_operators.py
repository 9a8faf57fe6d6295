"""The operator methods of sync proxies: each one request, evaluated remotely.

A mixin: the class using it provides ``_pushy_binary``, ``_pushy_reflected`` and
``_pushy_unary`` (expression steps) and ``_pushy_call`` (a call of a remote
``module.function`` with the proxy among its arguments), one request each. In-place
operators are not defined, so ``x += y`` falls back to ``x = x + y``.
"""

from __future__ import annotations

from typing import Any


class Operators:
    """Arithmetic, bitwise, comparison, unary and numeric-conversion operators."""

    __slots__ = ()

    def _pushy_binary(self, name: str, other: Any) -> Any:
        raise NotImplementedError

    def _pushy_reflected(self, name: str, other: Any) -> Any:
        raise NotImplementedError

    def _pushy_unary(self, name: str) -> Any:
        raise NotImplementedError

    def _pushy_call(self, module: str, name: str, *args: Any) -> Any:
        raise NotImplementedError

    def __add__(self, other: Any) -> Any:
        return self._pushy_binary("add", other)

    def __radd__(self, other: Any) -> Any:
        return self._pushy_reflected("add", other)

    def __sub__(self, other: Any) -> Any:
        return self._pushy_binary("sub", other)

    def __rsub__(self, other: Any) -> Any:
        return self._pushy_reflected("sub", other)

    def __mul__(self, other: Any) -> Any:
        return self._pushy_binary("mul", other)

    def __rmul__(self, other: Any) -> Any:
        return self._pushy_reflected("mul", other)

    def __truediv__(self, other: Any) -> Any:
        return self._pushy_binary("truediv", other)

    def __rtruediv__(self, other: Any) -> Any:
        return self._pushy_reflected("truediv", other)

    def __floordiv__(self, other: Any) -> Any:
        return self._pushy_binary("floordiv", other)

    def __rfloordiv__(self, other: Any) -> Any:
        return self._pushy_reflected("floordiv", other)

    def __mod__(self, other: Any) -> Any:
        return self._pushy_binary("mod", other)

    def __rmod__(self, other: Any) -> Any:
        return self._pushy_reflected("mod", other)

    def __pow__(self, other: Any) -> Any:
        return self._pushy_binary("pow", other)

    def __rpow__(self, other: Any) -> Any:
        return self._pushy_reflected("pow", other)

    def __lshift__(self, other: Any) -> Any:
        return self._pushy_binary("lshift", other)

    def __rlshift__(self, other: Any) -> Any:
        return self._pushy_reflected("lshift", other)

    def __rshift__(self, other: Any) -> Any:
        return self._pushy_binary("rshift", other)

    def __rrshift__(self, other: Any) -> Any:
        return self._pushy_reflected("rshift", other)

    def __and__(self, other: Any) -> Any:
        return self._pushy_binary("and_", other)

    def __rand__(self, other: Any) -> Any:
        return self._pushy_reflected("and_", other)

    def __or__(self, other: Any) -> Any:
        return self._pushy_binary("or_", other)

    def __ror__(self, other: Any) -> Any:
        return self._pushy_reflected("or_", other)

    def __xor__(self, other: Any) -> Any:
        return self._pushy_binary("xor", other)

    def __rxor__(self, other: Any) -> Any:
        return self._pushy_reflected("xor", other)

    def __matmul__(self, other: Any) -> Any:
        return self._pushy_binary("matmul", other)

    def __rmatmul__(self, other: Any) -> Any:
        return self._pushy_reflected("matmul", other)

    def __divmod__(self, other: Any) -> Any:
        return self._pushy_call("builtins", "divmod", self, other)

    def __rdivmod__(self, other: Any) -> Any:
        return self._pushy_call("builtins", "divmod", other, self)

    # Comparisons are remote, as in Pushy: ``{"a": 1} == remote_dict`` compares remotely.
    def __eq__(self, other: object) -> Any:
        return self._pushy_call("operator", "eq", self, other)

    def __ne__(self, other: object) -> Any:
        return self._pushy_call("operator", "ne", self, other)

    def __lt__(self, other: Any) -> Any:
        return self._pushy_binary("lt", other)

    def __le__(self, other: Any) -> Any:
        return self._pushy_binary("le", other)

    def __gt__(self, other: Any) -> Any:
        return self._pushy_binary("gt", other)

    def __ge__(self, other: Any) -> Any:
        return self._pushy_binary("ge", other)

    def __hash__(self) -> int:
        return int(self._pushy_call("builtins", "hash", self))

    def __neg__(self) -> Any:
        return self._pushy_unary("neg")

    def __pos__(self) -> Any:
        return self._pushy_unary("pos")

    def __invert__(self) -> Any:
        return self._pushy_unary("invert")

    def __abs__(self) -> Any:
        return self._pushy_unary("abs")

    def __int__(self) -> int:
        value: int = self._pushy_call("builtins", "int", self)
        return value

    def __float__(self) -> float:
        value: float = self._pushy_call("builtins", "float", self)
        return value

    def __complex__(self) -> complex:
        value: complex = self._pushy_call("builtins", "complex", self)
        return value

    def __index__(self) -> int:
        value: int = self._pushy_call("operator", "index", self)
        return value

    def __bytes__(self) -> bytes:
        value: bytes = self._pushy_call("builtins", "bytes", self)
        return value

    def __round__(self, ndigits: int | None = None) -> Any:
        if ndigits is None:
            return self._pushy_call("builtins", "round", self)
        return self._pushy_call("builtins", "round", self, ndigits)

    def __trunc__(self) -> Any:
        return self._pushy_call("math", "trunc", self)

    def __floor__(self) -> Any:
        return self._pushy_call("math", "floor", self)

    def __ceil__(self) -> Any:
        return self._pushy_call("math", "ceil", self)
