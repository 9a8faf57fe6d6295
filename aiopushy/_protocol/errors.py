"""How an exception travels: the tuple both ends send in an ``ERROR`` frame."""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds of remote start-up; mypy sees True
if TYPE_CHECKING:
    from typing import Any


def exception_info(exc: BaseException) -> tuple[Any, ...]:
    """``(module, qualname, args, message, traceback text, the exception itself)``.

    The exception object travels by reference (it is no plain value), so the receiver
    can still reach its attributes.
    """
    import traceback  # with linecache, tokenize and re: load it on the first error

    kind = type(exc)
    text = "".join(traceback.format_exception(kind, exc, exc.__traceback__))
    try:
        message = str(exc)
    except Exception:
        message = f"<unprintable {kind.__name__}>"
    args = exc.args if type(exc.args) is tuple else ()
    if isinstance(exc, OSError) and exc.filename is not None:
        # OSError keeps file names out of args; this form of the constructor restores them.
        args = (exc.errno, exc.strerror, exc.filename, None, exc.filename2)
    return (kind.__module__, kind.__qualname__, args, message, text, exc)


def parse_exception_info(info: Any) -> tuple[str, str, tuple[Any, ...], str, str, Any]:
    """Validate a received ``exception_info`` tuple; ``ValueError`` if it is malformed."""
    if type(info) is not tuple or len(info) != 6:
        raise ValueError("malformed exception information")
    module, name, args, message, text, obj = info
    if not (
        type(module) is str
        and type(name) is str
        and type(args) is tuple
        and type(message) is str
        and type(text) is str
    ):
        raise ValueError("malformed exception information")
    return module, name, args, message, text, obj
