"""Protocol buffers of the `satchel` proto package (mirrors the .proto import paths)."""
