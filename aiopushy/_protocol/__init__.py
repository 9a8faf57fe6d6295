"""The aiopushy wire protocol: framing, message codes, codec and object tables.

Nothing in this package performs I/O or imports anything outside the standard library
and itself. It is imported by the controller and shipped verbatim to every remote
interpreter, so both ends share one definition of every byte on the wire. It must parse
and run on Python 3.8.
"""

PROTOCOL_VERSION = 6
"""Bumped whenever a message layout changes; both ends must agree on it."""
