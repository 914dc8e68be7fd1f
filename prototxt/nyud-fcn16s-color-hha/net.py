"""FCN-16s on NYUDv2 color + HHA, late fusion (40 classes): nyud-fcn32s-color-hha plus a pool4 skip.
Each stream scores its own pool4 (score_pool4color, score_pool4hha); the two are averaged like the fc
scores (score_pool4_fused), cropped onto the 2x-upsampled fused score and added, then upsampled 16x.

The reference has no such net (the paper reports one): this design is ours. Initialised from a trained
nyud-fcn32s-color-hha (every layer copies by name; the pool4 scores start at zero). Its rate is 1e-14, the
reference's 100x step down from the 32s stage it starts from (1e-12).

Run `python net.py` (from anywhere) to rewrite the prototxts beside it.
"""
import importlib.util
import pathlib
import sys

from netspec import NetSpec, layers as L, params as P
from netspec.coord_map import crop

HERE = pathlib.Path(__file__).resolve().parent
# The shared builders live in prototxt/zoo.py; the zoo is a folder of models, not a package, so load it by path.
_spec = importlib.util.spec_from_file_location("zoo", HERE.parent / "zoo.py")
zoo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(zoo)


def fcn(split):
    """The net for a data split ('trainval', 'test'), or the deploy net (split None)."""
    n = NetSpec()
    if split is None:
        zoo.input_data(n, [("color", 3), ("hha", 3)])
    else:
        zoo.nyud_data(n, split, ["color", "hha", "label"])
    for modality in ("color", "hha"):
        fc7 = zoo.vgg16(n, n[modality], suffix=modality, dropout=split is not None)
        n["score_fr" + modality] = zoo.score(fc7, 40)
    n.score_fused = L.Eltwise(n.score_frcolor, n.score_frhha, operation=P.Eltwise.SUM, coeff=[0.5, 0.5])
    n.upscore2 = zoo.upsample(n.score_fused, 40, 4, 2)
    n.score_pool4color = zoo.score(n.pool4color, 40)
    n.score_pool4hha = zoo.score(n.pool4hha, 40)
    n.score_pool4_fused = L.Eltwise(n.score_pool4color, n.score_pool4hha, operation=P.Eltwise.SUM,
                                    coeff=[0.5, 0.5])
    n.score_pool4c = crop(n.score_pool4_fused, n.upscore2)
    n.fuse_pool4 = L.Eltwise(n.upscore2, n.score_pool4c, operation=P.Eltwise.SUM)
    n.upscore16 = zoo.upsample(n.fuse_pool4, 40, 32, 16)
    n.score = crop(n.upscore16, n.color)
    if split is not None:
        n.loss = zoo.softmax_loss(n.score, n.label)
    return n.to_proto()


SOLVER = zoo.solver_text("trainval.prototxt", "test.prototxt",
                         test_iter=654, base_lr=1e-14, max_iter=300000, snapshot=2000)


def make_net(out_dir=HERE):
    """Write this model's nets and solver.prototxt into out_dir (default: beside this file)."""
    nets = {"trainval": fcn("trainval"), "test": fcn("test"), "deploy": fcn(None)}
    return zoo.write_model(out_dir, nets, SOLVER)


if __name__ == "__main__":
    make_net(*sys.argv[1:2])
