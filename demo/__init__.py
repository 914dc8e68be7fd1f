"""The FCN paper's staged pipeline end to end on data anyone has: `python -m demo`.

    synthetic.py   the dataset: shapes of six classes with their own textures, random colours, occlusion and
                   clutter, exact labels with VOC's 255 band, in VOC's folder layout; classification crops (HDF5)
    nets.py        the nets, written with NetSpec: a small VGG-style classifier and FCN-32s(-fixed)/16s/8s on it
    pipeline.py    the stages: data, pretraining (`python -m solver`), convolutionalize (weights.surgery), the four
                   FCN stages (solver API + weights.surgery.handoff), scores (solver.score), tables and figures

The nets of the default configuration live in the model zoo, prototxt/demo/demo-*/, as written by
`python -m demo --write-nets prototxt/demo` (data paths under demo_out/), for
`python -m solver prototxt/demo/demo-fcn8s/solver.prototxt --weights demo_out/models/fcn16s.caffemodel` and the
like: one folder down from the reference's models, which the zoo's tests check against the reference.
"""
