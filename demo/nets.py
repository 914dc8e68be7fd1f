"""The demo's nets, written with NetSpec as FCN's net.py files are: a small VGG-style classifier (the stand-in for
ILSVRC's VGG16) and FCN-32s, FCN-16s and FCN-8s on its body, plus FCN-32s-fixed (only score_fr learns).

The body is VGG16 scaled down: five blocks of one 3x3 convolution + ReLU + 2x2 max pooling (ceil rounding), so
the coarsest stride is 32 as in VGG; fc6 is a 3x3 "fully connected" layer over pool5 (a 3x3 grid on the 72x72
classification crops), fc7 is 1x1. Layer names are VGG16's, so FCN's recipe (convolutionalize fc6/fc7, drop fc8,
add score_fr and the skips) carries over name for name. conv1_1 is padded by 33 in the FCN (FCN's pad 100 for this
net's size: enough that fc6 sees the whole image), and by 1 in the classifier.

Input normalisation lives in the net (a Power layer `data_norm`, (x - 120) / 64): the data layers give raw
0-255 BGR (the HDF5 crops are stored as uint8, the segmentation layer subtracts a zero mean), so the classifier
and every FCN see the same numbers. Crop offsets come from the graph (netspec.coord_map.crop), never by hand.
"""
from netspec import caffe_pb2
from netspec.coord_map import crop
from netspec.spec import NetSpec, layers as L, params as P

LEARN = [dict(lr_mult=1, decay_mult=1), dict(lr_mult=2, decay_mult=0)]   # FCN's: biases at twice the rate, no decay
FROZEN = [dict(lr_mult=0, decay_mult=0), dict(lr_mult=0, decay_mult=0)]
MSRA = dict(type="msra")
NORM = dict(scale=1 / 64, shift=-120 / 64)                              # (x - 120) / 64
STAGES = ("32s-fixed", "32s", "16s", "8s")


def _body(n, bottom, widths, pad, param, filler=None):
    """conv{i}_1 + relu{i}_1 + pool{i} for each width; returns pool5 (or the last pool)."""
    extra = dict(weight_filler=filler) if filler else {}
    for i, width in enumerate(widths, 1):
        conv = L.Convolution(bottom, kernel_size=3, num_output=width, pad=pad if i == 1 else 1, param=param, **extra)
        setattr(n, f"conv{i}_1", conv)
        setattr(n, f"relu{i}_1", L.ReLU(conv, in_place=True))
        bottom = L.Pooling(conv, pool=P.Pooling.MAX, kernel_size=2, stride=2)
        setattr(n, f"pool{i}", bottom)
    return bottom


def classifier(source, batch_size, widths, fc, num_classes, shuffle=True):
    """The classifier on HDF5 crops (datasets 'data': N x 3 x H x W uint8 BGR, 'label': N class indices).

    fc6 and fc7 are InnerProduct layers, as VGG16's; convolutionalizing them gives the FCN's fc6 (a convolution
    whose kernel is pool5's size, 3 x 3 for 72 x 72 crops) and fc7 (1 x 1). The FCN drops fc8, as FCN drops VGG's.
    Unlike VGG there is no dropout here: in a short run it keeps the classifier at chance for hundreds of
    iterations (held-out accuracy 0.46 instead of 0.60 after 600 iterations on 3000 crops); the FCNs keep
    drop6/drop7.
    """
    n = NetSpec()
    n.data, n.label = L.HDF5Data(source=source, batch_size=batch_size, shuffle=shuffle, ntop=2)
    n.data_norm = L.Power(n.data, **NORM)
    pool = _body(n, n.data_norm, widths, pad=1, param=LEARN, filler=MSRA)
    n.fc6 = L.InnerProduct(pool, num_output=fc, param=LEARN, weight_filler=MSRA)
    n.relu6 = L.ReLU(n.fc6, in_place=True)
    n.fc7 = L.InnerProduct(n.relu6, num_output=fc, param=LEARN, weight_filler=MSRA)
    n.relu7 = L.ReLU(n.fc7, in_place=True)
    n.fc8 = L.InnerProduct(n.relu7, num_output=num_classes, param=LEARN, weight_filler=MSRA)
    n.loss = L.SoftmaxWithLoss(n.fc8, n.label)
    n.accuracy = L.Accuracy(n.fc8, n.label)
    proto = n.to_proto()
    proto.name = "demo-classifier"
    return proto


def _upscore(bottom, num_classes, factor):
    """FCN's fixed bilinear upsampling: Deconvolution kernel 2*factor, stride factor, no bias, lr_mult 0
    (the weights are set by weights.surgery.interp, as FCN's solve.py does)."""
    return L.Deconvolution(bottom, convolution_param=dict(num_output=num_classes, kernel_size=2 * factor,
                                                          stride=factor, bias_term=False),
                           param=[dict(lr_mult=0)])


def _score(bottom, num_classes, param=LEARN):
    """A new 1x1 score layer: zero weights and bias (Caffe's default filler), as FCN's."""
    return L.Convolution(bottom, kernel_size=1, num_output=num_classes, param=param)


