"""The aiopushy daemon: long-lived interpreters for ``daemon:`` clients.

``await serve(...)`` starts it inside your event loop and returns a ``DaemonServer``;
``run(...)`` blocks, like Pushy's ``pushy.server.run``. It refuses to start without
authentication unless told ``insecure=True``, and then only on a loopback address.
"""

from .._auth import DEFAULT_PORT as DEFAULT_PORT
from .daemon import DaemonServer as DaemonServer
from .daemon import run as run
from .daemon import serve as serve

__all__ = ["DEFAULT_PORT", "DaemonServer", "run", "serve"]
