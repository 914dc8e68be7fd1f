"""Shared builders of the FCN model zoo: the VGG16 body, the 32s/16s/8s heads, the reference data layers, the
solver text, and writing a model's files; and the parts the classic ImageNet classifiers of
prototxt/ilsvrc-nets/ share (AlexNet/CaffeNet, VGG, ResNet, BatchNorm + Scale). Each prototxt/<model>/net.py
(and prototxt/ilsvrc-nets/<model>/net.py) loads this file by its path (the zoo is a folder of model
definitions, not a package) and keeps only what is particular to its model.

Conventions, all from the FCN reference (FCN_REFERENCE.md section 1):
- learned layers take LEARN: weights at the base rate with weight decay, biases at twice the rate without;
- upsampling is a Deconvolution with bias_term false and FIXED (lr_mult 0): bilinear weights are set once
  by surgery (interp) and never learned;
- every Crop offset comes from netspec.coord_map.crop, never from a number written here;
- train/val nets start with the reference's Python data layer (module, layer and param_str as the
  reference, directories under DATA); deploy nets start with an Input layer named "input".
"""
import pathlib

from netspec import layers as L, params as P, to_text
from netspec.coord_map import crop

LEARN = [dict(lr_mult=1, decay_mult=1), dict(lr_mult=2, decay_mult=0)]
FIXED = [dict(lr_mult=0)]
# The repository's data/ folder (laid out as the reference's data/), seen from prototxt/<model>/: the
# reference's model folders sat one level higher, beside its data/, and wrote ../data.
DATA = "../../data"
VOC_MEAN = (104.00699, 116.66877, 122.67892)   # BGR, as the reference prototxts write it
DEPLOY_SIZE = (500, 500)                       # an example only: Net.forward reshapes to each image


# ---- layers -----------------------------------------------------------------------------------

def conv_relu(bottom, nout, ks=3, stride=1, pad=1, **kwargs):
    conv = L.Convolution(bottom, kernel_size=ks, stride=stride, num_output=nout, pad=pad, **kwargs)
    return conv, L.ReLU(conv, in_place=True)


def max_pool(bottom, ks=2, stride=2):
    return L.Pooling(bottom, pool=P.Pooling.MAX, kernel_size=ks, stride=stride)


def score(bottom, nout):
    """A 1x1 scoring convolution (score_fr, score_pool4, ...); new ones start at zero."""
    return L.Convolution(bottom, num_output=nout, kernel_size=1, pad=0, param=LEARN)


def upsample(bottom, nout, ks, stride):
    """Fixed upsampling by `stride` with a ks x ks kernel: bilinear weights come from surgery, never learning."""
    return L.Deconvolution(bottom, convolution_param=dict(num_output=nout, kernel_size=ks, stride=stride,
                                                          bias_term=False), param=FIXED)


def softmax_loss(score_top, label, normalize=False):
    """FCN's loss: summed over pixels (normalize false) unless told otherwise; label 255 is ignored."""
    return L.SoftmaxWithLoss(score_top, label, loss_param=dict(normalize=normalize, ignore_label=255))


# ---- bodies and heads -------------------------------------------------------------------------

VGG16_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512))   # block, convs, width


def vgg16(n, bottom, suffix="", dropout=True, conv1_1=None):
    """VGG16 as a fully convolutional net, into NetSpec n: conv1_1 (pad 100, so any input size aligns) to
    pool5, then fc6 (7x7 conv) and fc7 (1x1 conv) with dropout. Layer names get `suffix` (two-stream nets);
    conv1_1 renames the first convolution (a new input, as nyud color-d's conv1_1_bgrd). Returns fc7's top."""
    top = bottom
    for block, convs, width in VGG16_BLOCKS:
        for i in range(1, convs + 1):
            first = block == 1 and i == 1
            conv_name = (conv1_1 or f"conv1_1{suffix}") if first else f"conv{block}_{i}{suffix}"
            n[conv_name], n[f"relu{block}_{i}{suffix}"] = conv_relu(top, width, pad=100 if first else 1,
                                                                    param=LEARN)
            top = n[f"relu{block}_{i}{suffix}"]
        n[f"pool{block}{suffix}"] = top = max_pool(top)
    for name, ks in (("6", 7), ("7", 1)):
        n[f"fc{name}{suffix}"], n[f"relu{name}{suffix}"] = conv_relu(top, 4096, ks=ks, pad=0, param=LEARN)
        top = n[f"relu{name}{suffix}"]
        if dropout:
            n[f"drop{name}{suffix}"] = top = L.Dropout(top, dropout_ratio=0.5, in_place=True)
    return top


