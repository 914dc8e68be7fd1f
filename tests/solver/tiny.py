"""A tiny classification problem written to a folder: HDF5 data (train and test), a net with a TEST-only Accuracy,
and a solver, for tests of the loop, the logs and the command. Everything is relative to that folder."""
import h5py
import numpy

NET = """name: "tiny"
layer { name: "data" type: "HDF5Data" top: "data" top: "label" include { phase: TRAIN }
        hdf5_data_param { source: "train.txt" batch_size: 4 } }
layer { name: "data" type: "HDF5Data" top: "data" top: "label" include { phase: TEST }
        hdf5_data_param { source: "test.txt" batch_size: 4 } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "acc" type: "Accuracy" bottom: "ip" bottom: "label" top: "accuracy" include { phase: TEST } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""

SOLVER = {"net": '"net.prototxt"', "test_iter": 2, "test_interval": 5, "base_lr": 0.1, "momentum": 0.9,
          "weight_decay": 0.0005, "lr_policy": '"fixed"', "display": 1, "max_iter": 10,
          "snapshot_prefix": '"snap/tiny"', "random_seed": 1, "type": '"SGD"'}


def make_data(rows, seed, nan_row=None):
    rng = numpy.random.default_rng(seed)
    label = rng.integers(0, 3, size=rows)
    data = rng.normal(size=(rows, 5)).astype(numpy.float32)
    data[numpy.arange(rows), label] += 2.0            # learnable: the class shows in one feature
    if nan_row is not None:
        data[nan_row] = numpy.nan
    return data, label.astype(numpy.float32)


def solver_text(**overrides):
    fields = dict(SOLVER, **overrides)
    lines = []
    for key, value in fields.items():
        if value is None:
            continue
        for v in value if isinstance(value, (list, tuple)) else [value]:
            lines.append(f"{key}: {v}")
    return "\n".join(lines) + "\n"


def make_tiny(folder, net=NET, nan_row=None, **solver_overrides):
    """Write the problem into `folder`; return the solver path. solver_overrides set/replace solver fields
    (None drops one)."""
    for name, rows, seed, bad in (("train", 12, 0, nan_row), ("test", 8, 1, None)):
        data, label = make_data(rows, seed, bad)
        with h5py.File(folder / f"{name}.h5", "w") as f:
            f["data"], f["label"] = data, label
        (folder / f"{name}.txt").write_text(f"{name}.h5\n")
    (folder / "net.prototxt").write_text(net)
    path = folder / "solver.prototxt"
    path.write_text(solver_text(**solver_overrides))
    return str(path)
