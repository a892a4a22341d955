"""`satchel.v1`: the Functions service. Generated stubs: `functions_pb2` (messages), `functions_pb2_grpc`."""
