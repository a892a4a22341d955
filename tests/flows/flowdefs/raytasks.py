"""Flows for the Ray executor: tasks that record where they ran and with which Ray resources, and a
task that outlives its @timeout."""

import os
import threading

from satchel.flows import FlowSpec, Parameter, resources, step, timeout


def _placement() -> tuple[int, dict]:
    import ray

    return os.getpid(), dict(ray.get_runtime_context().get_assigned_resources())


class RayResourcesFlow(FlowSpec):
    @step
    def start(self):
        self.start_pid, self.start_resources = _placement()
        self.next(self.big)

    @resources(cpu=2, memory=64)
    @step
    def big(self):
        self.big_pid, self.big_resources = _placement()
        self.next(self.end)

    @step
    def end(self):
        pass


class RayTimeoutFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.stuck)

    @timeout(seconds=2)
    @step
    def stuck(self):
        threading.Event().wait()
        self.next(self.end)

    @step
    def end(self):
        pass


class RayCrashFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.crash)

    @step
    def crash(self):
        os._exit(7)  # takes its Ray worker down with it
        self.next(self.end)

    @step
    def end(self):
        pass


class RayResumeFlow(FlowSpec):
    """Fails in `middle` while the file named by `flag` exists."""

    flag = Parameter("flag", default="")

    @step
    def start(self):
        self.start_pid = os.getpid()
        self.next(self.middle)

    @step
    def middle(self):
        if os.path.exists(self.flag):
            raise RuntimeError("middle fails while the flag file exists")
        self.total = 42
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    RayResourcesFlow()
