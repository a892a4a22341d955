"""One hosted function: the loaded proxy with what the gateways need of it, built once (JSON forms, codecs)."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

from satchel.bindings.arguments import JsonArguments
from satchel.bindings.codec import Codec, RequestCodec
from satchel.bindings.jsonform import JsonForm
from satchel.bindings.schema import named_types
from satchel.runtime.proxy import LoadedFunction


@dataclass
class Parameter:
    name: str
    form: JsonForm
    required: bool
    positional_only: bool


@dataclass
class HostedFunction:
    name: str
    fn: LoadedFunction
    doc: str
    request_schema: dict
    response_schema: Any
    parameters: dict[str, Parameter]
    response_form: JsonForm
    request_codec: RequestCodec
    response_codec: Codec
    example: dict[str, Any] | None = None  # the arguments given at export (JSON form), if any
    request_fingerprint: str = field(init=False)
    response_fingerprint: str = field(init=False)
    json_arguments: JsonArguments = field(init=False)  # worded as Python calls and `satchel call` word it

    def __post_init__(self) -> None:
        self.request_fingerprint = self.request_codec.fingerprint_hex
        self.response_fingerprint = self.response_codec.fingerprint_hex
        self.json_arguments = JsonArguments(self.request_schema)

    @classmethod
    def of(cls, name: str, fn: LoadedFunction) -> HostedFunction:
        schema = fn.schema
        request, response = schema["request"], schema["response"]
        named = named_types(request)
        signature = inspect.signature(fn)
        parameters = {}
        for f in request["fields"]:
            p = signature.parameters.get(f["name"])
            parameters[f["name"]] = Parameter(
                name=f["name"],
                form=JsonForm(f["type"], named=named),
                required="default" not in f,
                positional_only=p is not None and p.kind == inspect.Parameter.POSITIONAL_ONLY,
            )
        return cls(
            name=name,
            fn=fn,
            doc=(fn.metadata.get("function", {}).get("doc") or "").strip(),
            request_schema=request,
            response_schema=response,
            parameters=parameters,
            response_form=JsonForm(response, named=named_types(response)),
            request_codec=RequestCodec(request),
            response_codec=Codec(response, path="return value"),
            example=fn.metadata.get("interface", {}).get("example"),
        )

    def arguments_from_json(self, body: Any) -> dict[str, Any]:
        """The keyword arguments of a JSON body; ArgumentError naming the parameter (`.parameter`)."""
        return self.json_arguments.parse(body)

    def split(self, arguments: dict[str, Any]) -> tuple[tuple, dict]:
        """(args, kwargs) for the proxy: positional-only parameters go by position."""
        args = tuple(
            arguments.pop(n) for n, p in self.parameters.items() if p.positional_only and n in arguments
        )
        return args, arguments
