"""The command line a flow file gets from `MyFlow()`: `python flow.py run [--alpha 0.7] [--tag t]
[--max-workers N] [--executor local|ray] [--ray-address A] [--store URL] [--progress | --quiet]`, `resume [STEP] [--origin-run-id R]`,
`spin STEP [--run-id R] [--task ID]`, `show` and `logs PATHSPEC`."""

from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn

from satchel.errors import SatchelError
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
    run.add_argument("--executor", default="local", choices=["local", "ray"], help="where tasks run")
    run.add_argument(
        "--ray-address",
        default=None,
        help="with --executor ray: the Ray cluster (default: $RAY_ADDRESS, else a local Ray started for the run)",
    )
    run.add_argument("--store", default=None, help="store URL or directory (default: $SATCHEL_STORE)")
    run.add_argument("--quiet", action="store_true", help="print only the outcome")
    run.add_argument(
        "--progress", action="store_true", help="show the live progress table even when not on a terminal"
    )
    resume = commands.add_parser(
        "resume", help="run again, reusing the successful tasks of an earlier run before STEP"
    )
    resume.add_argument(
        "step", nargs="?", default=None, help="the step to restart at (default: the first that failed)"
    )
    resume.add_argument("--origin-run-id", default=None, help="the run to resume (default: the latest)")
    spin = commands.add_parser(
        "spin", help="re-execute one step's tasks against the inputs recorded in an earlier run"
    )
    spin.add_argument("step", help="the step to re-execute")
    spin.add_argument(
        "--run-id", default=None, help="the run whose inputs to use (default: the latest successful)"
    )
    spin.add_argument("--task", default=None, help="only this task id of the step (default: all its tasks)")
    for command in (resume, spin):  # the run options (not the parameters: those of the origin run are used)
        for action in run._actions:
            if action.dest != "help" and not action.dest.startswith("param_"):
                command._add_action(action)
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
        from satchel.flows.progress import LiveProgress, for_command_line
        from satchel.flows.runtime import FlowRun

        params = {
            attr[len("param_") :]: value
            for attr, value in vars(args).items()
            if attr.startswith("param_") and value is not None
        }
        progress = for_command_line(quiet=args.quiet, force=args.progress)

        def echo(line: str) -> None:
            if isinstance(progress, LiveProgress):  # above the live table
                progress.console.print(line, markup=False, highlight=False, soft_wrap=True)
            else:
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
            executor_options={"address": args.ray_address} if args.ray_address else {},
            mode=args.command,
            step=getattr(args, "step", None),
            origin_run_id=getattr(args, "origin_run_id", None) or getattr(args, "run_id", None),
            task=getattr(args, "task", None),
            progress=progress,
        )
        run_id = run.run()
        if args.quiet:
            print(f"{flow_cls.__name__}/{run_id}: {args.command} successful")
        if args.command == "spin":
            print(f"inspect it: Flow({flow_cls.__name__!r})[{run_id!r}][{args.step!r}].task.data")
        sys.exit(0)
    except (RunFailed, GraphError, FlowError, SatchelError, NotImplementedError, ValueError, KeyError) as exc:
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
