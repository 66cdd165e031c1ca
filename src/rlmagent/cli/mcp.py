"""``rlm mcp``: an MCP server (stdio, or streamable HTTP on loopback) with RLM tools."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rlmagent.cli.serve import (
    add_server_options,
    bind,
    build_backend,
    check_server_args,
    run_server,
)
from rlmagent.errors import UsageError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "mcp", help="serve RLM tools to MCP clients (stdio; --http for streamable HTTP)"
    )
    parser.add_argument(
        "--allow-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="files may be read only under DIR (repeatable; default: the current directory)",
    )
    parser.add_argument(
        "--max-file-mb", type=float, default=64.0, metavar="MB", help="largest file read"
    )
    parser.add_argument(
        "--http", action="store_true", help="streamable HTTP on 127.0.0.1 instead of stdio"
    )
    parser.add_argument(
        "--port", type=int, default=8765, help="port of --http (default 8765; 0: any)"
    )
    parser.add_argument("--max-sessions", type=int, default=8, metavar="N")
    parser.add_argument("--session-ttl", type=float, default=1800.0, metavar="S")
    parser.add_argument("--max-concurrent-runs", type=int, default=4, metavar="N")
    add_server_options(parser)
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    return run_server("mcp", "mcp", _serve, args)


def _serve(args: argparse.Namespace) -> int:
    check_server_args(args)
    import anyio

    from rlmagent.serve.mcp_server import RLMTools, create_server
    from rlmagent.serve.paths import AllowedDirs, PathRefused

    try:
        allowed = AllowedDirs.of(args.allow_dir or ["."], int(args.max_file_mb * 2**20))
    except PathRefused as exc:
        raise UsageError(str(exc)) from None
    tools = RLMTools(
        build_backend(args),
        allowed,
        max_sessions=args.max_sessions,
        ttl_s=args.session_ttl,
        max_runs=args.max_concurrent_runs,
    )
    server = create_server(tools)

    async def main() -> None:
        try:
            if args.http:
                await _serve_http(server, args.port)
            else:
                await server.run_stdio_async()
        finally:
            await tools.sessions.close_all()

    anyio.run(main)
    return 0


async def _serve_http(server: Any, port: int) -> None:
    """Streamable HTTP at ``/mcp`` on 127.0.0.1 only (the SDK's DNS-rebinding checks on)."""
    import uvicorn

    sock = bind("127.0.0.1", port)
    shown = sock.getsockname()[1]
    print(f"rlm mcp: streamable HTTP on http://127.0.0.1:{shown}/mcp", file=sys.stderr, flush=True)
    app = server.streamable_http_app(host="127.0.0.1")
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    await uvicorn.Server(config).serve(sockets=[sock])
