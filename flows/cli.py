"""The command line a flow file gets from `MyFlow()`: `python flow.py run [--alpha 0.7] [--tag t]
[--max-workers N] [--executor local|ray] [--ray-address A] [--store URL] [--progress | --quiet]`, `resume [STEP] [--origin-run-id R]`,
`spin STEP [--run-id R] [--task ID]`, `show` and `logs PATHSPEC`.

Exit status: 0 on success, 1 on a failed run or an invalid flow (`error: ...` on stderr; SATCHEL_DEBUG=1
shows the traceback instead), 2 on a usage error."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click

from satchel.core import settings
from satchel.core.errors import SatchelError
from satchel.flows.errors import FlowError, GraphError, RunFailed
from satchel.flows.graph import FlowGraph

#: what a command reports as `error: ...` and exit status 1 (anything else is a bug: a traceback)
_FAILURES = (RunFailed, GraphError, FlowError, SatchelError, NotImplementedError, ValueError, KeyError)
_PARAM = "param_"
_STORE_HELP = "store URL or directory (default: $SATCHEL_STORE)"


def _reported(func: Callable[..., None]) -> Callable[..., None]:
    """Run a command; a failure is one line on stderr and exit status 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            func(*args, **kwargs)
        except _FAILURES as exc:
            if settings.debug():
                raise
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)

    return wrapper


def _run_options(command: click.Command) -> click.Command:
    """The options of every command that runs the flow (run, resume, spin)."""
    options = [
        click.Option(["--tag"], multiple=True, help="tag the run (repeatable)"),
        click.Option(
            ["--max-workers"], type=int, default=None, help="tasks at once (default: the number of cores)"
        ),
        click.Option(
            ["--executor"], default="local", type=click.Choice(["local", "ray"]), help="where tasks run"
        ),
        click.Option(
            ["--ray-address"],
            default=None,
            help="with --executor ray: the Ray cluster (default: $RAY_ADDRESS, else a local Ray started for the run)",
        ),
        click.Option(["--store"], default=None, help=_STORE_HELP),
        click.Option(["--quiet"], is_flag=True, help="print only the outcome"),
        click.Option(
            ["--progress"], is_flag=True, help="show the live progress table even when not on a terminal"
        ),
    ]
    command.params.extend(options)
    return command


def _parameter_options(flow_cls: type) -> list[click.Option]:
    """An option per flow parameter, given as text (the flow's Parameter converts it, naming itself)."""
    options = []
    for attr, param in flow_cls._parameters().items():
        default = "required" if param.required else f"default: {param.default!r}"
        options.append(
            click.Option(
                [f"--{param.name.replace('_', '-')}", f"{_PARAM}{attr}"],
                metavar=param.type.__name__.upper(),
                required=param.required,
                help=f"{param.help} ({default})".strip(),
            )
        )
    return options


def _start(flow_cls: type, mode: str, options: dict[str, Any]) -> None:
    """Run the flow in `mode` (run, resume, spin) with the command's options."""
    from satchel.flows.driver import FlowRun
    from satchel.flows.progress import LiveProgress, for_command_line

    params = {
        name[len(_PARAM) :]: value
        for name, value in options.items()
        if name.startswith(_PARAM) and value is not None
    }
    quiet = options["quiet"]
    progress = for_command_line(quiet=quiet, force=options["progress"])

    def echo(line: str) -> None:
        if isinstance(progress, LiveProgress):  # above the live table
            progress.console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            print(line, flush=True)

    run = FlowRun(
        flow_cls,
        parameters=params,
        tags=list(options["tag"]),
        store=options["store"],
        executor=options["executor"],
        max_workers=options["max_workers"],
        echo=None if quiet else echo,
        executor_options={"address": options["ray_address"]} if options["ray_address"] else {},
        mode=mode,
        step=options.get("step"),
        origin_run_id=options.get("origin_run_id") or options.get("run_id"),
        task=options.get("task"),
        progress=progress,
    )
    run_id = run.run()
    if quiet:
        print(f"{flow_cls.__name__}/{run_id}: {mode} successful")
    if mode == "spin":
        print(f"inspect it: Flow({flow_cls.__name__!r})[{run_id!r}][{options['step']!r}].task.data")


def _group(flow_cls: type) -> click.Group:
    group = click.Group(
        help=(flow_cls.__doc__ or "").strip() or None,
        no_args_is_help=False,  # no command is a usage error (exit status 2), as for any missing argument
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    @group.command(name="run", help="run the flow")
    @_reported
    def run(**options: Any) -> None:
        _start(flow_cls, "run", options)

    run.params[:0] = _parameter_options(flow_cls)
    _run_options(run)

    @group.command(
        name="resume", help="run again, reusing the successful tasks of an earlier run before STEP"
    )
    @click.argument("step", required=False, default=None)
    @click.option("--origin-run-id", default=None, help="the run to resume (default: the latest)")
    @_reported
    def resume(**options: Any) -> None:
        _start(flow_cls, "resume", options)

    _run_options(resume)  # the run options; not the parameters (those of the origin run are used)

    @group.command(
        name="spin", help="re-execute one step's tasks against the inputs recorded in an earlier run"
    )
    @click.argument("step")
    @click.option(
        "--run-id", default=None, help="the run whose inputs to use (default: the latest successful)"
    )
    @click.option("--task", default=None, help="only this task id of the step (default: all its tasks)")
    @_reported
    def spin(**options: Any) -> None:
        _start(flow_cls, "spin", options)

    _run_options(spin)

    @group.command(name="show", help="show the graph")
    @_reported
    def show() -> None:
        sys.stdout.write(FlowGraph(flow_cls).describe())

    @group.command(name="logs", help="print a task's stdout (or stderr): RUN_ID/STEP[/TASK_ID]")
    @click.argument("pathspec")
    @click.option("--stderr", is_flag=True, help="print stderr instead of stdout")
    @click.option("--store", default=None, help=_STORE_HELP)
    @_reported
    def logs(pathspec: str, stderr: bool, store: str | None) -> None:
        _logs(flow_cls.__name__, pathspec, store, "stderr" if stderr else "stdout")

    return group


def main(flow_cls: type, argv: list[str] | None = None) -> NoReturn:
    """Parse the command line, do it, exit (0 on success, 1 on a failed run or an invalid flow, 2 on a
    usage error)."""
    _group(flow_cls).main(args=argv, prog_name=os.path.basename(sys.argv[0]))
    raise AssertionError("click's main exits")  # pragma: no cover


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
