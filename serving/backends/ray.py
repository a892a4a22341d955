"""The Ray backend: the same REST gateway and worker pools as Ray Serve deployments, for when one machine
is not enough.

One deployment per function, whose replicas each hold a loaded proxy (`satchel.load(ref)`, one worker)
and call it; Ray Serve autoscales the replicas between `--workers MIN:MAX` on ongoing requests (MIN 0:
the first request pays the cold start). Each replica reserves `replica_cpus` of Ray's logical CPUs
(default 1, as its worker runs one call at a time; `--replica-cpus 0.25` packs four on a core, for
functions that mostly wait): MAX replicas need MAX x replica_cpus free CPUs, the rest stay pending until
a node frees up or joins. One ingress deployment runs the gateway of the local backend (`create_app`:
the same routes, JSON and Avro forms, errors, OpenAPI, probes, jobs, auth) over stand-ins of the
functions whose calls go to the function deployments. Ray Serve's HTTP proxy listens on the gateway's
host and port.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

from satchel.core.extras import needs_extra
from satchel.runtime.pool import DEFAULT_MAX_PENDING

from ..options import DEFAULT_REPLICA_CPUS, DEFAULT_SCALE_DOWN_AFTER
from .base import Backend, ServeOptions

with needs_extra("ray", "the ray serving backend"):
    import ray
    from ray import serve
    from ray.exceptions import RayTaskError
    from ray.serve.exceptions import BackPressureError

APP = "satchel"
GATEWAY = "satchel-gateway"


def deployment_name(function: str) -> str:
    return f"satchel-fn-{function}"


class FunctionReplica:
    """A replica of one function's deployment: a loaded proxy with one worker; calls go through it."""

    def __init__(self, ref: str, max_pending: int | None) -> None:
        from satchel.runtime.load import load

        self.fn = load(ref, workers=1, max_pending=max_pending or DEFAULT_MAX_PENDING)

    async def call(self, args: tuple, kwargs: dict[str, Any]) -> Any:
        return await self.fn.acall(*args, **kwargs)

    def __del__(self) -> None:
        fn = getattr(self, "fn", None)
        if fn is not None:
            fn.close()


