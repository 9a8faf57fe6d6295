"""The ``aiopushy`` command (also ``python -m aiopushy``).

``aiopushy run TARGET... | --hosts FILE (-e EXPR | -c CODE | -f SCRIPT)`` runs the
code on every target at once (``--limit`` start-ups at a time, ``--timeout`` per target)
and prints a table (``--json``: JSON lines) in the order of the targets; remote output
is prefixed with the target. The exit status is 0 only if every target succeeded, 2 for
a run that cannot start as asked (a one-line message says why).

``aiopushy serve [--host H] [--port P] [--token-file F] [--tls-cert C --tls-key K]``
runs the daemon for ``daemon:`` clients; it prints its address once it listens.
"""

from __future__ import annotations

import argparse
import logging
import math
import ssl
import sys
from collections.abc import Sequence
from typing import NoReturn

import anyio

from . import __version__, _runcmd, server
from ._auth import DEFAULT_PORT
from ._eventloop import backend_options
from .server import pipe as pipe_server


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {number}")
    return number


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, not {text!r}") from None
    if not (seconds > 0 and math.isfinite(seconds)):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return seconds


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="aiopushy", description="Drive Python interpreters on other hosts.")
    parser.add_argument("--version", action="version", version=f"aiopushy {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = commands.add_parser("run", help="run code on one or more targets at once")
    run.add_argument("targets", nargs="*", metavar="TARGET", help="e.g. local: or ssh:host")
    run.add_argument("--hosts", metavar="FILE", help="more targets, one per line")
    run.add_argument(
        "--inventory",
        metavar="FILE",
        help="targets from an Ansible inventory (INI, or YAML for .yml/.yaml)",
    )
    run.add_argument("--group", default="all", help="the inventory group to run on")
    run.add_argument(
        "--ssh-config-hosts",
        metavar="GLOB",
        help="targets: the Host aliases of ~/.ssh/config matching GLOB",
    )
    what = run.add_mutually_exclusive_group(required=True)
    what.add_argument("-e", "--eval", dest="expression", metavar="EXPR", help="an expression")
    what.add_argument("-c", "--code", metavar="CODE", help="statements to execute")
    what.add_argument("-f", "--file", dest="script", metavar="SCRIPT", help="a script to execute")
    run.add_argument("--python", help="remote interpreter (default: the transport's choice)")
    run.add_argument("--limit", type=_positive_int, default=100, help="targets connecting at once")
    run.add_argument("--timeout", type=_positive_seconds, default=30.0, help="seconds per target")
    run.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    run.add_argument("--failed-file", metavar="FILE", help="write the failed targets here")
    run.add_argument(
        "--output",
        choices=("stream", "group"),
        default="stream",
        help="remote output: streamed with a target prefix, or grouped per target at the end",
    )
    run.add_argument("--out-dir", metavar="DIR", help="write each target's output to files")
    serve = commands.add_parser("serve", help="run the daemon for daemon: clients")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (0: any free one)")
    serve.add_argument("--token-file", help="file holding the shared token (else $AIOPUSHY_TOKEN)")
    serve.add_argument("--tls-cert", help="server certificate (PEM) to enable TLS")
    serve.add_argument("--tls-key", help="private key of --tls-cert")
    serve.add_argument("--tls-client-ca", help="require client certificates signed by this CA")
    serve.add_argument("--max-connections", type=_positive_int, default=128)
    serve.add_argument(
        "--insecure", action="store_true", help="no authentication (loopback addresses only)"
    )
    pipe = commands.add_parser("serve-pipe", help="run the pipe server for smb: clients")
    pipe.add_argument("--samba-np-dir", help="Samba's named-pipe socket directory")
    pipe.add_argument("--name", default="aiopushy", help="the pipe's name (default aiopushy)")
    pipe.add_argument("--tcp", metavar="HOST:PORT", help="also accept forwarded opens on TCP")
    pipe.add_argument("--python", help="interpreter started for each session")
    pipe.add_argument(
        "--token-file",
        help="file holding the token every open must prove (else $AIOPUSHY_TOKEN); "
        "required with --tcp",
    )
    pipe.add_argument(
        "--allow-user",
        action="append",
        default=[],
        metavar="USER",
        help="Samba mode: a unix user whose SMB sessions may open the pipe (repeatable; "
        "default: this server's own user)",
    )
    pipe.add_argument(
        "--allow-group",
        action="append",
        default=[],
        metavar="GROUP",
        help="Samba mode: a unix group whose members may open the pipe (repeatable)",
    )
    return parser


def _serve_pipe(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    tcp = None
    if args.tcp:
        host, _, port = args.tcp.rpartition(":")
        tcp = (host or "127.0.0.1", int(port))

    async def main() -> None:
        server = await pipe_server.serve_pipe(
            samba_np_dir=args.samba_np_dir,
            name=args.name,
            tcp=tcp,
            python=[args.python] if args.python else None,
            token_file=args.token_file,
            allow_users=args.allow_user,
            allow_groups=args.allow_group,
        )
        print(f"aiopushy pipe server listening on {', '.join(server.addresses)}", flush=True)
        try:
            await anyio.sleep_forever()
        finally:
            server.close()

    try:
        anyio.run(main, backend_options=backend_options())
    except KeyboardInterrupt:
        pass
    except (ValueError, OSError) as exc:
        print(f"aiopushy serve-pipe: {exc}", file=sys.stderr)
        return 2
    return 0


def _tls_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not args.tls_cert:
        if args.tls_key or args.tls_client_ca:
            raise SystemExit("aiopushy serve: --tls-key and --tls-client-ca need --tls-cert")
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(args.tls_cert, args.tls_key)
    if args.tls_client_ca:
        context.load_verify_locations(args.tls_client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        server.run(
            args.host,
            args.port,
            token_file=args.token_file,
            insecure=args.insecure,
            ssl=_tls_context(args),
            max_connections=args.max_connections,
        )
    except (ValueError, OSError) as exc:
        print(f"aiopushy serve: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "serve-pipe":
        return _serve_pipe(args)
    try:
        options = backend_options()
    except ValueError as exc:
        print(f"aiopushy: {exc}", file=sys.stderr)
        return 2
    status: int = anyio.run(_runcmd.run, args, backend_options=options)
    return status


if __name__ == "__main__":
    sys.exit(main())
