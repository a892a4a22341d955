"""@retry, @catch and @timeout.

`flaky` fails on its first two attempts and succeeds on the third (it counts attempts through
`current.retry_count`); `broken` always fails and is caught; `stuck` blocks until its timeout kills it,
and is caught too.
"""

import threading

from satchel.flows import FlowSpec, catch, current, resources, retry, step, timeout


class ResilientFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.flaky, self.broken, self.stuck)

    @retry(times=2)
    @resources(cpu=1, memory=512)
    @step
    def flaky(self):
        if current.retry_count < 2:
            raise RuntimeError(f"flaky attempt {current.retry_count}")
        self.attempts = current.retry_count + 1
        self.next(self.join)

    @catch(var="broken_error")
    @step
    def broken(self):
        raise KeyError("never works")
        self.next(self.join)

    @catch(var="stuck_error")
    @timeout(seconds=1)
    @step
    def stuck(self):
        threading.Event().wait()
        self.next(self.join)

    @step
    def join(self, inputs):
        self.attempts = inputs.flaky.attempts
        self.broken_error = inputs.broken.broken_error
        self.stuck_error = inputs.stuck.stuck_error
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ResilientFlow()
