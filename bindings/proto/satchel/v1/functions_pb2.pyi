# ruff: noqa
# fmt: off
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class InvokeRequest(_message.Message):
    __slots__ = ("function", "payload", "request_fingerprint")
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    function: str
    payload: bytes
    request_fingerprint: str
    def __init__(self, function: _Optional[str] = ..., payload: _Optional[bytes] = ..., request_fingerprint: _Optional[str] = ...) -> None: ...

class InvokeResponse(_message.Message):
    __slots__ = ("payload", "response_fingerprint")
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    response_fingerprint: str
    def __init__(self, payload: _Optional[bytes] = ..., response_fingerprint: _Optional[str] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("id", "function", "state", "payload", "response_fingerprint", "error", "created_at", "finished_at")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[Job.State]
        QUEUED: _ClassVar[Job.State]
        RUNNING: _ClassVar[Job.State]
        SUCCEEDED: _ClassVar[Job.State]
        FAILED: _ClassVar[Job.State]
        CANCELLED: _ClassVar[Job.State]
    STATE_UNSPECIFIED: Job.State
    QUEUED: Job.State
    RUNNING: Job.State
    SUCCEEDED: Job.State
    FAILED: Job.State
    CANCELLED: Job.State
    ID_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    function: str
    state: Job.State
    payload: bytes
    response_fingerprint: str
    error: Error
    created_at: float
    finished_at: float
    def __init__(self, id: _Optional[str] = ..., function: _Optional[str] = ..., state: _Optional[_Union[Job.State, str]] = ..., payload: _Optional[bytes] = ..., response_fingerprint: _Optional[str] = ..., error: _Optional[_Union[Error, _Mapping]] = ..., created_at: _Optional[float] = ..., finished_at: _Optional[float] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("kind", "message")
    KIND_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    kind: str
    message: str
    def __init__(self, kind: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class CancelRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DescribeRequest(_message.Message):
    __slots__ = ("function",)
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    function: str
    def __init__(self, function: _Optional[str] = ...) -> None: ...

class FunctionDescription(_message.Message):
    __slots__ = ("name", "doc", "request_schema", "response_schema", "request_fingerprint", "response_fingerprint", "bundle")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DOC_FIELD_NUMBER: _ClassVar[int]
    REQUEST_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_FIELD_NUMBER: _ClassVar[int]
    name: str
    doc: str
    request_schema: str
    response_schema: str
    request_fingerprint: str
    response_fingerprint: str
    bundle: str
    def __init__(self, name: _Optional[str] = ..., doc: _Optional[str] = ..., request_schema: _Optional[str] = ..., response_schema: _Optional[str] = ..., request_fingerprint: _Optional[str] = ..., response_fingerprint: _Optional[str] = ..., bundle: _Optional[str] = ...) -> None: ...

class ListRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListResponse(_message.Message):
    __slots__ = ("functions",)
    FUNCTIONS_FIELD_NUMBER: _ClassVar[int]
    functions: _containers.RepeatedCompositeFieldContainer[FunctionDescription]
    def __init__(self, functions: _Optional[_Iterable[_Union[FunctionDescription, _Mapping]]] = ...) -> None: ...
