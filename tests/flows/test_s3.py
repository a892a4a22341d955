"""Runs on an S3 store (a moto server): artifacts, documents and the client go through the same Store."""

from __future__ import annotations

from satchel.flows import Flow, Runner
from tests.flows.helpers import flow_class


def test_foreach_and_client_on_s3(s3_store_url: str) -> None:
    run = Runner(flow_class("foreach", "ForeachFlow"), store=s3_store_url, max_workers=4).run(
        width=6, tags=["s3"]
    )
    assert run.data.squares == [i * i for i in range(6)]
    again = Flow("ForeachFlow", s3_store_url).latest_successful_run
    assert again.id == run.id and again.tags == {"s3"}
    assert [t.data.square_value for t in again["square"].tasks] == [i * i for i in range(6)]
    assert "starting" not in again["start"].task.stdout


def test_environment_step_on_s3(s3_store_url: str) -> None:
    # The step's environment gets boto3 too (the task writes its artifacts to S3 with the kit's store).
    run = Runner(flow_class("envstep", "EnvFlow"), store=s3_store_url).run(shards=2)
    assert run.data.models == ["1,000", "2,000"]
    assert [t.data.model for t in sorted(run["fit"].tasks, key=lambda t: t.data.shard)] == ["1,000", "2,000"]
