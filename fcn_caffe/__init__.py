"""pycaffe, on this engine: `import fcn_caffe as caffe` gives Caffe's Python interface, and after
`fcn_caffe.install()` (or under `python -m fcn_caffe SCRIPT`) a plain `import caffe` gives it in every module.

    import fcn_caffe as caffe
    caffe.set_mode_cpu()
    net = caffe.Net("deploy.prototxt", caffe.TEST, weights="fcn8s.caffemodel")
    net.blobs["data"].data[...] = image                # the live array: writes feed the net
    score = net.forward()["score"]
    solver = caffe.SGDSolver("solver.prototxt")
    solver.step(4000)

The names are pycaffe's (python/caffe/__init__.py); what behaves differently, and why, is listed in README.md.
"""
from fcn_caffe._caffe import (Layer, __version__, has_nccl, init_log, layer_type_list, log, set_device,  # noqa: F401
                              set_mode_cpu, set_mode_gpu, set_multiprocess, set_random_seed, set_solver_count,
                              set_solver_rank, solver_count, solver_rank)
from fcn_caffe.pycaffe import (NCCL, AdaDeltaSolver, AdaGradSolver, AdamSolver, NesterovSolver, Net,  # noqa: F401
                               RMSPropSolver, SGDSolver, Timer, get_solver)
from fcn_caffe.proto.caffe_pb2 import TEST, TRAIN  # noqa: F401
from fcn_caffe.classifier import Classifier  # noqa: F401
from fcn_caffe.detector import Detector  # noqa: F401
from fcn_caffe import io, proto  # noqa: F401
from fcn_caffe.net_spec import NetSpec, layers, params, to_proto  # noqa: F401
from fcn_caffe.caffe_alias import install, uninstall  # noqa: F401
