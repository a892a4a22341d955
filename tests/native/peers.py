"""The other end of a ring, as a separate process: `python -m tests.native.peers ROLE JSON-ARGS`.

Roles print one line on stdout when they are in position ("attached", a segment name, ...), so a test
can wait for that line instead of sleeping.
"""

from __future__ import annotations

import json
import mmap
import sys

from satchel.bindings.ring import Ring
from satchel.bindings.transports.shm import ShmTransportFactory
from satchel.core.errors import TransportClosed


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _attach(args: dict):
    return ShmTransportFactory.attach({"name": args["name"], "liveness_fd": args.get("liveness_fd")})


def _pattern(size: int) -> memoryview:
    """`size` bytes (an anonymous mapping: no memory is touched until read) with a marker every MiB."""
    buf = mmap.mmap(-1, max(size, 1))
    for offset in range(0, size, 1 << 20):
        buf[offset : offset + 8] = offset.to_bytes(8, "little")
    return memoryview(buf)[:size]


def echo(args: dict) -> None:
    """Answer each message with itself; an empty message ends it."""
    transport = _attach(args)
    say("attached")
    try:
        while True:
            message = transport.recv()
            if not len(message):
                break
            transport.send([message])
    except TransportClosed:
        say("closed")
    finally:
        transport.close()


def sink(args: dict) -> None:
    """Answer each message with its length (8 bytes); an empty message ends it."""
    transport = _attach(args)
    say("attached")
    try:
        while True:
            message = transport.recv()
            if not len(message):
                break
            head = bytes(memoryview(message)[:8])
            transport.send([len(message).to_bytes(8, "little"), head])
    except TransportClosed:
        say("closed")
    finally:
        transport.close()


def source(args: dict) -> None:
    """Send one message of `size` bytes, then wait for the end."""
    transport = _attach(args)
    say("attached")
    try:
        transport.send([_pattern(int(args["size"]))])
        say("sent")
        transport.recv()
    except TransportClosed:
        say("closed")
    finally:
        transport.close()


def pingpong(args: dict) -> None:
    """Send `count` numbered messages of `size` bytes while reading as many replies (both directions at
    once), then check every reply: the peer must answer each with itself."""
    import threading

    transport = _attach(args)
    say("attached")
    count, size = int(args["count"]), int(args["size"])
    errors = []

    def reader() -> None:
        try:
            for i in range(count):
                reply = transport.recv(60)
                if bytes(reply[:8]) != i.to_bytes(8, "little") or len(reply) != size + (i % 7) * 1000:
                    errors.append(f"reply {i}: {len(reply)} bytes, starts {bytes(reply[:8]).hex()}")
        except Exception as exc:  # reported below
            errors.append(repr(exc))

    thread = threading.Thread(target=reader)
    thread.start()
    for i in range(count):
        body = bytearray(size + (i % 7) * 1000)
        body[:8] = i.to_bytes(8, "little")
        transport.send([body])
    thread.join()
    say("ok" if not errors else "errors: " + "; ".join(errors[:3]))
    transport.close()


def creator_call(args: dict) -> None:
    """Create a ring (print its name), send one request of `size` bytes, wait for the reply forever."""
    ring = Ring.create(int(args.get("capacity", 0)))
    say(ring.name)
    ring.send([_pattern(int(args.get("size", 64)))])
    say("sent")
    try:
        ring.recv()
    except TransportClosed:
        say("closed")
    ring.close()


def creator_only(args: dict) -> None:
    """Create a ring, print its name, then wait on stdin (killed by the test, before anyone attaches)."""
    ring = Ring.create(int(args.get("capacity", 0)))
    say(ring.name)
    sys.stdin.read()
    ring.close()


ROLES = {
    "echo": echo,
    "sink": sink,
    "source": source,
    "pingpong": pingpong,
    "creator_call": creator_call,
    "creator_only": creator_only,
}

if __name__ == "__main__":
    ROLES[sys.argv[1]](json.loads(sys.argv[2]) if len(sys.argv) > 2 else {})