class ServeFunction:
    """What the gateway needs of a loaded function (schema, metadata, signature, `acall`, workers),
    with its calls sent to the function's deployment. Errors raised there are raised here as they were
    (RemoteError, CallTimeout, WorkerCrashed...); a full deployment queue is `Overloaded`."""

    def __init__(self, name: str, ref: str, handle: Any) -> None:
        from satchel.bindings.codec import RequestCodec
        from satchel.packager.bundle import read_bundle
        from satchel.runtime.proxy import build_signature

        self.name = name
        self._bundle, _ = read_bundle(ref)
        self._signature = build_signature(self._bundle, RequestCodec(self._bundle.request_schema).defaults())
        self._handle = handle

    @property
    def __signature__(self) -> inspect.Signature:
        return self._signature

    @property
    def metadata(self) -> dict:
        return self._bundle.doc

    @property
    def schema(self) -> dict:
        return {"request": self._bundle.request_schema, "response": self._bundle.response_schema}

    @property
    def ref(self) -> Any:
        return self._bundle.ref

    @property
    def worker_pids(self) -> list[int | None]:
        """One entry per running replica (Ray Serve's count; the pids live on the cluster's nodes)."""
        try:
            status = serve.status().applications[APP].deployments[deployment_name(self.name)]
            running = int(status.replica_states.get("RUNNING", 0))
        except Exception:  # noqa: BLE001 - the controller is away: report no live replica
            running = 0
        return [0] * running or [None]

    @property
    def pending(self) -> int:
        return 0  # Ray Serve queues the calls; its own metrics count them

    async def acall(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await self._handle.call.remote(args, kwargs)
        except RayTaskError as exc:
            raise _cause(exc) from None
        except BackPressureError as exc:
            from satchel.core.errors import Overloaded

            raise Overloaded(f"{self.name}: the queue is full ({exc})") from None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self._handle.call.remote(args, kwargs).result()
        except RayTaskError as exc:
            raise _cause(exc) from None

    def close(self) -> None:
        """Nothing to close here: the replicas own the workers."""


def _cause(exc: RayTaskError) -> BaseException:
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


@serve.ingress()
class Gateway:
    """The ingress deployment: the local backend's gateway app over the function deployments."""

    def __init__(self, functions: dict[str, list], options: ServeOptions) -> None:
        self._functions = functions  # name -> [ref, deployment handle]
        self._options = options

    def __serve_build_asgi_app__(self) -> Any:
        from satchel.serving.app import create_app
        from satchel.serving.logs import configure_logging

        options = self._options
        configure_logging(options.debug)
        functions = {
            name: ServeFunction(name, ref, handle) for name, (ref, handle) in self._functions.items()
        }
        return create_app(functions, options)  # functions of its own: `workers` and autoscaling are Ray's


def _scaling(workers: tuple[int, int], scale_down_after: float = DEFAULT_SCALE_DOWN_AFTER) -> dict[str, Any]:
    """Replicas of a function deployment: a fixed number, or Ray Serve's autoscaling between MIN and MAX
    on ongoing requests (up after a second of load, down after `scale_down_after` idle seconds)."""
    low, high = workers
    if low == high:
        return {"num_replicas": high}
    return {
        "autoscaling_config": {
            "min_replicas": low,
            "initial_replicas": max(low, 1),
            "max_replicas": high,
            "target_ongoing_requests": 1,
            "upscale_delay_s": 1.0,
            "downscale_delay_s": scale_down_after,
        }
    }


class RayBackend(Backend):
    """Serves on the Ray cluster at `options.address` (default: `RAY_ADDRESS`, else a local Ray started
    here and stopped by `stop()`; a Ray this process already joined is used as is)."""

    def __init__(self) -> None:
        self._started_ray = False
        self._running = False

    def start(self, refs: list[str], options: ServeOptions) -> str:
        from satchel.packager.bundle import read_bundle

        # checked by ServeOptions: a number of CPUs >= 0 (0: placed anywhere, reserves none)
        replica_cpus = float(DEFAULT_REPLICA_CPUS if options.replica_cpus is None else options.replica_cpus)
        functions: dict[str, str] = {}
        for ref in refs:
            name = read_bundle(ref)[0].name
            if name in functions:
                raise ValueError(f"two references name the function {name!r}")
            functions[name] = str(ref)
        unknown = sorted(set(options.function_workers) - set(functions))
        if unknown:
            raise ValueError(
                f"function workers given for {', '.join(map(repr, unknown))}, which is not served"
            )
        if not ray.is_initialized():
            ray.init(
                address=options.address or os.environ.get("RAY_ADDRESS") or "local",
                include_dashboard=False,
                configure_logging=False,
            )
            self._started_ray = True
        serve.start(http_options={"host": options.host, "port": options.port})
        bound = {}
        for name, ref in functions.items():
            deployment = serve.deployment(FunctionReplica).options(
                name=deployment_name(name),
                ray_actor_options={"num_cpus": replica_cpus},
                max_ongoing_requests=4,
                max_queued_requests=options.max_pending if options.max_pending is not None else -1,
                **_scaling(options.function_workers.get(name, options.workers), options.scale_down_after),
            )
            bound[name] = [ref, deployment.bind(ref, options.max_pending)]
        gateway = serve.deployment(Gateway).options(
            name=GATEWAY, ray_actor_options={"num_cpus": 0}, max_ongoing_requests=1000
        )
        serve.run(gateway.bind(bound, options), name=APP, route_prefix="/")
        self._running = True
        host = "127.0.0.1" if options.host in ("0.0.0.0", "") else options.host
        return f"http://{host}:{options.port}"

    def stop(self) -> None:
        if self._running:
            serve.shutdown()
            self._running = False
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False
