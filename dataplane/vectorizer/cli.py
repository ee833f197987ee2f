"""The ``vectorizer`` command: one image, several roles chosen by the first argument."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

from vectorizer import __version__
from vectorizer.errors import ValidationError, VectorizerError
from vectorizer.hugepages import reexec_with_huge_pages
from vectorizer.settings import ENV_PREFIX, Settings, load, setting_fields, unknown_environment


def _serve_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve",
        help="run the data plane (HTTP API on --host:--port)",
        description="Run the data-plane server. Every setting can also come from the "
        f"environment ({ENV_PREFIX}<NAME>) or a YAML file (--config); "
        "flags win over the environment, which wins over the file.",
    )
    p.add_argument(
        "--config", type=Path, default=None, help=f"YAML settings file ({ENV_PREFIX}CONFIG)"
    )
    for f in setting_fields():
        flag = "--" + f.name.replace("_", "-")
        env = ENV_PREFIX + f.name.upper()
        p.add_argument(
            flag,
            dest=f.name,
            default=None,
            metavar=f.name.upper(),
            help=f"{f.metadata['help']} [env {env}; default {f.default}]",
        )


def _restore_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "restore",
        help="make a data directory hold a full snapshot file (then serve from it)",
        description="Check a full snapshot file (made with POST /qdrant/snapshots and "
        "downloaded from GET /qdrant/snapshots/{name}) and put it in the data directory "
        "as its only snapshot; `vectorizer serve` then starts from it, at its sequence. "
        "Run it while no server uses the directory.",
    )
    p.add_argument("file", type=Path, help="the full snapshot file")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="the data directory to restore into (empty, unless --replace); default: the "
        f"one `vectorizer serve` would use ({ENV_PREFIX}DATA_DIR, {ENV_PREFIX}CONFIG's, "
        f"else {Settings.data_dir})",
    )
    p.add_argument(
        "--replace",
        action="store_true",
        help="wipe the data the directory holds (once the file has been checked)",
    )


def _operator_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    # Listed here for `vectorizer --help`; its arguments are the operator's own
    # (main() hands them over before parsing: `vectorizer operator --help` shows them).
    sub.add_parser(
        "operator",
        help="run the Kubernetes operator (reconciles VectorizerCluster resources)",
        add_help=False,
    )


def main(argv: Sequence[str] | None = None) -> int:
    as_process = argv is None  # the process's own command line: it may re-execute itself
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["operator"]:
        from vectorizer_operator.main import run

        return run(argv[1:])
    parser = argparse.ArgumentParser(
        prog="vectorizer",
        description="Vectorizer: a durable vector database with a Qdrant-compatible API.",
    )
    parser.add_argument("--version", action="version", version=f"vectorizer {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _serve_parser(sub)
    _restore_parser(sub)
    _operator_parser(sub)
    args = vars(parser.parse_args(argv))
    command = args.pop("command")
    if command == "serve":
        return _serve(args, argv if as_process else None)
    if command == "restore":
        data_dir = args["data_dir"]
        if not isinstance(data_dir, Path):
            try:
                data_dir = load({}).data_dir
            except ValidationError as err:
                print(f"vectorizer: {err.message}", file=sys.stderr)  # noqa: T201
                return 2
        return _restore(args["file"], data_dir, replace=args["replace"])
    parser.error(f"unknown command {command}")
    return 2


def _serve(args: dict[str, object], argv: list[str] | None) -> int:
    config = args.pop("config")
    try:
        settings = load(args, config_file=config if isinstance(config, Path) else None)
    except ValidationError as err:
        print(f"vectorizer: {err.message}", file=sys.stderr)  # noqa: T201
        return 2
    if settings.huge_pages and argv is not None:
        reexec_with_huge_pages(argv)  # returns when already done (or not glibc)
    _private_files()
    from vectorizer.observability import logs, tracing
    from vectorizer.server.serve import serve
    from vectorizer.stopsignals import STOP_SIGNALS

    logs.setup(settings.log_level, settings.log_format)
    for name in unknown_environment(os.environ):
        logging.getLogger("vectorizer.settings").warning(
            "%s names no setting: ignored (see vectorizer serve --help)", name
        )
    tracing.setup(
        settings.tracing_exporter,
        settings.tracing_sample_ratio,
        settings.otlp_endpoint,
        service="vectorizer",
    )
    try:
        return _run(serve(settings))
    finally:
        for sig in STOP_SIGNALS:  # (closing, the loop put back the default: dying of one)
            signal.signal(sig, signal.SIG_IGN)
        tracing.shutdown()


def _private_files() -> None:
    """Files and directories this process creates are its user's only (PostgreSQL's
    postmaster does the same): the log, snapshots and graphs hold every vector and
    payload, and a volume's directory may be readable by others."""
    os.umask(0o077)


def _restore(file: Path, data_dir: Path, *, replace: bool) -> int:
    from vectorizer.engine import full_snapshots
    from vectorizer.replication import state

    _private_files()
    try:  # (a node's replication history describes the data it replaces)
        info = full_snapshots.restore(file, data_dir, replace=replace, describing=(state.FILE,))
    except (VectorizerError, OSError) as err:
        print(f"vectorizer: {getattr(err, 'message', err)}", file=sys.stderr)  # noqa: T201
        return 2
    print(f"restored {data_dir} to sequence {info.sequence} ({info.size_bytes} bytes)")  # noqa: T201
    return 0


def _run(main: Coroutine[Any, Any, int]) -> int:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


if __name__ == "__main__":
    sys.exit(main())