def fcn_head(n, fc7, num_classes, stride, data, pool4=None, pool3=None, suffix="", skip_scales=None):
    """FCN-32s/16s/8s scoring into NetSpec n, named as the reference (with `suffix` on every name):
    score_fr on fc7; for 16s and 8s the score is upsampled 2x and fused with a score of pool4 (cropped onto
    it), for 8s once more with pool3; the last upsampling is cropped to `data`. skip_scales=(s4, s3) puts
    fixed Scale layers on pool4 and pool3 first (the at-once model). Returns the final score top."""
    s, k = suffix, num_classes
    n[f"score_fr{s}"] = top = score(fc7, k)
    if stride == 32:
        n[f"upscore{s}"] = top = upsample(top, k, 64, 32)
    else:
        skips = [(4, pool4)] if stride == 16 else [(4, pool4), (3, pool3)]
        for i, (level, pool) in enumerate(skips):
            up = f"upscore2{s}" if level == 4 else f"upscore_pool4{s}"
            n[up] = top = upsample(top, k, 4, 2)
            if skip_scales:
                n[f"scale_pool{level}{s}"] = pool = L.Scale(pool, filler=dict(type="constant",
                                                                              value=skip_scales[i]), param=FIXED)
            n[f"score_pool{level}{s}"] = score(pool, k)
            n[f"score_pool{level}{s}c"] = crop(n[f"score_pool{level}{s}"], top)
            n[f"fuse_pool{level}{s}"] = top = L.Eltwise(top, n[f"score_pool{level}{s}c"], operation=P.Eltwise.SUM)
        n[f"upscore{stride}{s}"] = top = upsample(top, k, 2 * stride, stride)
    n[f"score{s}"] = crop(top, data)
    return n[f"score{s}"]


# ---- data -------------------------------------------------------------------------------------

def python_data(n, tops, module, layer, params):
    """The reference's Python data layer, into n under the names `tops`; params become its param_str."""
    outputs = L.Python(module=module, layer=layer, ntop=len(tops), param_str=str(params))
    for name, top in zip(tops, outputs if len(tops) > 1 else [outputs]):
        n[name] = top


def input_data(n, tops):
    """Deploy input: one Input layer named "input" with a top per (name, channels)."""
    shapes = [dict(dim=[1, channels, *DEPLOY_SIZE]) for _, channels in tops]
    outputs = L.Input(name="input", ntop=len(tops), shape=shapes)
    for (name, _), top in zip(tops, outputs if len(tops) > 1 else [outputs]):
        n[name] = top


def voc_data(n, split):
    """PASCAL VOC: SBD for training (split 'train'), VOC2011 for validation (split 'seg11valid')."""
    if split == "train":
        params = dict(sbdd_dir=f"{DATA}/sbdd/dataset", seed=1337, split=split, mean=VOC_MEAN)
        python_data(n, ["data", "label"], "voc_layers", "SBDDSegDataLayer", params)
    else:
        params = dict(voc_dir=f"{DATA}/pascal/VOC2011", seed=1337, split=split, mean=VOC_MEAN)
        python_data(n, ["data", "label"], "voc_layers", "VOCSegDataLayer", params)


def siftflow_data(n, split):
    """SIFT Flow: image, semantic label (33 classes) and geometric label (3 classes)."""
    params = dict(siftflow_dir=f"{DATA}/sift-flow", split=split, seed=1337)
    python_data(n, ["data", "sem", "geo"], "siftflow_layers", "SIFTFlowSegDataLayer", params)


def nyud_data(n, split, tops, names=None):
    """NYUDv2: the modalities in `tops` (color, depth, hha) and label, as tops `names` (default: the same)."""
    params = dict(nyud_dir=f"{DATA}/nyud", split=split, tops=list(tops), seed=1337)
    python_data(n, list(names or tops), "nyud_layers", "NYUDSegDataLayer", params)


def pascalcontext_data(n, split):
    """PASCAL-Context, 59 classes + background: images from VOC2010, labels from the context folder."""
    params = dict(voc_dir=f"{DATA}/pascal", context_dir=f"{DATA}/pascal-context", split=split, seed=1337)
    python_data(n, ["data", "label"], "pascalcontext_layers", "PASCALContextSegDataLayer", params)


# ---- solver and files -------------------------------------------------------------------------

