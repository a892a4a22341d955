"""The command line a flow file gets from `MyFlow()`: `python flow.py run [--alpha 0.7] [--tag t]
[--max-workers N] [--store URL]` and `python flow.py show`."""

from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn

from satchel.flows.errors import FlowError, GraphError, RunFailed
from satchel.flows.graph import FlowGraph


def _parser(flow_cls: type) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=os.path.basename(sys.argv[0]), description=(flow_cls.__doc__ or "").strip() or None
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the flow")
    for attr, param in flow_cls._parameters().items():
        default = "required" if param.required else f"default: {param.default!r}"
        run.add_argument(
            f"--{param.name.replace('_', '-')}",
            dest=f"param_{attr}",
            metavar=param.type.__name__.upper(),
            required=param.required,
            help=f"{param.help} ({default})".strip(),
        )
    run.add_argument("--tag", action="append", default=[], help="tag the run (repeatable)")
    run.add_argument(
        "--max-workers", type=int, default=None, help="tasks at once (default: the number of cores)"
    )
    run.add_argument("--executor", default="local", choices=["local"], help="where tasks run")
    run.add_argument("--store", default=None, help="store URL or directory (default: $SATCHEL_STORE)")
    run.add_argument("--quiet", action="store_true", help="print only the outcome")
    commands.add_parser("show", help="show the graph")
    logs = commands.add_parser("logs", help="print a task's stdout (or stderr): RUN_ID/STEP[/TASK_ID]")
    logs.add_argument("pathspec")
    logs.add_argument("--stderr", action="store_true", help="print stderr instead of stdout")
    logs.add_argument("--store", default=None, help="store URL or directory (default: $SATCHEL_STORE)")
    return parser


def main(flow_cls: type, argv: list[str] | None = None) -> NoReturn:
    """Parse the command line, do it, exit (0 on success, 1 on a failed run or an invalid flow)."""
    args = _parser(flow_cls).parse_args(argv)
    debug = bool(os.environ.get("SATCHEL_DEBUG"))
    try:
        if args.command == "show":
            sys.stdout.write(FlowGraph(flow_cls).describe())
            sys.exit(0)
        if args.command == "logs":
            _logs(flow_cls.__name__, args.pathspec, args.store, "stderr" if args.stderr else "stdout")
            sys.exit(0)
        from satchel.flows.runtime import FlowRun

        params = {
            attr[len("param_") :]: value
            for attr, value in vars(args).items()
            if attr.startswith("param_") and value is not None
        }

        def echo(line: str) -> None:
            print(line, flush=True)

        quiet_echo = None if args.quiet else echo
        run = FlowRun(
            flow_cls,
            parameters=params,
            tags=args.tag,
            store=args.store,
            executor=args.executor,
            max_workers=args.max_workers,
            echo=quiet_echo,
        )
        run_id = run.run()
        if args.quiet:
            print(f"{flow_cls.__name__}/{run_id}: run successful")
        sys.exit(0)
    except (RunFailed, GraphError, FlowError, NotImplementedError, ValueError, KeyError) as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)


def _logs(flow_name: str, pathspec: str, store: str | None, stream: str) -> None:
    from satchel.flows.client import Flow

    parts = pathspec.strip("/").split("/")
    if parts and parts[0] == flow_name:
        parts = parts[1:]
    if len(parts) not in (2, 3):
        raise ValueError(f"logs takes RUN_ID/STEP or RUN_ID/STEP/TASK_ID, got {pathspec!r}")
    tasks = Flow(flow_name, store)[parts[0]][parts[1]].tasks
    if len(parts) == 3:
        tasks = [t for t in tasks if t.id == parts[2]]
        if not tasks:
            raise KeyError(f"no finished task {pathspec!r}")
    for task in tasks:
        text = getattr(task, stream)
        if len(tasks) > 1:
            print(f"--- {task.pathspec} ---")
        sys.stdout.write(text)
