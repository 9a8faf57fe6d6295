"""Message kinds (the frame's ``kind`` byte), request operations and reference kinds.

Every code is defined here once; both ends dispatch on these numbers through tables.

Conversation rules:

* The remote speaks first after the bootstrap: ``HELLO`` with its facts, then waits for
  ``SETUP`` (settings the controller wants applied before any user code runs), answered by
  ``RESULT`` or ``ERROR`` under the same request id.
* Either side may then send ``REQUEST`` frames with request ids it allocates itself; the
  other side answers each with exactly one ``RESULT`` or ``ERROR`` carrying that id. A
  request id names a request of the side that did *not* send the answer.
* ``RELEASE`` tells the owner of exported objects that the peer dropped its proxies.
* ``PING`` is answered by ``PONG``; any frame counts as a sign of life.
* ``OUTPUT`` carries raw bytes the remote wrote to its standard output or error.
"""

# Frame kinds.
HELLO = 1
SETUP = 2
REQUEST = 3
RESULT = 4
ERROR = 5
RELEASE = 6
PING = 7
PONG = 8
OUTPUT = 9
REQUEST_PUSHY = 10  # a REQUEST under Pushy's rule of what travels by value (see below)

FRAME_KIND_NAMES = {
    HELLO: "HELLO",
    SETUP: "SETUP",
    REQUEST: "REQUEST",
    RESULT: "RESULT",
    ERROR: "ERROR",
    RELEASE: "RELEASE",
    PING: "PING",
    PONG: "PONG",
    OUTPUT: "OUTPUT",
    REQUEST_PUSHY: "REQUEST_PUSHY",
}

# Request operations: a REQUEST body is ``(op, args)``.
#
# The frame kind says which values the answer (and every callback made while the request
# runs) carries by value; it must be known before the body is decoded, since decoding
# evaluates the request's expressions. ``REQUEST``: every value type of
# ``codec.VALUE_TYPES``, containers included (the async API). ``REQUEST_PUSHY``: only the
# immutable ones, ``codec.IMMUTABLE_TYPES`` (tuples and frozensets with their items under
# the same rule); lists, dicts, sets and bytearrays come as references, as in Pushy (the
# sync API). Only the controller sends ``REQUEST_PUSHY``.
OP_EVALUATE = 1  # (expression, by_reference) -> value
OP_EVAL = 2  # (source_or_code, globals, locals, sync) -> (value, globals, locals)
#            a namespace travels as a dict, or under REQUEST_PUSHY as a tuple of its items
OP_EXECUTE = 3  # same as OP_EVAL, for statements
OP_COMPILE = 4  # (source, filename, mode) -> code object
OP_DEFINE = 5  # (source, name) -> the function defined by source
OP_ITER_START = 6  # (expression, batch) -> (iterator or None, tuple of items)
OP_ITER_NEXT = 7  # (iterator, batch) -> (iterator or None, tuple of items)
OP_ENTER = 8  # (expression) -> (context manager, value of __enter__)
OP_CALL = 9  # (callable, args, kwargs as a tuple of items) -> value  (remote -> controller)
OP_READ_FILE = 10  # (path, offset, size) -> bytes
OP_WRITE_FILE = 11  # (path, offset, data, truncate) -> None
OP_STATISTICS = 12  # () -> {name: count}
OP_SPAWN = 13  # (argv, env, notify) -> relay  (see _remote/relay.py)
OP_FIND_MODULE = 14  # (name, bytecode key) -> (status, ...)  (remote -> controller)
OP_READ_DATA = 15  # (package, relative path) -> bytes  (remote -> controller)
OP_RELAY_KEEP = 16  # (key, data) -> None: keep data for OP_RELAY_WRITE (_remote/relay.py)
OP_RELAY_WRITE = 17  # (relay, parts) -> None: literal bytes and keys of kept data, alternating
OP_EVALUATE_PLAIN = 18  # (ops, by_reference) -> value: an expression on the modules made
#     only of names and calls without arguments; no reference in the body, so equal bodies
#     are equal requests (the remote keeps the decoded ones)

# Answers to OP_FIND_MODULE, by their first item (the status).
MODULE_SOURCE = "source"  # (status, is_package, filename, zlib'd UTF-8 source, zlib'd
#     marshalled code or b"" when the bytecode keys differ, a package's data files,
#     modules sent along: a tuple of (name, is_package, filename, source, code, data))
MODULE_MISSING = "missing"  # (status, message): neither side has it
MODULE_REFUSED = "refused"  # (status, message): the controller does not forward it
MODULE_UNSUITABLE = "unsuitable"  # (status, message): an extension module, say


def bytecode_key() -> bytes:
    """Which compiled code this interpreter runs: its cache tag and bytecode magic number
    (``b""`` if it does not say). A module's compiled code is sent only to a remote whose
    key is the controller's; an empty key (a request for the source) matches nothing."""
    import sys

    tag = sys.implementation.cache_tag
    magic = getattr(sys.modules.get("_frozen_importlib_external"), "MAGIC_NUMBER", None)
    if not tag or not isinstance(magic, bytes):
        return b""
    return tag.encode() + b":" + magic


# Output streams in OUTPUT frames (their request id), and what a relay's ``notify``
# reports: ``notify(STDOUT | STDERR, data)``, ``b""`` at the end; ``notify(EXITED, status)``.
STDOUT = 1
STDERR = 2
EXITED = 3

# Reference kinds: what a ``Ref`` placeholder names.
REF_SENDER = 1  # (REF_SENDER, oid, type name): an object that lives with the sender
REF_RECEIVER = 2  # (REF_RECEIVER, oid): an object the receiver exported earlier
REF_EXPRESSION = 3  # (REF_EXPRESSION, root or None for the modules, ops): controller -> remote

# Expression operations: each item of an expression's ``ops`` tuple is an attribute name
# (a ``str``: the most frequent step costs no tuple) or one of these tuples.
EX_CALL = 2  # (EX_CALL, args, kwargs)
EX_GETITEM = 3  # (EX_GETITEM, key)
EX_BINARY = 4  # (EX_BINARY, operator name, other)
EX_RBINARY = 5  # (EX_RBINARY, operator name, other): ``other <op> value``
EX_UNARY = 6  # (EX_UNARY, operator name)

BINARY_OPERATORS = frozenset(
    {
        "add",
        "sub",
        "mul",
        "truediv",
        "floordiv",
        "mod",
        "pow",
        "lshift",
        "rshift",
        "and_",
        "or_",
        "xor",
        "matmul",
        "lt",
        "le",
        "gt",
        "ge",
    }
)
UNARY_OPERATORS = frozenset({"neg", "pos", "invert", "abs"})
