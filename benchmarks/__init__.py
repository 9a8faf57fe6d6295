"""Benchmarks for aiopushy: ``python -m benchmarks [--quick] [--json PATH] [--python PATH]``.

One run measures aiopushy next to raw asyncio baselines over the same kind of subprocess
pipes, alternating the systems round by round, and prints a Markdown table:

* round trip: ``await conn.modules.os.getpid()`` against a raw asyncio ping-pong with a
  stdlib echo loop (target: at most 1.3 times the ping-pong);
* start-up: ``await aiopushy.connect("local:")`` against ``python -S -c pass``
  (target: at most twice as long);
* with ``--ssh`` (``benchmarks/ssh.py``, needs ``sshd``): connect over ssh on loopback
  (asyncssh cold and pooled, native) against ``ssh ... true`` and ``python -S -c pass``,
  and the round trip over ssh against a raw echo over the same kind of channel.

Speed is only ever measured here, never asserted in tests.

The modules: ``core`` (the scenarios above, and what every family shares), ``cli`` (this
command line), the families ``ssh``, ``peers`` (a package; also ``--peers``), ``fanout``
(with ``fanout_worker``), ``syncfacade`` and ``forwarding``, each also runnable as
``python -m benchmarks.NAME``, and ``systems``: the peers (execnet, RPyC, Mitogen), each
in a module of its own behind one interface, and the raw baselines. The families depend
on ``core``, never the reverse. This file imports nothing (Mitogen ships it to its
children along with ``benchmarks.systems.mitogen_remote``).
"""
