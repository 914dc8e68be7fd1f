"""Regenerate netspec/caffe_pb2.py from netspec/caffe.proto.

    python -m netspec.build_proto

caffe_pb2.py is committed so that importing netspec needs no compiler; the test
tests/netspec/test_proto_current.py calls `generate` into a temporary folder and
checks that the committed file is what the schema produces.
"""
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO = os.path.join(HERE, "caffe.proto")
GENERATED = os.path.join(HERE, "caffe_pb2.py")


def generate(out_dir, proto=PROTO):
    """Compile `proto` with grpc_tools' protoc into `out_dir`; return the caffe_pb2.py path.

    The proto's own folder is the include root, so the descriptor is named
    "caffe.proto" wherever the source lives: the output does not depend on paths.
    """
    from grpc_tools import protoc

    src_dir, name = os.path.split(os.path.abspath(proto))
    status = protoc.main(["protoc", f"-I{src_dir}", f"--python_out={out_dir}", name])
    if status != 0:
        raise RuntimeError(f"protoc failed on {proto} (exit status {status}); see its message above")
    return os.path.join(out_dir, os.path.splitext(name)[0] + "_pb2.py")


def generate_text(proto=PROTO):
    """Return the text protoc generates for `proto`, compiled in a throwaway folder."""
    with tempfile.TemporaryDirectory(prefix="caffe_proto_") as tmp:
        with open(generate(tmp, proto), "rb") as f:
            return f.read()


def main():
    # Generate beside, then move: a failed compile never leaves a half-written module.
    with tempfile.TemporaryDirectory(prefix="caffe_proto_", dir=HERE) as tmp:
        shutil.move(generate(tmp), GENERATED)
    print(f"wrote {GENERATED}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
