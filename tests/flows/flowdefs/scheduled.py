"""A flow with a schedule and a trigger, recorded in its metadata."""

from satchel.flows import FlowSpec, schedule, step, trigger_on_finish


@schedule(cron="0 * * * *", timezone="Europe/Paris")
@trigger_on_finish(flows=["LinearFlow", "BranchFlow"])
class ScheduledFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ScheduledFlow()
