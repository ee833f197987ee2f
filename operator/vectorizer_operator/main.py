"""``vectorizer operator``: run the kopf operator.

    vectorizer operator                         # all namespaces, leader election on
    vectorizer operator -n prod -n staging      # only these namespaces
    vectorizer operator --standalone            # one replica, no Lease

``run(argv)`` is the entry point the ``vectorizer`` CLI calls with the arguments after
``operator``; ``python -m vectorizer_operator`` does the same.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import Any

from vectorizer_operator.settings import ENV_PREFIX, OperatorSettings, load

Runner = Callable[..., Any]


def build_parser(prog: str = "vectorizer operator") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Run the Vectorizer operator (reconciles VectorizerCluster resources). "
        f"Every option can also come from the environment ({ENV_PREFIX}<NAME>); flags win.",
    )
    p.add_argument(
        "-n",
        "--namespace",
        dest="namespaces",
        action="append",
        default=None,
        metavar="NAMESPACE",
        help=f"watch this namespace (repeatable; {ENV_PREFIX}NAMESPACES, comma-separated); "
        "default: all namespaces",
    )
    p.add_argument(
        "-A",
        "--all-namespaces",
        action="store_true",
        help="watch every namespace (the default unless namespaces are given)",
    )
    for f in fields(OperatorSettings):
        if f.name == "namespaces":
            continue
        flag = "--" + f.name.replace("_", "-")
        env = ENV_PREFIX + f.name.upper()
        help_text = f"{f.metadata['help']} [env {env}; default {f.default!r}]"
        if str(f.type) == "bool":
            p.add_argument(flag, dest=f.name, action="store_const", const="true", help=help_text)
        else:
            p.add_argument(flag, dest=f.name, default=None, metavar=f.name.upper(), help=help_text)
    return p


def configure_logging(settings: OperatorSettings) -> None:
    import kopf

    level = settings.log_level.lower()
    kopf.configure(
        debug=level == "debug",
        verbose=level == "debug",
        quiet=level in ("warning", "error"),
        log_format=kopf.LogFormat.JSON if settings.log_format == "json" else kopf.LogFormat.FULL,
        log_prefix=settings.log_format != "json",
    )
    logging.getLogger().setLevel(level.upper())
    if level != "debug":
        # One line per watch event and per probe is noise; failures still show.
        for name in ("kopf.objects", "kopf.activities.probe", "aiohttp.access"):
            logging.getLogger(name).setLevel(logging.WARNING)


def parse_settings(argv: Sequence[str] | None) -> OperatorSettings:
    args = vars(build_parser().parse_args(argv))
    if args.pop("all_namespaces"):
        args["namespaces"] = []
    return load(args)


def run(argv: Sequence[str] | None = None, *, runner: Runner | None = None) -> int:
    """Parse ``argv``, then run kopf until it is stopped (SIGTERM/SIGINT). Returns the exit code."""
    try:
        settings = parse_settings(argv)
    except ValueError as err:
        sys.stderr.write(f"vectorizer operator: {err}\n")
        return 2
    configure_logging(settings)

    import kopf

    import vectorizer_operator.handlers  # noqa: F401 - registers the handlers

    run_kopf = runner or kopf.run
    run_kopf(
        standalone=True,  # peering is our Lease (see leader.py), not kopf's
        clusterwide=settings.clusterwide,
        namespaces=list(settings.namespaces),
        liveness_endpoint=settings.liveness or None,
        memo=kopf.Memo(config=settings),
    )
    return 0
