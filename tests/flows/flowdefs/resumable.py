"""A flow that fails in `middle` while the file named by $RESUME_FAIL_FILE exists; every task appends
"<step> <pid>" to the file named by $RESUME_LOG, so a test can tell which tasks ran."""

import os

from satchel.flows import FlowSpec, step


def mark(name: str) -> None:
    with open(os.environ["RESUME_LOG"], "a") as fh:
        fh.write(f"{name} {os.getpid()}\n")


class ResumeFlow(FlowSpec):
    @step
    def start(self):
        mark("start")
        self.base = 100
        self.items = list(range(4))
        self.next(self.each, foreach="items")

    @step
    def each(self):
        mark(f"each{self.input}")
        print(f"each {self.input}")
        self.value = self.base + self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        mark("join")
        self.values = [i.value for i in inputs]
        self.next(self.middle)

    @step
    def middle(self):
        mark("middle")
        if os.path.exists(os.environ["RESUME_FAIL_FILE"]):
            raise RuntimeError("middle fails while the flag file exists")
        self.total = sum(self.values)
        self.next(self.end)

    @step
    def end(self):
        mark("end")


class ResumeEachFlow(FlowSpec):
    """`each` fails for item 2 while the flag file exists; the other splits succeed."""

    @step
    def start(self):
        mark("start")
        self.items = list(range(4))
        self.next(self.each, foreach="items")

    @step
    def each(self):
        mark(f"each{self.input}")
        if self.input == 2 and os.path.exists(os.environ["RESUME_FAIL_FILE"]):
            raise RuntimeError("split 2 fails while the flag file exists")
        self.value = 10 * self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        mark("join")
        self.values = [i.value for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        mark("end")


if __name__ == "__main__":
    ResumeFlow()
