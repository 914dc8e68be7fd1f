"""Snapshots and restore (cf. Solver::Snapshot, Restore in caffe/solver.cpp and SGDSolver's SnapshotSolverState and
RestoreSolverStateFrom* in sgd_solver.cpp), binary or HDF5, and the data fast-forward of a restored run.

prefix() resolves snapshot_prefix; check_folder() refuses, before training, a prefix whose folder cannot be written
and removes the temporary files that interrupted snapshot writes left there; write() writes
<prefix>_iter_N.caffemodel and .solverstate (.caffemodel.h5 and .solverstate.h5 for snapshot_format: HDF5), each
atomically; restore() continues a solver from a .solverstate: iteration, lr step, history, the learned weights, and
its data layers moved on to where the uninterrupted run would be. write() and restore() work on a Solver: its
param, net, test nets, iter, current_step and update (the history).
"""
import os
import re
from typing import Optional, Tuple

import numpy

from layers import backend
from netspec import caffe_pb2, io as netio, paths
from solver.log import g, get_logger
from solver.update import on_device

log = get_logger()


def prefix(param, source: Optional[str], base_dir: Optional[str]) -> Tuple[str, str]:
    """(prefix as written, prefix to write to). Caffe's UpgradeSnapshotPrefixProperty, then our resolution: a
    relative prefix goes in the solver's folder when the prefix's folder is there (or nowhere), else in the working
    directory; a prefix naming a folder gets the solver file's name."""
    written = param.snapshot_prefix
    if not param.HasField("snapshot_prefix") and source:
        # Caffe: the solver file's path without its extension, so the snapshots sit beside the solver
        return os.path.splitext(source)[0], os.path.splitext(os.path.abspath(source))[0]
    stem = os.path.splitext(os.path.basename(source))[0] if source else "solver"
    if os.path.isabs(written) or not base_dir:
        if written and os.path.isdir(written):
            written = os.path.join(written, stem)
        return written, written
    for base in (base_dir, os.getcwd()):
        if os.path.isdir(os.path.join(base, written)):
            written = os.path.join(written, stem)
            return written, os.path.join(base, written)
    folder = os.path.dirname(written)
    if folder and not os.path.isdir(os.path.join(base_dir, folder)) and os.path.isdir(folder):
        return written, os.path.abspath(written)
    return written, os.path.join(base_dir, written)


def check_folder(prefix_path: str, param, where: str) -> None:
    """Fail now, not after hours of training, when snapshots cannot be written to prefix_path's folder (Caffe
    checks at init too): a part of it is a file, or the nearest existing folder is not writable."""
    folder = os.path.dirname(os.path.abspath(prefix_path))
    why = _unwritable(folder)
    if why:
        raise PermissionError(f"{where}: cannot write snapshots to {folder} (snapshot_prefix "
                              f"\"{param.snapshot_prefix}\"): {why}")


def _unwritable(folder: str) -> Optional[str]:
    """Why files cannot be made in `folder` (created as needed), or None."""
    existing = folder
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        return f"{existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None


def remove_abandoned(prefix_path: str) -> None:
    """Delete the temporary files of snapshot writes that were interrupted (netspec.io's atomic writes name them
    .<file>.<12 hex digits>.tmp beside <file>), for this prefix."""
    folder, stem = os.path.split(os.path.abspath(prefix_path))
    pattern = re.compile(rf"\.{re.escape(stem)}_iter_\d+\.(caffemodel|solverstate)(\.h5)?\.[0-9a-f]{{12}}\.tmp")
    if not os.path.isdir(folder):
        return
    for name in sorted(os.listdir(folder)):
        if pattern.fullmatch(name):
            path = os.path.join(folder, name)
            try:
                os.remove(path)
            except OSError as e:
                log.warning(f"cannot remove {path}, left by an interrupted snapshot: {e.strerror or e}")
            else:
                log.info(f"Removed {path}, left by an interrupted snapshot")