def solver_text(train_net, test_net, test_iter, base_lr, max_iter, snapshot=None, momentum=0.99, iter_size=1,
                normalized_loss=False):
    """A solver.prototxt in the reference's form: fixed lr, test net built but not run by the solver."""
    lines = [
        f'train_net: "{train_net}"',
        f'test_net: "{test_net}"',
        f"test_iter: {test_iter}",
        "# make test net, but don't invoke it from the solver itself",
        "test_interval: 999999999",
        "display: 20",
        "average_loss: 20",
        'lr_policy: "fixed"',
        "# lr for normalized softmax" if normalized_loss else "# lr for unnormalized softmax",
        f"base_lr: {base_lr:g}",
        "# high momentum" if momentum >= 0.99 else "# standard momentum",
        f"momentum: {momentum:g}",
        "# gradient accumulation" if iter_size > 1 else "# no gradient accumulation",
        f"iter_size: {iter_size}",
        f"max_iter: {max_iter}",
        "weight_decay: 0.0005",
    ]
    if snapshot:
        lines += [f"snapshot: {snapshot}", 'snapshot_prefix: "snapshot/train"']
    lines.append("test_initialization: false")
    return "\n".join(lines) + "\n"


def write_model(out_dir, nets, solver=None):
    """Write {name: NetParameter} as <name>.prototxt and the solver text (if any) as solver.prototxt into out_dir."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    header = "# Generated by net.py in this folder (python net.py); edit that, not this file.\n"
    for name, net in nets.items():
        (out_dir / f"{name}.prototxt").write_text(header + to_text(net))
    if solver is not None:
        (out_dir / "solver.prototxt").write_text(header + solver)
    return sorted([*(f"{name}.prototxt" for name in nets), *(["solver.prototxt"] if solver is not None else [])])


# ---- the classic ImageNet classifiers (prototxt/ilsvrc-nets/) -------------------------------------------------
# Written as their published deploy prototxts write them (the BVLC model zoo, the authors' releases): layer names,
# LRN, pooling and padding, and the param specs and fillers where those files give them. Each deploy net starts
# with an Input layer "data" of the published batch and input size, and ends with a Softmax "prob".

def image_input(n, batch, size):
    """The published deploy input: an Input layer "data" of batch x 3 x size x size."""
    n.data = L.Input(shape=dict(dim=[batch, 3, size, size]))
    return n.data


def lrn(bottom):
    """AlexNet's (and GoogLeNet's) local response normalisation across 5 channels."""
    return L.LRN(bottom, local_size=5, alpha=0.0001, beta=0.75)


def fc_relu_drop(n, bottom, number, nout, **kwargs):
    """fc<number> (InnerProduct), relu<number> and drop<number> (0.5), the last two in place."""
    n[f"fc{number}"] = L.InnerProduct(bottom, num_output=nout, **kwargs)
    n[f"relu{number}"] = L.ReLU(n[f"fc{number}"], in_place=True)
    n[f"drop{number}"] = L.Dropout(n[f"relu{number}"], dropout_ratio=0.5, in_place=True)
    return n[f"drop{number}"]


def classify(n, bottom, name, nout=1000, **kwargs):
    """The 1000-way classifier `name` (InnerProduct) and its Softmax "prob"."""
    n[name] = L.InnerProduct(bottom, num_output=nout, **kwargs)
    n.prob = L.Softmax(n[name])
    return n.prob


# conv1..conv5 of AlexNet: (num_output, kernel, stride, pad, group); LRN after conv1 and conv2, pooling after
# conv1, conv2 and conv5
ALEXNET_CONVS = ((96, 11, 4, 0, 1), (256, 5, 1, 2, 2), (384, 3, 1, 1, 1), (384, 3, 1, 1, 2), (256, 3, 1, 1, 2))


def alexnet(n, bottom, caffenet=False):
    """AlexNet as bvlc_alexnet writes it (LRN, then pooling; LEARN param specs), or CaffeNet as
    bvlc_reference_caffenet (pooling, then LRN; no param specs): two-group conv2, conv4 and conv5, 3x3 stride-2
    max pooling, fc6 and fc7 with dropout, fc8 and prob. Returns prob."""
    spec = {} if caffenet else dict(param=LEARN)
    top = bottom
    for i, (nout, ks, stride, pad, group) in enumerate(ALEXNET_CONVS, 1):
        geometry = dict(num_output=nout, kernel_size=ks, **({"stride": stride} if stride > 1 else {}),
                        **({"pad": pad} if pad else {}), **({"group": group} if group > 1 else {}))
        n[f"conv{i}"] = L.Convolution(top, **spec, **geometry)
        n[f"relu{i}"] = top = L.ReLU(n[f"conv{i}"], in_place=True)
        steps = ("pool", "norm") if caffenet else ("norm", "pool")
        for step in steps if i in (1, 2) else ("pool",) if i == 5 else ():
            n[f"{step}{i}"] = top = lrn(top) if step == "norm" else max_pool(top, ks=3, stride=2)
    top = fc_relu_drop(n, top, 6, 4096, **spec)
    top = fc_relu_drop(n, top, 7, 4096, **spec)
    return classify(n, top, "fc8", **spec)


VGG_CONVS = {16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}      # convolutions per block; widths 64, 128, 256, 512, 512


def vgg(n, bottom, depth):
    """VGG16 or VGG19 as the authors' VGG_ILSVRC_<depth>_layers_deploy.prototxt: 3x3 pad-1 convolutions in five
    blocks, 2x2 max pooling, fc6 and fc7 with dropout, fc8 and prob. Returns prob."""
    top = bottom
    for block, (convs, width) in enumerate(zip(VGG_CONVS[depth], (64, 128, 256, 512, 512)), 1):
        for i in range(1, convs + 1):
            n[f"conv{block}_{i}"] = L.Convolution(top, num_output=width, pad=1, kernel_size=3)
            n[f"relu{block}_{i}"] = top = L.ReLU(n[f"conv{block}_{i}"], in_place=True)
        n[f"pool{block}"] = top = max_pool(top)
    top = fc_relu_drop(n, top, 6, 4096)
    top = fc_relu_drop(n, top, 7, 4096)
    return classify(n, top, "fc8")


def batch_norm(n, top, bn_name, scale_name, bn_kwargs=None, scale_kwargs=None):
    """Caffe's batch normalisation, in place: BatchNorm (the statistics) and then Scale with a bias (the
    learned affine part). Defaults as the ResNet deploy nets write them: global statistics, bias_term."""
    n[bn_name] = L.BatchNorm(top, in_place=True, **(bn_kwargs or dict(use_global_stats=True)))
    n[scale_name] = L.Scale(n[bn_name], in_place=True, **(scale_kwargs or dict(bias_term=True)))
    return n[scale_name]


RESNET_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}    # bottleneck blocks in res2..res5


def resnet_block_names(depth, stage, count):
    """The published names of a stage's blocks: 2a, 2b, 2c ...; ResNet-101/152 number the long stages 3 and 4
    after their first block (3a, 3b1, 3b2 ...)."""
    if depth > 50 and stage in (3, 4):
        return [f"{stage}a"] + [f"{stage}b{i}" for i in range(1, count)]
    return [f"{stage}{chr(ord('a') + i)}" for i in range(count)]


def resnet(n, bottom, depth):
    """ResNet-50/101/152 as KaimingHe/deep-residual-networks' ResNet-<depth>-deploy.prototxt: convolutions
    without bias, each followed by BatchNorm (global statistics) and Scale; bottleneck blocks whose first 1x1
    convolution (and the projection shortcut, branch1) carries the stage's stride; 7x7 average pooling, fc1000
    and prob. Returns prob."""
    def conv_bn(top, name, nout, ks, stride=1, pad=0):
        n[f"{name}"] = L.Convolution(top, num_output=nout, kernel_size=ks, pad=pad, stride=stride,
                                     bias_term=False)
        suffix = name[len("res"):] if name.startswith("res") else f"_{name}"
        return batch_norm(n, n[name], f"bn{suffix}", f"scale{suffix}")

    top = conv_bn(bottom, "conv1", 64, 7, stride=2, pad=3)
    n.conv1_relu = L.ReLU(top, in_place=True)
    n.pool1 = top = max_pool(n.conv1_relu, ks=3, stride=2)
    for stage, count in enumerate(RESNET_BLOCKS[depth], 2):
        width = 64 << (stage - 2)
        for i, block in enumerate(resnet_block_names(depth, stage, count)):
            stride = 2 if i == 0 and stage > 2 else 1
            shortcut = conv_bn(top, f"res{block}_branch1", 4 * width, 1, stride) if i == 0 else top
            branch = top
            for part, nout, ks, part_stride in (("2a", width, 1, stride), ("2b", width, 3, 1),
                                                ("2c", 4 * width, 1, 1)):
                branch = conv_bn(branch, f"res{block}_branch{part}", nout, ks, part_stride, pad=ks // 2)
                if part != "2c":
                    n[f"res{block}_branch{part}_relu"] = branch = L.ReLU(branch, in_place=True)
            n[f"res{block}"] = L.Eltwise(shortcut, branch)
            n[f"res{block}_relu"] = top = L.ReLU(n[f"res{block}"], in_place=True)
    n.pool5 = L.Pooling(top, kernel_size=7, stride=1, pool=P.Pooling.AVE)
    return classify(n, n.pool5, "fc1000")
