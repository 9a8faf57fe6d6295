"""An on-path attacker between a client and a daemon, as a real process.

``python relay_attacker.py UPSTREAM_PORT MODE [MARKER] [--tls CERT KEY CA]`` listens on a
free loopback port (printed as ``listening PORT``), relays each connection to the daemon
on ``UPSTREAM_PORT`` byte for byte through the token handshake, and then, by ``MODE``:

* ``pass``: keeps relaying (a control);
* ``inject``: also sends the daemon a request of its own that would create ``MARKER``;
* ``tamper``: flips one bit of the next bytes the client sends;
* ``impersonate``: stops relaying the daemon and answers the client itself, as a daemon
  on a host called ``relay-host`` with pid 4242.

With ``--tls`` it ends TLS on both sides with ``CERT``/``KEY`` (the daemon's own, say) and
checks the daemon against ``CA``: it sees every byte in the clear.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiopushy._auth import ANSWER_SIZE, GREETING_HMAC, NONCE_SIZE, PROOF_SIZE
from aiopushy._protocol import PROTOCOL_VERSION, codec
from aiopushy._protocol import messages as m
from aiopushy._protocol.framing import SYNC, encode_frame

FROM_SERVER = len(GREETING_HMAC) + NONCE_SIZE + 1 + PROOF_SIZE  # greeting, nonce, verdict
FROM_CLIENT = ANSWER_SIZE


async def relay_exactly(
    source: asyncio.StreamReader, target: asyncio.StreamWriter, size: int
) -> None:
    target.write(await source.readexactly(size))
    await target.drain()


async def pump(source: asyncio.StreamReader, target: asyncio.StreamWriter) -> None:
    while data := await source.read(65536):
        target.write(data)
        await target.drain()


def injected(marker: str) -> bytes:
    code = f"open({marker!r}, 'w').close()"
    body = codec.encode((m.OP_EXECUTE, (code, None, None, (False, False))), lambda obj: ())
    return encode_frame(m.REQUEST, 999_999, body)


def forged_hello() -> bytes:
    hello = {"protocol": PROTOCOL_VERSION, "pid": 4242, "hostname": "relay-host"}
    return SYNC + encode_frame(m.HELLO, 0, codec.encode_values(hello))


async def main() -> None:
    upstream_port, mode = int(sys.argv[1]), sys.argv[2]
    marker = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] != "--tls" else ""
    server_tls = client_tls = None
    if "--tls" in sys.argv:
        cert, key, ca = sys.argv[sys.argv.index("--tls") + 1 :][:3]
        server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_tls.load_cert_chain(cert, key)
        client_tls = ssl.create_default_context(cafile=ca)
        client_tls.check_hostname = False

    async def handle(client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter) -> None:
        server_in, server_out = await asyncio.open_connection(
            "127.0.0.1", upstream_port, ssl=client_tls
        )
        try:
            # The handshake, byte for byte: greeting and nonce, the answer, the verdict.
            await relay_exactly(server_in, client_out, len(GREETING_HMAC) + NONCE_SIZE)
            await relay_exactly(client_in, server_out, FROM_CLIENT)
            await relay_exactly(server_in, client_out, 1 + PROOF_SIZE)
            if mode == "impersonate":
                client_out.write(forged_hello())
                await client_out.drain()
                await pump(client_in, server_out)
                return
            if mode == "tamper":
                data = bytearray(await client_in.read(65536))
                data[len(data) // 2] ^= 1
                server_out.write(bytes(data))
            pumps = [
                asyncio.ensure_future(pump(client_in, server_out)),
                asyncio.ensure_future(pump(server_in, client_out)),
            ]
            if mode == "inject":
                await asyncio.sleep(0.5)  # after the client's own start-up
                server_out.write(injected(marker))
            # Like any proxy: when one side ends, end the other.
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            for running in pumps:
                running.cancel()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            client_out.close()
            server_out.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_tls)
    print(f"listening {server.sockets[0].getsockname()[1]}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
