"""aiopushy.sync: the blocking facade, with Pushy's own semantics.

>>> from aiopushy import sync as pushy
>>> with pushy.connect("local:") as conn:                  # doctest: +SKIP
...     pid = conn.modules.os.getpid()                     # a plain int, no await
...     env = conn.modules.os.environ                      # a proxy
...     home = env["HOME"]

Everything goes through the async core, run on one private event loop in a daemon
thread shared by every sync session (started on first use). Values follow Pushy's rule:
exact immutable builtins come back by value, everything else (lists, dicts and sets
included) as proxies to the remote objects; ``copy(proxy)`` gives a local copy. Local
functions passed to the remote run in worker threads when it calls them. See the
"Blocking API" chapter of the documentation.
"""

from .._exceptions import AuthenticationError as AuthenticationError
from .._exceptions import ConnectError as ConnectError
from .._exceptions import ConnectionLost as ConnectionLost
from .._exceptions import ConnectionRefused as ConnectionRefused
from .._exceptions import ConnectTimeout as ConnectTimeout
from .._exceptions import HostKeyError as HostKeyError
from .._exceptions import HostNotFoundError as HostNotFoundError
from .._exceptions import ProtocolError as ProtocolError
from .._exceptions import PushyError as PushyError
from .._exceptions import PythonNotFoundError as PythonNotFoundError
from .._exceptions import PythonTooOldError as PythonTooOldError
from .._exceptions import RemoteError as RemoteError
from .._exceptions import RemoteTraceback as RemoteTraceback
from .._exceptions import SudoPasswordRequired as SudoPasswordRequired
from .._fanout import FanoutError as FanoutError
from .._fanout import Result as Result
from .._public import present_as as _present_as
from ..transport import transports as transports
from ._fanout import Group as Group
from ._fanout import SyncJob as SyncJob
from ._fanout import fanout as fanout
from ._proxy import SyncIterator as SyncIterator
from ._proxy import SyncProxy as SyncProxy
from ._proxy import SyncRef as SyncRef
from ._proxy import byref as byref
from ._proxy import copy as copy
from ._proxy import iterate as iterate
from ._session import SyncSession as SyncSession
from ._session import connect as connect

__all__ = [
    # connecting
    "connect",
    "SyncSession",
    "transports",
    # many targets
    "fanout",
    "Group",
    "SyncJob",
    "Result",
    "FanoutError",
    # remote objects
    "SyncProxy",
    "SyncRef",
    "SyncIterator",
    "byref",
    "copy",
    "iterate",
    # errors
    "PushyError",
    "ConnectError",
    "ConnectTimeout",
    "HostNotFoundError",
    "ConnectionRefused",
    "AuthenticationError",
    "HostKeyError",
    "PythonNotFoundError",
    "PythonTooOldError",
    "SudoPasswordRequired",
    "ConnectionLost",
    "ProtocolError",
    "RemoteError",
    "RemoteTraceback",
]

_present_as("aiopushy.sync", globals(), __all__)
