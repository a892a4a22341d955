"""The baseline for REST serving: a bare FastAPI endpoint computing `add(a, b)` in-process, under the same
uvicorn settings `satchel serve` uses (one process, no access log). Prints its port, serves until killed."""

from __future__ import annotations

import sys

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()


class AddRequest(BaseModel):
    a: float
    b: float


@app.post("/v1/functions/add:invoke")
async def add(body: AddRequest) -> dict:
    return {"result": body.a + body.b}


@app.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=False, log_level="warning")
