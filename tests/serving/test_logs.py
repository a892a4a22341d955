"""The server's access lines (serving/logs.py): batched per event-loop iteration, written at once off a loop."""

from __future__ import annotations

import asyncio
import io
import json
import logging

from satchel.serving.logs import AccessLines, direct_writer


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def test_off_an_event_loop_a_line_is_written_at_once() -> None:
    stream = CountingStream()
    handler = AccessLines(stream)
    handler.write_line('{"a": 1}')
    assert stream.getvalue() == '{"a": 1}\n' and stream.writes == 1


def test_lines_of_one_loop_iteration_leave_in_one_write() -> None:
    stream = CountingStream()
    handler = AccessLines(stream)

    async def main() -> list[str]:
        for i in range(3):
            handler.write_line(json.dumps({"n": i}))
        before = stream.getvalue()
        loop = asyncio.get_running_loop()
        after_flush = loop.create_future()
        loop.call_soon(after_flush.set_result, None)  # callbacks run in order: after the flush
        await after_flush
        return [before, stream.getvalue()]

    before, after = asyncio.run(main())
    assert before == ""
    assert [json.loads(line)["n"] for line in after.splitlines()] == [0, 1, 2]
    assert stream.writes == 1


def test_flush_writes_what_is_pending_and_a_record_goes_through_emit() -> None:
    stream = CountingStream()
    handler = AccessLines(stream)
    logger = logging.getLogger("satchel.tests.access-lines")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        assert direct_writer(logger) is handler
        logger.info("plain %s", "message")
        assert stream.getvalue() == "plain message\n"
        logger.propagate = True  # another destination: records must be made
        assert direct_writer(logger) is None
        logger.propagate = False
        logger.addFilter(lambda record: True)
        assert direct_writer(logger) is None
    finally:
        logger.removeHandler(handler)
        logger.filters.clear()
