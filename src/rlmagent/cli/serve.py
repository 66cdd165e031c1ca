"""``rlm serve``: an OpenAI-compatible chat endpoint in front of an RLM (docs/SERVE.md)."""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import sys
from collections.abc import Callable
from typing import Any

from rlmagent.cli.common import add_engine_options
from rlmagent.errors import RLMError, UsageError

API_KEY_ENV = "RLM_SERVE_API_KEY"
NOT_FOR_SERVERS = ("json", "quiet", "trace")
"""Flags of ``rlm run`` that mean nothing for a server: hidden, and refused if given."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve", help="serve an OpenAI-compatible chat API (POST /v1/chat/completions)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=8000, help="port (0: any free port)")
    parser.add_argument(
        "--api-key",
        default=None,
        help=f"key clients must send as 'Authorization: Bearer KEY' (default: ${API_KEY_ENV}); "
        "required for a non-loopback --host",
    )
    add_server_options(parser)
    parser.add_argument("--max-concurrent-runs", type=int, default=4, metavar="N")
    parser.add_argument("--max-sessions", type=int, default=16, metavar="N")
    parser.add_argument(
        "--session-ttl",
        type=float,
        default=600.0,
        metavar="S",
        help="idle seconds before a session is closed (default 600)",
    )
    parser.add_argument("--max-body-mb", type=float, default=32.0, metavar="MB")
    parser.add_argument(
        "--question-chars",
        type=int,
        default=4000,
        metavar="N",
        help="a last user message longer than this is split into question and context",
    )
    parser.set_defaults(func=handle)


def add_server_options(parser: argparse.ArgumentParser) -> None:
    """The model, budget and sandbox flags of ``rlm run`` plus --allow-model."""
    add_engine_options(parser)
    for action in parser._actions:
        if action.dest in NOT_FOR_SERVERS:
            action.help = argparse.SUPPRESS
    parser.add_argument(
        "--allow-model",
        action="append",
        default=[],
        metavar="SPEC",
        help="let clients ask for model 'rlm:SPEC' (the root on SPEC); repeatable",
    )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_server_args(args: argparse.Namespace) -> None:
    """Refuse flags that make no sense for a server, and the unsafe sandbox."""
    for name in NOT_FOR_SERVERS:
        if getattr(args, name, None):
            raise UsageError(f"--{name} is not an option of a server (each request is a run)")
    if args.sandbox == "inprocess":
        raise UsageError(
            "--sandbox inprocess runs model code with no isolation; a server takes questions "
            "from clients, so it always uses the subprocess sandbox"
        )


def build_backend(args: argparse.Namespace) -> Any:
    """The :class:`~rlmagent.serve.backend.Backend` of these flags (engines built once)."""
    from rlmagent.cli.common import build_agent
    from rlmagent.engines import get_engine
    from rlmagent.events import EventBus
    from rlmagent.serve.backend import Backend

    template_args = argparse.Namespace(**{**vars(args), "no_log": True, "trace": None})
    template = build_agent(template_args, EventBus())
    isolation = getattr(template.settings.sandbox, "isolation", None)  # probes the tiers now:
    if isinstance(isolation, str):  # where none works, the server fails here, not per request
        print(f"rlm {args.command}: model code runs in the {isolation!r} sandbox", file=sys.stderr)
    options = {"base_url": args.base_url} if args.base_url else {}
    models = {spec: get_engine(spec, **options) for spec in args.allow_model}
    log_dir = None
    if not args.no_log:
        from rlmagent.trace import runs_dir

        log_dir = runs_dir(os.environ.get("RLMAGENT_HOME"))
    return Backend(
        template,
        models=models,
        log_dir=log_dir,
        prompt_profile=args.prompt_profile,
        check_answers=args.check,
    )


def run_server(
    command: str, extra: str, serve: Callable[[argparse.Namespace], int], args: argparse.Namespace
) -> int:
    """Run ``serve(args)`` with the exit codes of ``rlm run``: 2 for a usage error, 1 for
    any other rlmagent error or a missing ``extra`` (named as this copy was installed)."""
    try:
        return serve(args)
    except UsageError as exc:
        print(f"rlm: error: {exc}", file=sys.stderr)
        return 2
    except RLMError as exc:
        print(f"rlm: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except ImportError as exc:
        from rlmagent.extras import install_hint

        print(
            f"rlm {command} needs the '{extra}' extra: {install_hint(extra)} ({exc})",
            file=sys.stderr,
        )
        return 1


def handle(args: argparse.Namespace) -> int:
    return run_server("serve", "serve", _serve, args)


def _serve(args: argparse.Namespace) -> int:
    check_server_args(args)
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    if not is_loopback(args.host) and api_key is None:
        raise UsageError(
            f"--host {args.host} is reachable from other machines: give an API key "
            f"(--api-key or ${API_KEY_ENV}), or serve on 127.0.0.1"
        )
    import uvicorn

    from rlmagent.serve.app import ServeConfig, create_app
    from rlmagent.serve.backend import ServeLimits

    limits = ServeLimits(
        max_concurrent_runs=args.max_concurrent_runs,
        max_sessions=args.max_sessions,
        session_ttl_s=args.session_ttl,
        max_body_bytes=int(args.max_body_mb * 2**20),
        question_chars=args.question_chars,
    )
    app = create_app(ServeConfig(build_backend(args), limits, api_key))
    sock = bind(args.host, args.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"rlm serve: listening on http://{shown}:{port}/v1", file=sys.stderr, flush=True)
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
        lifespan="on",
    )
    uvicorn.Server(config).run(sockets=[sock])
    return 0


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (bound before uvicorn starts, so ``--port 0`` can be reported)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # accepted sockets inherit this (Linux): without it, a response sent as two writes
    # (headers, body) waits ~40 ms for the client's delayed ACK (BENCHMARKS.md)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    return sock
