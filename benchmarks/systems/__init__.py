"""The peers aiopushy is measured against, each driven through its own (blocking) API
behind one small interface, ``base.Peer``:

* ``base``: the ``Peer`` interface and what the peers share (the slow-link chain, reaping
  a child, counting the bytes of an argument vector);
* ``execnet``, ``rpyc``, ``mitogen``: one peer each, with what its bootstrap sends;
* ``mitogen_remote``: the functions Mitogen's children call (standard library only);
* ``registry``: the peers by name: their versions, starting one, timing its connect;
* ``raw``: the far ends of the raw baselines (asyncio bulk pipes, and the blocking
  ``os.read``/``os.write`` children).

Everything the peers do blocks; ``benchmarks.peers`` runs it in a worker thread, timing
inside that thread. Mitogen ships this package to its children (for ``mitogen_remote``):
this file imports nothing.
"""