def fcn(stage, data_param, widths, fc, fc_kernel, num_classes, pad=33, deploy_size=None, sample=None):
    """FCN-32s-fixed, FCN-32s, FCN-16s or FCN-8s (stage one of STAGES) on the demo body.

    data_param: the SegFolderData param_str dict (image_dir, label_dir, split, batch_size, ...); or None for a
    deploy net: an Input "data" of 1 x 3 x deploy_size x deploy_size (BGR 0-255), no loss.
    sample: the loss sampling layer's param_str dict (keep, cell, seed; layers/data/loss_sampling.py), which
    then sits between the label and the loss; None for none.
    """
    if stage not in STAGES:
        raise ValueError(f"demo.nets.fcn: stage must be one of {', '.join(STAGES)}, got {stage!r}")
    body_param = FROZEN if stage == "32s-fixed" else LEARN
    n = NetSpec()
    if data_param is None:
        n.data = L.Input(shape=dict(dim=[1, 3, deploy_size, deploy_size]))
    else:
        n.data, n.label = L.SegFolderData(ntop=2, python_param=dict(param_str=repr(data_param)))
    n.data_norm = L.Power(n.data, **NORM)
    pool = _body(n, n.data_norm, widths, pad=pad, param=body_param)
    n.fc6 = L.Convolution(pool, kernel_size=fc_kernel, num_output=fc, param=body_param)
    n.relu6 = L.ReLU(n.fc6, in_place=True)
    n.drop6 = L.Dropout(n.relu6, dropout_ratio=0.5, in_place=True)
    n.fc7 = L.Convolution(n.drop6, kernel_size=1, num_output=fc, param=body_param)
    n.relu7 = L.ReLU(n.fc7, in_place=True)
    n.drop7 = L.Dropout(n.relu7, dropout_ratio=0.5, in_place=True)
    n.score_fr = _score(n.drop7, num_classes)
    if stage in ("32s-fixed", "32s"):
        n.upscore = _upscore(n.score_fr, num_classes, 32)
        n.score = crop(n.upscore, n.data)
    elif stage == "16s":
        n.upscore2 = _upscore(n.score_fr, num_classes, 2)
        n.score_pool4 = _score(n.pool4, num_classes)
        n.score_pool4c = crop(n.score_pool4, n.upscore2)
        n.fuse_pool4 = L.Eltwise(n.upscore2, n.score_pool4c, operation=P.Eltwise.SUM)
        n.upscore16 = _upscore(n.fuse_pool4, num_classes, 16)
        n.score = crop(n.upscore16, n.data)
    else:
        n.upscore2 = _upscore(n.score_fr, num_classes, 2)
        n.score_pool4 = _score(n.pool4, num_classes)
        n.score_pool4c = crop(n.score_pool4, n.upscore2)
        n.fuse_pool4 = L.Eltwise(n.upscore2, n.score_pool4c, operation=P.Eltwise.SUM)
        n.upscore_pool4 = _upscore(n.fuse_pool4, num_classes, 2)
        n.score_pool3 = _score(n.pool3, num_classes)
        n.score_pool3c = crop(n.score_pool3, n.upscore_pool4)
        n.fuse_pool3 = L.Eltwise(n.upscore_pool4, n.score_pool3c, operation=P.Eltwise.SUM)
        n.upscore8 = _upscore(n.fuse_pool3, num_classes, 8)
        n.score = crop(n.upscore8, n.data)
    label = n.label if data_param is not None else None
    if data_param is not None and sample is not None:
        n.label_sampled = L.Python(n.label, module="loss_sampling", layer="LossSamplingLayer",
                                   param_str=repr(sample))
        label = n.label_sampled
    if data_param is not None:
        n.loss = L.SoftmaxWithLoss(n.score, label, loss_param=dict(ignore_label=255, normalization=P.Loss.VALID))
    proto = n.to_proto()
    proto.name = f"demo-fcn{stage}"
    return proto


def upscore_layers(stage):
    """The Deconvolution layers of a stage, which weights.surgery.interp sets to bilinear upsampling."""
    return {"32s-fixed": ["upscore"], "32s": ["upscore"], "16s": ["upscore2", "upscore16"],
            "8s": ["upscore2", "upscore_pool4", "upscore8"]}[stage]


def solver(train_net, test_net, test_iter, max_iter, snapshot_prefix, kind="SGD", base_lr=0.01, momentum=0.9,
           weight_decay=5e-4, display=50, random_seed=None, stepsize=0):
    """A SolverParameter: a fixed rate, or with stepsize > 0 Caffe's "step" policy (the rate falls tenfold every
    stepsize iterations); no periodic tests (the demo scores each stage itself, as FCN's solve.py)."""
    s = caffe_pb2.SolverParameter()
    s.train_net = train_net
    s.test_net.append(test_net)
    s.test_iter.append(test_iter)
    s.test_interval = max_iter + 1
    s.test_initialization = False
    s.type = kind
    s.base_lr = base_lr
    if stepsize:
        s.lr_policy = "step"
        s.gamma = 0.1
        s.stepsize = stepsize
    else:
        s.lr_policy = "fixed"
    s.momentum = momentum
    if kind == "Adam":
        s.momentum2 = 0.999
    s.weight_decay = weight_decay
    s.max_iter = max_iter
    s.display = display
    s.snapshot = 0
    s.snapshot_prefix = snapshot_prefix
    if random_seed is not None:
        s.random_seed = random_seed
    return s
