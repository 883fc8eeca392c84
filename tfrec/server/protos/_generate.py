"""Generates the Python modules of tfrec's own gRPC protos (serving/protos/) with grpcio-tools.

Why at build time and at import: a wheel built by setup.py ships the generated `*_pb2.py` / `*_pb2_grpc.py`, and a
source checkout (`pip install -e .`, CI) regenerates them on first import whenever they are missing or were made from
an older .proto, so the checked-in .proto is the single source and the generated code never drifts from it.

This module imports nothing from tfrec (setup.py loads it by path before tfrec is importable). protoc writes
`from tfrec import search_pb2` for a file at `tfrec/search.proto`; the modules live in `tfrec.server.protos`, so that
one import line is rewritten to the package's.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

PACKAGE = "tfrec.server.protos"
PROTOS = ("tfrec/search.proto",)  # relative to the proto root
HERE = Path(__file__).resolve().parent
SOURCE_ROOT = HERE.parents[2] / "serving" / "protos"  # present in a source checkout only
HASH_MARK = "# tfrec-proto-sha256: "


class ProtoGenerationError(RuntimeError):
    """protoc failed, or the generated modules are missing and cannot be made."""


def proto_sha256(proto_root: Path, proto: str) -> str:
    return hashlib.sha256((proto_root / proto).read_bytes()).hexdigest()


def module_names(proto: str) -> List[str]:
    stem = Path(proto).stem
    return [f"{stem}_pb2.py", f"{stem}_pb2_grpc.py"]


def recorded_sha256(path: Path) -> Optional[str]:
    """The .proto hash a generated module records, or None (absent or not ours)."""
    try:
        with open(path, encoding="utf-8") as f:
            for line in (f.readline() for _ in range(5)):
                if line.startswith(HASH_MARK):
                    return line[len(HASH_MARK):].strip()
    except OSError:
        return None
    return None


def generated_sources(proto_root: Path = SOURCE_ROOT) -> Dict[str, str]:
    """{module file name: its text} for every proto, generated into a temporary directory (nothing is installed)."""
    spec = importlib.util.find_spec("grpc_tools")
    if spec is None or not spec.submodule_search_locations:
        raise ProtoGenerationError("generating tfrec's gRPC modules needs grpcio-tools: pip install grpcio-tools")
    include = os.path.join(list(spec.submodule_search_locations)[0], "_proto")
    out: Dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="tfrec-protoc-") as tmp:
        for proto in PROTOS:
            # protoc runs in its own process: its C++ protobuf in a process that already loaded TensorFlow crashes.
            args = [sys.executable, "-m", "grpc_tools.protoc", f"-I{proto_root}", f"-I{include}", f"--python_out={tmp}",
                    f"--grpc_python_out={tmp}", str(proto_root / proto)]
            done = subprocess.run(args, capture_output=True, text=True)
            if done.returncode != 0:
                raise ProtoGenerationError(f"protoc failed on {proto_root / proto}: {done.stderr.strip()}")
            digest = proto_sha256(proto_root, proto)
            source_package = str(Path(proto).parent).replace("/", ".")
            for name in module_names(proto):
                text = (Path(tmp) / Path(proto).parent / name).read_text(encoding="utf-8")
                text = re.sub(rf"^from {re.escape(source_package)} import ", f"from {PACKAGE} import ", text,
                              flags=re.M)
                header = f"{HASH_MARK}{digest}\n# Generated from serving/protos/{proto} by grpcio-tools; do not edit.\n"
                out[name] = header + text
    return out


def write_generated(out_dir: Path = HERE, proto_root: Path = SOURCE_ROOT) -> List[Path]:
    """(Re)writes the generated modules into `out_dir`, each atomically (a reader never sees half a file)."""
    written = []
    for name, text in generated_sources(proto_root).items():
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=out_dir)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, out_dir / name)
        written.append(out_dir / name)
    return written


def stale_modules(out_dir: Path = HERE, proto_root: Path = SOURCE_ROOT) -> List[str]:
    """Generated modules missing from `out_dir` or made from another version of their .proto."""
    stale = []
    for proto in PROTOS:
        digest = proto_sha256(proto_root, proto)
        stale += [n for n in module_names(proto) if recorded_sha256(out_dir / n) != digest]
    return stale


def ensure_generated(out_dir: Path = HERE, proto_root: Path = SOURCE_ROOT) -> None:
    """Regenerates stale modules when the .proto sources are here (a source checkout); otherwise checks the
    installed ones exist."""
    if all((proto_root / p).is_file() for p in PROTOS):
        if stale_modules(out_dir, proto_root):
            try:
                write_generated(out_dir, proto_root)
            except OSError as exc:  # a read-only install: keep what is there if anything is
                missing = [n for p in PROTOS for n in module_names(p) if not (out_dir / n).is_file()]
                if missing:
                    raise ProtoGenerationError(f"cannot write the generated modules {missing} into {out_dir}: {exc}")
                print(f"warning: {out_dir} holds gRPC modules older than their .proto and cannot be rewritten: {exc}",
                      file=sys.stderr)
        return
    missing = [n for p in PROTOS for n in module_names(p) if not (out_dir / n).is_file()]
    if missing:
        raise ProtoGenerationError(
            f"{out_dir} lacks the generated modules {missing} and the .proto sources are not at {proto_root}: "
            "reinstall tfrec (setup.py generates them) or run from a source checkout")


if __name__ == "__main__":  # python tfrec/server/protos/_generate.py: regenerate in place
    for path in write_generated():
        print(f"wrote {path}")
