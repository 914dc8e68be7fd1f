"""The committed caffe_pb2.py is what caffe.proto generates, and the schema keeps Caffe's numbers."""
import pytest

from netspec import build_proto, caffe_pb2 as pb


def test_committed_caffe_pb2_is_current():
    with open(build_proto.GENERATED, "rb") as f:
        committed = f.read()
    assert build_proto.generate_text() == committed, (
        "netspec/caffe_pb2.py is stale: run `python -m netspec.build_proto` and commit the result")


# A sample of (message, field, number, default) from BVLC caffe.proto: the fields real files
# depend on. A slip here silently misreads every .caffemodel, so they are pinned.
PINNED = [
    (pb.BlobProto, "shape", 7, None), (pb.BlobProto, "data", 5, None), (pb.BlobProto, "diff", 6, None),
    (pb.BlobProto, "double_data", 8, None), (pb.BlobProto, "num", 1, 0), (pb.BlobProto, "width", 4, 0),
    (pb.NetParameter, "layer", 100, None), (pb.NetParameter, "layers", 2, None),
    (pb.NetParameter, "input_dim", 4, None), (pb.NetParameter, "input_shape", 8, None),
    (pb.LayerParameter, "phase", 10, None), (pb.LayerParameter, "propagate_down", 11, None),
    (pb.LayerParameter, "loss_param", 101, None), (pb.LayerParameter, "convolution_param", 106, None),
    (pb.LayerParameter, "crop_param", 144, None), (pb.LayerParameter, "input_param", 143, None),
    (pb.LayerParameter, "python_param", 130, None), (pb.LayerParameter, "scale_param", 142, None),
    (pb.LayerParameter, "clip_param", 148, None), (pb.LayerParameter, "swish_param", 147, None),
    (pb.V1LayerParameter, "blobs_lr", 7, None), (pb.V1LayerParameter, "weight_decay", 8, None),
    (pb.V1LayerParameter, "include", 32, None), (pb.V1LayerParameter, "layer", 1, None),
    (pb.V1LayerParameter, "param", 1001, None), (pb.V1LayerParameter, "loss_param", 42, None),
    (pb.SolverParameter, "type", 40, "SGD"), (pb.SolverParameter, "iter_size", 36, 1),
    (pb.SolverParameter, "snapshot_format", 37, pb.SolverParameter.BINARYPROTO),
    (pb.SolverParameter, "solver_mode", 17, pb.SolverParameter.GPU),
    (pb.SolverParameter, "random_seed", 20, -1), (pb.SolverParameter, "clip_gradients", 35, -1),
    (pb.SolverParameter, "layer_wise_reduce", 41, True), (pb.SolverParameter, "weights", 42, None),
    (pb.SolverParameter, "test_initialization", 32, True), (pb.SolverParameter, "average_loss", 33, 1),
    (pb.SolverState, "current_step", 4, 0), (pb.SolverState, "history", 3, None),
    (pb.ParamSpec, "lr_mult", 3, 1.0), (pb.ParamSpec, "decay_mult", 4, 1.0),
    (pb.LossParameter, "normalization", 3, pb.LossParameter.VALID), (pb.LossParameter, "normalize", 2, False),
    (pb.ConvolutionParameter, "dilation", 18, None), (pb.ConvolutionParameter, "group", 5, 1),
    (pb.PoolingParameter, "pad", 4, 0), (pb.PoolingParameter, "round_mode", 13, pb.PoolingParameter.CEIL),
    (pb.CropParameter, "axis", 1, 2), (pb.FillerParameter, "type", 1, "constant"),
    (pb.FillerParameter, "std", 6, 1.0), (pb.FillerParameter, "sparse", 7, -1),
    (pb.LRNParameter, "k", 5, 1.0), (pb.NetState, "phase", 1, pb.TEST),
    (pb.DataParameter, "prefetch", 10, 4), (pb.V0LayerParameter, "hdf5_output_param", 1001, None),
]


@pytest.mark.parametrize("message, name, number, default", PINNED,
                         ids=[f"{m.__name__}.{n}" for m, n, _, _ in PINNED])
def test_field_numbers_and_defaults(message, name, number, default):
    field = message.DESCRIPTOR.fields_by_name[name]
    assert field.number == number
    if default is not None:
        assert getattr(message(), name) == pytest.approx(default)


def test_enums():
    assert pb.TRAIN == 0 and pb.TEST == 1
    assert pb.V1LayerParameter.DECONVOLUTION == 39 and pb.V1LayerParameter.SOFTMAX_LOSS == 21
    assert pb.FillerParameter.AVERAGE == 2
    assert [pb.LossParameter.FULL, pb.LossParameter.BATCH_SIZE, pb.LossParameter.NONE] == [0, 2, 3]
    assert pb.SolverParameter.HDF5 == 0 and pb.SolverParameter.ADAM == 5
    assert pb.EltwiseParameter.SUM == 1 and pb.HingeLossParameter.L1 == 1
