"""A flow whose middle step raises, and whose end is never reached."""

from satchel.flows import FlowSpec, step


class FailingFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.boom)

    @step
    def boom(self):
        print("about to fail")
        raise ValueError("the middle step broke")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    FailingFlow()
