"""Encoders and decoders of Satchel's own Avro logical types.

| logicalType        | Avro type | bytes / string                                                          |
|--------------------|-----------|-------------------------------------------------------------------------|
| `satchel.ndarray`  | bytes     | the standard `.npy` format (`numpy.lib.format`, header version 1.0, 2.0  |
|                    |           | or 3.0, then the raw buffer in C or Fortran order); never pickled        |
|                    |           | object arrays                                                           |
| `satchel.arrow`    | bytes     | an Arrow IPC *stream* (schema message, record batches, end-of-stream).  |
|                    |           | With the attribute `"python": "pandas.DataFrame"` the table came from a  |
|                    |           | DataFrame (`pyarrow.Table.from_pandas`, index kept in pandas metadata)   |
| `satchel.pickle`   | bytes     | `pickle.dumps(value, protocol=5)`: Python-only, not portable             |
| `satchel.decimal`  | string    | `str(decimal.Decimal)`: exact, any precision ("1.10", "-3E+5", "NaN")    |

numpy, pyarrow and pandas are imported only when a value of those kinds is encoded or decoded;
when missing, `MissingExtra` names the module and `pip install 'satchel[data]'`.

Decoding is zero-copy where the library allows it: an ndarray is a view over the bytes it was
decoded from (`np.frombuffer`: writable when those are a mutable buffer, as a large message received
over the ring is, a bytearray no one else holds; read-only when they are `bytes`: call `.copy()` to
modify it), a pyarrow Table references the received buffer. Keep that in mind before holding on to a small slice of a large
message.
"""

from __future__ import annotations

import ast
import decimal
import importlib
import io
import pickle
import sys
from typing import Any

from satchel.core.errors import MissingExtra

from ._avro import ARROW, DECIMAL, NDARRAY, PANDAS_PYTHON, PICKLE

__all__ = [
    "ARROW",
    "DECIMAL",
    "NDARRAY",
    "PANDAS_PYTHON",
    "PICKLE",
    "PICKLE_PROTOCOL",
    "decode_arrow",
    "decode_dataframe",
    "decode_decimal",
    "decode_ndarray",
    "decode_pickle",
    "encode_arrow",
    "encode_dataframe",
    "encode_decimal",
    "encode_ndarray",
    "ndarray_parts",
    "encode_pickle",
    "is_arrow_table",
    "is_dataframe",
    "is_ndarray",
    "require",
]

PICKLE_PROTOCOL = 5

_WHY = {
    "numpy": "a numpy.ndarray value (logical type satchel.ndarray)",
    "pyarrow": "a pyarrow.Table or pandas.DataFrame value (logical type satchel.arrow)",
    "pandas": "a pandas.DataFrame value",
}

_NPY_MAGIC = b"\x93NUMPY"
_MAX_NPY_HEADER = 1 << 20


def require(module: str) -> Any:
    """Import `module` (numpy, pyarrow or pandas), or raise MissingExtra naming what to install."""
    loaded = sys.modules.get(module)
    if loaded is not None:
        return loaded
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:  # a broken installation (another ImportError) goes through as it is
        raise MissingExtra(_WHY.get(module, "this value"), exc.name or module, "data") from None


# --- type checks that never import anything ---------------------------------------------------------


def is_ndarray(value: Any) -> bool:
    np = sys.modules.get("numpy")
    return np is not None and isinstance(value, np.ndarray)


def is_arrow_table(value: Any) -> bool:
    pa = sys.modules.get("pyarrow")
    return pa is not None and isinstance(value, (pa.Table, pa.RecordBatch))


def is_dataframe(value: Any) -> bool:
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(value, pd.DataFrame)


# --- numpy ------------------------------------------------------------------------------------------