def write(solver) -> Tuple[str, str]:
    """Write the solver's snapshot; (caffemodel path, solverstate path). Errors name the file and the cause."""
    p = solver.param
    hdf5 = p.snapshot_format == caffe_pb2.SolverParameter.HDF5
    model_ext, state_ext = (".caffemodel.h5", ".solverstate.h5") if hdf5 else (".caffemodel", ".solverstate")
    stem = f"{solver.snapshot_prefix_path}_iter_{solver.iter}"
    model_path, state_path = stem + model_ext, stem + state_ext
    folder = os.path.dirname(os.path.abspath(model_path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise OSError(f"cannot write the snapshot {model_path}: its folder cannot be created (snapshot_prefix "
                      f"\"{p.snapshot_prefix}\"): {_unwritable(folder) or e.strerror or e}") from None
    proto = solver.net.to_proto(write_diff=p.snapshot_diff)
    target = model_path
    try:
        if hdf5:
            log.info(f"Snapshotting to HDF5 file {model_path}")
            netio.write_caffemodel_h5(proto, model_path, write_diff=p.snapshot_diff)
        else:
            log.info(f"Snapshotting to binary proto file {model_path}")
            netio.write_caffemodel(proto, model_path)
        # learned_net names the model as Caffe would, by the prefix as written in the solver
        state = caffe_pb2.SolverState(iter=solver.iter, current_step=solver.current_step,
                                      learned_net=f"{solver.snapshot_prefix_written}_iter_{solver.iter}{model_ext}")
        batches = solver.parallel.shard.position if solver.parallel is not None else solver.batches_read[0]
        if batches != solver.iter * p.iter_size:
            state.train_batches = batches
        if solver.solver_count != 1:
            state.solver_count = solver.solver_count
        for array in solver.update.history:
            state.history.add().CopyFrom(netio.array_to_blob(backend.to_cpu(array)))
        target = state_path
        log.info(f"Snapshotting solver state to {'HDF5' if hdf5 else 'binary proto'} file {state_path}")
        netio.write_solverstate(state, state_path)
    except OSError as e:
        raise OSError(f"cannot write the snapshot {target}: {e.strerror or e}; the earlier snapshots are "
                      f"intact") from None
    return model_path, state_path


def restore(solver, state_file) -> None:
    """Continue `solver` from a .solverstate (binary or HDF5): iteration, lr step, history and the learned weights;
    data layers that can skip what the run had read, so a resumed run sees the batches an uninterrupted one would.

    In a data-parallel group (solver.parallel) rank 0 reads the file and gives the others what it holds, so the
    snapshot need only be where rank 0 runs."""
    state_file = os.fspath(state_file)
    parallel = solver.parallel
    count = batches = 1
    if parallel is None or parallel.is_root:
        count, batches = _restore_state(solver, state_file)
    if parallel is not None:
        count, batches = parallel.share_restored(count, batches)
    if count != solver.solver_count and (parallel is None or parallel.is_root):
        before = f"{g(batches / solver.iter)} batches per iteration" if solver.iter else "its batches"
        log.warning(f"{state_file} was written by {count} rank(s) and {solver.solver_count} go on from it: each "
                    f"iteration now averages the gradients of {solver.solver_count} x {solver.param.iter_size} "
                    f"(iter_size) batches (the snapshot's run averaged {before}), so the effective batch changes; "
                    f"the iteration count, learning rate schedule and history go on as they were, and the data "
                    f"goes on after the {batches} batches read")
    fast_forward_data(solver, batches)
    log.info(f"{solver.type} solver: restored iteration {solver.iter} from {state_file}")


def _restore_state(solver, state_file) -> int:
    """restore's reading part (rank 0's in a group): the solver_count the state was written by."""
    paths.first_file([state_file], f"solver state '{state_file}' not found")
    state = netio.read_solverstate(state_file)
    update = solver.update
    if len(state.history) != len(update.history):
        raise ValueError(f"{state_file}: holds {len(state.history)} history blob(s), but this "
                         f"{solver.type} solver keeps {len(update.history)} for this net ({update.history_slots} per "
                         f"learnable param); was it written for another net or solver type?")
    arrays = []
    for i, (proto, blob) in enumerate(zip(state.history, update.history_params())):
        if not netio.legacy_shape_equals(proto, blob.shape):
            stored = netio.blob_to_array(proto)
            if stored.size != blob.count:
                raise ValueError(f"{state_file}: history blob {i} has shape {stored.shape}, but learnable "
                                 f"param {i % len(solver.net.learnable_params)} has shape {blob.shape}")
            arrays.append(stored.reshape(blob.shape))
        else:
            arrays.append(netio.blob_to_array(proto, shape=blob.shape))
    if state.learned_net:
        solver.net.copy_from(find_learned_net(state.learned_net, state_file, solver.base_dir))  # test nets share it
    solver.iter = state.iter
    solver.current_step = state.current_step
    update.history = [on_device(numpy.asarray(a, dtype=blob.dtype), blob)
                      for a, blob in zip(arrays, update.history_params())]
    batches = state.train_batches if state.HasField("train_batches") else state.iter * solver.param.iter_size
    return state.solver_count, batches


def find_learned_net(learned: str, state_file: str, base_dir: Optional[str]) -> str:
    """The weights a solverstate names: beside the .solverstate first (Caffe writes the pair side by side), then as
    written (the working directory), then under the solver folder, then the model with the state's own file name
    (a renamed pair)."""
    folder = os.path.dirname(os.path.abspath(state_file))
    stem = state_file[:-3] if state_file.endswith(".h5") else state_file
    stem = stem[:-len(".solverstate")] if stem.endswith(".solverstate") else os.path.splitext(stem)[0]
    model_ext = ".caffemodel.h5" if learned.endswith(".h5") else ".caffemodel"
    candidates = [learned] if os.path.isabs(learned) else []
    candidates += [os.path.join(folder, os.path.basename(learned)), learned]
    if base_dir and not os.path.isabs(learned):
        candidates.append(os.path.join(base_dir, learned))
    candidates.append(stem + model_ext)
    return paths.first_file(candidates, f"{state_file}: its weights '{learned}' (learned_net) were not found")


def fast_forward_data(solver, train_batches=None) -> None:
    """Move the data layers that can (fast_forward) to where an uninterrupted run would be at solver.iter: the
    train net after `train_batches` batches of its single sequence (default iter x iter_size; a group's ranks
    read their shares on from there), the test nets after the tests run so far."""
    p = solver.param
    train = solver.iter * p.iter_size if train_batches is None else int(train_batches)
    if solver.parallel is not None:
        solver.parallel.shard.skip_to(train)
        solver.batches_read[0] = solver.iter * p.iter_size
    tests = 0
    if p.test_interval:
        tests = sum(1 for it in range(0, solver.iter, p.test_interval) if it > 0 or p.test_initialization)
    wanted = [train] + [tests * iters for iters in p.test_iter[:len(solver.test_nets)]]
    for k, (net, target) in enumerate(zip([solver.net] + solver.test_nets, wanted)):
        if k == 0 and solver.parallel is not None:
            continue
        skip = target - solver.batches_read[k]
        # a Python layer answers for its class (PythonLayer.__getattr__): a user's may define fast_forward too
        layers = [layer for layer in net.layers if hasattr(layer, "fast_forward")]
        if skip < 0 and layers:
            log.warning(f"restoring iteration {solver.iter} into a solver whose {'test' if k else 'train'} net "
                        f"has read past it: its data layers go on from where they are")
            continue
        for layer in layers:
            layer.fast_forward(skip)
        solver.batches_read[k] = target
