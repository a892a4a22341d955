"""Tasks that SIGKILL themselves. Each writes "<its pid> <pid of a sleeper it started>" to the file named
by $KILLED_PIDS first, so a test can check nothing is left running."""

import os
import signal
import subprocess
import sys

from satchel.flows import FlowSpec, current, retry, step


def start_sleeper_and_die() -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with open(os.environ["KILLED_PIDS"], "a") as fh:
        fh.write(f"{os.getpid()} {sleeper.pid}\n")
    os.kill(os.getpid(), signal.SIGKILL)


class KilledFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.victim)

    @step
    def victim(self):
        start_sleeper_and_die()
        self.next(self.end)

    @step
    def end(self):
        pass


class KilledOnceFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.victim)

    @retry(times=1)
    @step
    def victim(self):
        if current.retry_count == 0:
            start_sleeper_and_die()
        self.survived_attempt = current.retry_count
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    KilledFlow()
