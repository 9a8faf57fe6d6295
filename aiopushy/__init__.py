"""aiopushy: drive Python interpreters on other hosts through awaitable proxies.

Nothing is installed on the far side: a small loader starts the remote interpreter and
the rest of the remote code arrives over its standard input.

>>> import aiopushy as pushy
>>> async with pushy.connect("local:") as conn:          # doctest: +SKIP
...     pid = await conn.modules.os.getpid()
"""

from ._connect import Connecting as Connecting
from ._connect import connect as connect
from ._exceptions import AuthenticationError as AuthenticationError
from ._exceptions import ConnectError as ConnectError
from ._exceptions import ConnectionLost as ConnectionLost
from ._exceptions import ConnectionRefused as ConnectionRefused
from ._exceptions import ConnectTimeout as ConnectTimeout
from ._exceptions import HostKeyError as HostKeyError
from ._exceptions import HostNotFoundError as HostNotFoundError
from ._exceptions import ProtocolError as ProtocolError
from ._exceptions import PushyError as PushyError
from ._exceptions import PythonNotFoundError as PythonNotFoundError
from ._exceptions import PythonTooOldError as PythonTooOldError
from ._exceptions import RemoteError as RemoteError
from ._exceptions import RemoteTraceback as RemoteTraceback
from ._exceptions import SudoPasswordRequired as SudoPasswordRequired
from ._fanout import FanoutError as FanoutError
from ._fanout import Group as Group
from ._fanout import Result as Result
from ._fanout import fanout as fanout
from ._gather import gather as gather
from ._proxy import LazyRef as LazyRef
from ._proxy import Proxy as Proxy
from ._proxy import byref as byref
from ._proxy import iterate as iterate
from ._public import present_as as _present_as
from ._session import Session as Session
from ._stderr import OutputHandler as OutputHandler
from .transport import transports as transports

__version__ = "0.1.0"

__all__ = [
    # connecting
    "connect",
    "Connecting",
    "Session",
    "OutputHandler",
    "transports",
    # many targets
    "fanout",
    "Group",
    "Result",
    "FanoutError",
    # remote objects
    "Proxy",
    "LazyRef",
    "byref",
    "iterate",
    "gather",
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

_present_as("aiopushy", globals(), __all__)