def encode_ndarray(array: Any) -> bytes:
    """The `.npy` bytes of `array` (any shape, C or Fortran order, 0-d included; no object dtype)."""
    parts = ndarray_parts(array)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def ndarray_parts(array: Any) -> list[Any]:
    """The `.npy` bytes of `array` as parts to send one after the other, without copying its memory.

    A contiguous array gives [header, a uint8 view of the array's own buffer]; others one bytes object.
    Do not modify the array before the parts are sent.
    """
    np = require("numpy")
    if not isinstance(array, np.ndarray):
        raise TypeError(f"expected numpy.ndarray, got {type(array).__name__}")
    if type(array) is not np.ndarray:
        array = np.asarray(array)
    if array.dtype.hasobject:
        raise ValueError(
            f"a numpy array of dtype {array.dtype} holds Python objects, which cannot travel as "
            "satchel.ndarray (it would need pickle); convert it to a fixed dtype, or annotate the "
            "value with a pickled type and pass allow_pickle=True"
        )
    write_header = _npy_header_writer(np)
    if write_header is None or not (array.flags.c_contiguous or array.flags.f_contiguous):
        out = io.BytesIO()
        np.lib.format.write_array(out, array, version=None, allow_pickle=False)
        return [out.getvalue()]
    # contiguous: numpy's own header, then the array's memory itself
    fortran = not array.flags.c_contiguous
    dtype = array.dtype
    key = (dtype.str, array.shape, fortran) if dtype.fields is None and dtype.subdtype is None else None
    header_bytes = _npy_headers.get(key) if key is not None else None
    if header_bytes is None:
        header = io.BytesIO()
        write_header(header, np.lib.format.header_data_from_array_1_0(array))
        header_bytes = header.getvalue()
        if key is not None:
            _remember(_npy_headers, key, header_bytes)
    body = (array.T if fortran else array).reshape(-1).view(np.uint8)
    return [header_bytes, memoryview(body)]


# .npy headers written and read lately (the same shapes tend to travel again): parsing one with
# ast.literal_eval, or writing one, costs more than the rest of a small array's encoding
_npy_headers: dict = {}  # (dtype.str, shape, fortran) -> header bytes
_npy_parsed: dict = {}  # header bytes -> (dtype, shape, fortran_order)
_CACHED_HEADERS = 256


def _remember(cache: dict, key: Any, value: Any) -> None:
    if len(cache) >= _CACHED_HEADERS:
        cache.clear()
    cache[key] = value


def _npy_header_writer(np: Any) -> Any:
    """numpy's `_write_array_header(fp, d, version=None)` (picks format 1.0, 2.0 or 3.0), if found."""
    for module in ("numpy.lib._format_impl", "numpy.lib.format"):
        found = getattr(sys.modules.get(module), "_write_array_header", None)
        if found is not None:
            return found
    return None


def decode_ndarray(data: Any) -> Any:
    """An ndarray viewing the `.npy` bytes `data` (no copy; read-only when `data` is immutable)."""
    np = require("numpy")
    view = memoryview(data)
    if view.ndim != 1 or view.format != "B":
        view = view.cast("B")
    if len(view) < 10 or bytes(view[:6]) != _NPY_MAGIC:
        raise ValueError(f"not .npy data ({len(view)} bytes, without the .npy magic string)")
    major = view[6]
    if major == 1:
        header_len = int.from_bytes(view[8:10], "little")
        start = 10
    elif major in (2, 3):
        header_len = int.from_bytes(view[8:12], "little")
        start = 12
    else:
        raise ValueError(f"unsupported .npy format version {major}.{view[7]}")
    if header_len > _MAX_NPY_HEADER or start + header_len > len(view):
        raise ValueError("truncated or oversized .npy header")
    raw_header = bytes(view[: start + header_len])
    parsed = _npy_parsed.get(raw_header)
    if parsed is None:
        parsed = _parse_npy_header(np, raw_header[start:], major)
        _remember(_npy_parsed, raw_header, parsed)
    dtype, shape, fortran_order = parsed
    count = 1
    for n in shape:
        count *= n
    offset = start + header_len
    if len(view) - offset != count * dtype.itemsize:
        raise ValueError(
            f".npy data holds {len(view) - offset} bytes, its header announces {count * dtype.itemsize}"
        )
    order = "F" if fortran_order else "C"
    if count == 0:
        return np.empty(shape, dtype=dtype, order=order)
    flat = np.frombuffer(view, dtype=dtype, count=count, offset=offset)
    return flat.reshape(shape, order=order)


