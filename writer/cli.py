"""The `writer` command line: a thin layer on OrderRepository."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from writer import aws, awsenv, bulk, items, logs
from writer.argparsing import (
    OneLineArgumentParser,
    UsageError,
    exit_with,
    quiet_after_closed_stdout,
)
from writer.aws_errors import translate
from writer.errors import MissingTableError, ValidationError, WriterError
from writer.progress import ProgressBar
from writer.repository import OrderRepository
from writer.seed import seed
from writer.settings import WriterSettings
from writer.validation import parse_status


def _provisioned(value: str) -> tuple[int, int]:
    try:
        read, write = (int(part) for part in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not R,W (two integers)") from None
    if read < 1 or write < 1:
        raise argparse.ArgumentTypeError(f"{value!r}: capacities must be at least 1")
    return read, write


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value!r} is negative")
    return number


TABLE_HELP = "table name (ORDERSTREAM_TABLE, default Users)"


class _Subparsers:
    """Adds each command with the global `--table` too, so it works before or after it."""

    def __init__(self, sub: argparse._SubParsersAction[OneLineArgumentParser]) -> None:
        self._sub = sub

    def add_parser(self, name: str, help: str) -> OneLineArgumentParser:
        parser = self._sub.add_parser(name, help=help)
        # SUPPRESS: when not given here, the value given before the command stays.
        parser.add_argument("--table", default=argparse.SUPPRESS, help=TABLE_HELP)
        return parser


def build_parser() -> OneLineArgumentParser:
    """The `writer` command line; errors are one line, as every orderstream tool's."""
    parser = OneLineArgumentParser(prog="writer", description=__doc__)
    parser.add_argument("--table", help=TABLE_HELP)
    sub = _Subparsers(
        parser.add_subparsers(dest="command", required=True, parser_class=OneLineArgumentParser)
    )

    p = sub.add_parser("create-table", help="create the table (idempotent), wait for ACTIVE")
    p.add_argument(
        "--provisioned",
        type=_provisioned,
        metavar="R,W",
        help="provisioned capacity for table and GSI (default on-demand)",
    )

    p = sub.add_parser("put-user", help="create or replace a user")
    p.add_argument("user_id")
    p.add_argument("--name", required=True)
    p.add_argument("--email", required=True)

    p = sub.add_parser("put-order", help="create an order (fails if it exists)")
    p.add_argument("user_id")
    p.add_argument("order_id")
    p.add_argument("--amount", required=True)
    p.add_argument("--status", default="Pending")

    p = sub.add_parser("set-status", help="move an order to a new status (conditional)")
    p.add_argument("user_id")
    p.add_argument("order_id")
    p.add_argument("status")
    p.add_argument("--expect", help="fail unless the order is in this status now")
    p.add_argument("--force", action="store_true", help="skip the transition rule")

    p = sub.add_parser("orders", help="a user's orders as JSON lines (via the GSI)")
    p.add_argument("user_id")

    sub.add_parser("seed", help="write the seed document's users and orders")

    p = sub.add_parser("load", help="bulk synthetic users, orders and status updates")
    p.add_argument("--users", type=_positive, required=True)
    p.add_argument("--orders-per-user", type=_positive, required=True)
    p.add_argument("--updates", type=_positive, default=0)
    p.add_argument("--seed", type=int, default=0, help="random seed for reproducible loads")
    return parser


def _emit(obj: object) -> None:
    print(json.dumps(obj, default=str), flush=True)


def _progress_bar() -> ProgressBar | None:
    if not sys.stderr.isatty():
        return None
    return ProgressBar(stream=sys.stderr, labels=("writing items", "status updates"))


def run(args: argparse.Namespace, repo: OrderRepository, progress: ProgressBar | None) -> None:
    """Run one parsed command against the repository."""
    command = args.command
    if command == "create-table":
        created = repo.create_table(args.provisioned)
        _emit({"table": repo.table, "created": created, "status": "ACTIVE"})
    elif command == "put-user":
        user = repo.put_user(args.user_id, args.name, args.email)
        _emit(
            {
                "user_id": user.user_id,
                "name": user.name,
                "email": user.email,
                "created_at": user.created_at,
            }
        )
    elif command == "put-order":
        order = repo.put_order(args.user_id, args.order_id, args.amount, parse_status(args.status))
        _emit(items.order_json(order))
    elif command == "set-status":
        expect = parse_status(args.expect, "expect") if args.expect else None
        before, after = repo.set_status(
            args.user_id, args.order_id, parse_status(args.status), expect=expect, force=args.force
        )
        _emit({**items.order_json(after), "old_status": str(before.status)})
    elif command == "orders":
        for order in repo.orders(args.user_id):
            _emit(items.order_json(order))
    elif command == "seed":
        users, orders = seed(repo)
        _emit({"users": users, "orders_created": orders})
    elif command == "load":
        client = repo._client
        result = bulk.load(
            repo,
            client,
            args.users,
            args.orders_per_user,
            updates=args.updates,
            seed=args.seed,
            progress=progress,
        )
        _emit({"users": result.users, "orders": result.orders, "updates": result.updates})


def main(argv: Sequence[str] | None = None) -> int:
    """The `writer` console script: exit 0, 1 (AWS trouble, worth a retry) or 2 (usage
    or configuration: fix it first)."""
    try:
        args = build_parser().parse_args(argv)
        settings = WriterSettings.from_env(os.environ, table=args.table)
    except (UsageError, ValidationError) as exc:
        return exit_with("writer", str(exc).removeprefix("writer: "), 2)
    # stdout carries the command's JSON output; only warnings and errors are logged.
    logs.configure(settings.log_format, level="warning", stream=sys.stderr)
    progress = _progress_bar() if args.command == "load" else None
    client = None
    try:
        with translate(settings.table):
            client = aws.dynamodb_client(settings.region)
        run(args, OrderRepository(client, settings.table), progress)
    except MissingTableError as exc:
        meta = client.meta if client is not None else None
        where = (meta.region_name, meta.endpoint_url) if meta else (settings.region, None)
        return exit_with("writer", awsenv.missing_table(exc.table, *where), exc.exit_code)
    except WriterError as exc:
        return exit_with("writer", str(exc), exc.exit_code)
    except KeyboardInterrupt:
        if progress is not None:
            progress.interrupt()
        return exit_with("writer", "interrupted (Ctrl-C): what was written so far stays", 130)
    except BrokenPipeError:  # `writer orders U1 | head -1`: the reader had what it wanted
        return quiet_after_closed_stdout()
    return 0
