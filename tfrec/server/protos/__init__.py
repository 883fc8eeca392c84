"""tfrec's own gRPC messages and stubs (`search_pb2`, `search_pb2_grpc`), generated from serving/protos/ by grpcio-tools
(`_generate`): at build time by setup.py, and on first import in a source checkout when missing or stale."""

from tfrec.server.protos._generate import ensure_generated

ensure_generated()
