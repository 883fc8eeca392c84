"""The generated gRPC modules of serving/protos/tfrec/search.proto: they are exactly what grpcio-tools makes of the
.proto today, they describe the same messages, and a changed .proto is detected and regenerated."""

import ast
import re
import shutil
from pathlib import Path

from google.protobuf import descriptor_pb2

from tfrec.server.protos import _generate, search_pb2, search_pb2_grpc


def test_generated_modules_match_the_proto():
    fresh = _generate.generated_sources()
    for name, text in fresh.items():
        assert (_generate.HERE / name).read_text(encoding="utf-8") == text, f"{name} is stale"
    assert _generate.stale_modules() == []
    described = descriptor_pb2.FileDescriptorProto()
    search_pb2.DESCRIPTOR.CopyToProto(described)
    assert described.package == "tfrec.search.v1"
    assert [m.name for m in described.service[0].method] == ["Search", "Recommend", "LogEvents"]
    assert search_pb2.SearchRequest.DESCRIPTOR.fields_by_name["k"].has_presence  # unset k means "the default"
    assert hasattr(search_pb2_grpc, "SearchServiceStub")
    assert hasattr(search_pb2_grpc, "add_SearchServiceServicer_to_server")


def _serialized_descriptor(module: Path) -> descriptor_pb2.FileDescriptorProto:
    """The FileDescriptorProto a generated module registers (read from its source, not imported)."""
    text = module.read_text(encoding="utf-8")
    literal = re.search(r"AddSerializedFile\((b'.*?')\)", text, re.S).group(1)
    return descriptor_pb2.FileDescriptorProto.FromString(ast.literal_eval(literal))


def test_a_changed_proto_is_detected_and_regenerated(tmp_path):
    root, out = tmp_path / "protos", tmp_path / "out"
    shutil.copytree(_generate.SOURCE_ROOT, root)
    out.mkdir()
    assert sorted(_generate.stale_modules(out, root)) == ["search_pb2.py", "search_pb2_grpc.py"]  # missing
    _generate.ensure_generated(out, root)
    assert _generate.stale_modules(out, root) == []
    proto = root / "tfrec" / "search.proto"
    proto.write_text(proto.read_text().replace("string arm = 9;", "string arm = 9;\n  string campaign = 11;"))
    assert sorted(_generate.stale_modules(out, root)) == ["search_pb2.py", "search_pb2_grpc.py"]
    _generate.ensure_generated(out, root)
    assert _generate.stale_modules(out, root) == []
    event = next(m for m in _serialized_descriptor(out / "search_pb2.py").message_type if m.name == "Event")
    assert "campaign" in [f.name for f in event.field]
    assert "from tfrec.server.protos import search_pb2" in (out / "search_pb2_grpc.py").read_text()


def test_an_install_without_sources_needs_the_generated_modules(tmp_path):
    import pytest

    with pytest.raises(_generate.ProtoGenerationError, match="lacks the generated modules"):
        _generate.ensure_generated(Path(tmp_path), Path(tmp_path) / "no-sources")
