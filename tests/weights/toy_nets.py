"""Small nets for the surgery tests: a classifier and its FCN twin, and two FCN stages.

The stage nets mimic FCN-32s and FCN-16s at a smaller scale: a trunk of total stride 4 ending in score_fr;
"toy-4s" upsamples it 4x in one Deconvolution (k8 s4, like 32s's k64 s32); "toy-2s" upsamples 2x, adds a
1x1 score of pool1 (stride 2) and upsamples 2x again (like 16s's upscore2 + score_pool4 + upscore16).
Crop offsets were derived as coord_map does: 7 for toy-4s; 1 for score_pool1c and 8 for the 2s score.
"""
CONV = ('param {{ lr_mult: 1 decay_mult: 1 }} param {{ lr_mult: 2 decay_mult: 0 }} convolution_param {{ '
        'num_output: {n} {kernel} pad: {p} weight_filler {{ type: "gaussian" std: 0.3 }} '
        'bias_filler {{ type: "gaussian" std: 0.1 }} }}')
IP = ('param {{ lr_mult: 1 }} param {{ lr_mult: 2 }} inner_product_param {{ num_output: {n} '
      'weight_filler {{ type: "gaussian" std: 0.2 }} bias_filler {{ type: "gaussian" std: 0.1 }} }}')


def data(h, w, c=3):
    return (f'layer {{ name: "data" type: "Input" top: "data" '
            f'input_param {{ shape {{ dim: 1 dim: {c} dim: {h} dim: {w} }} }} }}\n')


def conv(name, bottom, n, k, p=0):
    kernel = f"kernel_size: {k}" if isinstance(k, int) else f"kernel_h: {k[0]} kernel_w: {k[1]}"
    return (f'layer {{ name: "{name}" type: "Convolution" bottom: "{bottom}" top: "{name}" '
            f'{CONV.format(n=n, kernel=kernel, p=p)} }}\n')


def ip(name, bottom, n):
    return f'layer {{ name: "{name}" type: "InnerProduct" bottom: "{bottom}" top: "{name}" {IP.format(n=n)} }}\n'


def relu(name):
    return f'layer {{ name: "relu_{name}" type: "ReLU" bottom: "{name}" top: "{name}" }}\n'


def pool(name, bottom):
    return (f'layer {{ name: "{name}" type: "Pooling" bottom: "{bottom}" top: "{name}" '
            f'pooling_param {{ pool: MAX kernel_size: 2 stride: 2 }} }}\n')


def deconv(name, bottom, k, s, n=3):
    return (f'layer {{ name: "{name}" type: "Deconvolution" bottom: "{bottom}" top: "{name}" param {{ lr_mult: 0 }} '
            f'convolution_param {{ num_output: {n} bias_term: false kernel_size: {k} stride: {s} }} }}\n')


def crop(name, bottom, ref, offset):
    return (f'layer {{ name: "{name}" type: "Crop" bottom: "{bottom}" bottom: "{ref}" top: "{name}" '
            f'crop_param {{ axis: 2 offset: {offset} }} }}\n')


# ---- classifier and FCN (convolutionalize) ----------------------------------------------------
# The trunk has no padding, so a patch sees exactly what the same window of a larger image sees.
PATCH = (12, 10)            # classifier input; pool1 gives 5 x 4, fc6's input is 5 x 5 x 4
STRIDE = 2                  # of the trunk (one 2x2 pool)


def trunk(h, w):
    return data(h, w) + conv("conv1", "data", 5, 3) + relu("conv1") + pool("pool1", "conv1")


CLASSIFIER = ('name: "toy-classifier"\n' + trunk(*PATCH) + ip("fc6", "pool1", 16) + relu("fc6")
              + ip("fc7", "fc6", 12) + relu("fc7") + ip("fc8", "fc7", 4))


def fcn(h, w, with_fc8=True):
    net = ('name: "toy-fcn"\n' + trunk(h, w) + conv("fc6", "pool1", 16, (5, 4)) + relu("fc6")
           + conv("fc7", "fc6", 12, 1) + relu("fc7"))
    return net + (conv("fc8", "fc7", 4, 1) if with_fc8 else conv("score_fr", "fc7", 3, 1))


# ---- FCN stages (handoff) ---------------------------------------------------------------------
STAGE_TRUNK = (data(16, 16) + conv("conv1", "data", 4, 3, 10) + relu("conv1") + pool("pool1", "conv1")
               + conv("conv2", "pool1", 6, 3, 1) + relu("conv2") + pool("pool2", "conv2")
               + conv("fc6", "pool2", 8, 3) + relu("fc6") + conv("score_fr", "fc6", 3, 1))
NET_4S = 'name: "toy-4s"\n' + STAGE_TRUNK + deconv("upscore", "score_fr", 8, 4) + crop("score", "upscore", "data", 7)
NET_2S = ('name: "toy-2s"\n' + STAGE_TRUNK + deconv("upscore2", "score_fr", 4, 2) + conv("score_pool1", "pool1", 3, 1)
          + crop("score_pool1c", "score_pool1", "upscore2", 1)
          + 'layer { name: "fuse_pool1" type: "Eltwise" bottom: "upscore2" bottom: "score_pool1c" '
            'top: "fuse_pool1" eltwise_param { operation: SUM } }\n'
          + deconv("upscore4", "fuse_pool1", 4, 2) + crop("score", "upscore4", "data", 8))