def _parse_npy_header(np: Any, raw: bytes, major: int) -> tuple[Any, tuple, bool]:
    """(dtype, shape, fortran_order) of the header dict text of a .npy file (format `major`.x)."""
    header_text = raw.decode("utf-8" if major >= 3 else "latin-1")
    try:
        header = ast.literal_eval(header_text)
    except (ValueError, SyntaxError) as exc:
        raise ValueError(f"malformed .npy header: {header_text[:100]!r}") from exc
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise ValueError(f"malformed .npy header: {header_text[:100]!r}")
    try:
        dtype = np.lib.format.descr_to_dtype(header["descr"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"malformed .npy dtype {header['descr']!r:.60}: {exc}") from None
    if dtype.hasobject:
        raise ValueError("refusing a .npy array of Python objects (that would need pickle)")
    shape = header["shape"]
    if not isinstance(shape, tuple) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise ValueError(f"malformed .npy shape {shape!r}")
    return dtype, shape, bool(header["fortran_order"])


# --- arrow ------------------------------------------------------------------------------------------


def encode_arrow(table: Any) -> memoryview:
    """An Arrow IPC stream of `table` (a pyarrow.Table or RecordBatch), as a memoryview."""
    pa = require("pyarrow")
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    if not isinstance(table, pa.Table):
        raise TypeError(f"expected pyarrow.Table, got {type(table).__name__}")
    # Measure the stream first (writing to a MockOutputStream copies nothing), then write it into a
    # buffer of that size from Arrow's pool: a growing BufferOutputStream would copy it as it grows
    # and fault in fresh memory each time.
    mock = pa.MockOutputStream()
    with pa.ipc.new_stream(mock, table.schema) as writer:
        writer.write_table(table)
    size = mock.size()
    buffer = pa.allocate_buffer(size)
    sink = pa.FixedSizeBufferWriter(buffer)
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    if sink.tell() != size:  # pragma: no cover - the two writes differ: keep what was written
        buffer = buffer.slice(0, sink.tell())
    return memoryview(buffer).cast("B")


def decode_arrow(data: Any) -> Any:
    """The pyarrow.Table in the Arrow IPC stream `data` (references `data`'s memory, no copy)."""
    pa = require("pyarrow")
    try:
        with pa.ipc.open_stream(pa.py_buffer(data)) as reader:
            return reader.read_all()
    except (pa.ArrowException, ValueError) as exc:
        raise ValueError(f"not an Arrow IPC stream ({_size(data)}): {exc}") from None


def encode_dataframe(frame: Any) -> memoryview:
    """An Arrow IPC stream of a pandas DataFrame (its index kept through pandas metadata)."""
    pa = require("pyarrow")
    try:
        table = pa.Table.from_pandas(frame, preserve_index=None)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise ValueError(f"this DataFrame cannot be converted to Arrow: {exc}") from exc
    return encode_arrow(table)


def decode_dataframe(data: Any) -> Any:
    """The pandas DataFrame in the Arrow IPC stream `data`."""
    pa = require("pyarrow")
    require("pandas")
    table = decode_arrow(data)
    try:
        return table.to_pandas()
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise ValueError(f"this Arrow table does not convert to a pandas DataFrame: {exc}") from None


def _size(data: Any) -> str:
    return f"{memoryview(data).nbytes} bytes"


# --- pickle -----------------------------------------------------------------------------------------


def encode_pickle(value: Any) -> bytes:
    """`pickle.dumps(value, protocol=5)`; a value that cannot be pickled raises ValueError."""
    try:
        return pickle.dumps(value, protocol=PICKLE_PROTOCOL)
    except Exception as exc:  # pickling can raise almost anything
        raise ValueError(f"cannot be pickled: {type(exc).__name__}: {exc}") from exc


def decode_pickle(data: Any) -> Any:
    """`pickle.loads(data)`. Executes code named by the data: only for peers you trust."""
    try:
        return pickle.loads(data)
    except Exception as exc:  # unpickling can raise almost anything
        raise ValueError(f"does not unpickle: {type(exc).__name__}: {exc}") from None


# --- decimal ----------------------------------------------------------------------------------------


def encode_decimal(value: Any) -> str:
    """The exact string of a Decimal; also accepts an int, or a str holding a decimal number."""
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(int(value))
    if isinstance(value, str):
        try:
            return str(decimal.Decimal(value))
        except decimal.InvalidOperation:
            raise ValueError(f"{value[:60]!r} is not a decimal number") from None
    raise TypeError(f"expected Decimal, got {type(value).__name__}")


def decode_decimal(text: str) -> decimal.Decimal:
    try:
        return decimal.Decimal(text)
    except decimal.InvalidOperation:
        raise ValueError(f"{text[:60]!r} is not a decimal number") from None
