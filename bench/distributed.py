"""Data-parallel scaling on this machine: the demo's FCN-8s trained by 1 and 2 MPI ranks, and MPI's all-reduce time
against message size (the measured part of the README's model for 8 and 64 GPUs).

    python -m bench.distributed                  # from the repository root, needs the mpi extra; a few minutes
    python -m bench.distributed --iters 4 --sizes 20     # shorter

Training: the demo's default configuration (FCN-8s on its synthetic VOC-layout data, SegFolderData batch 8 of
96 x 96 images, SGD), built once in a temporary folder. Each rank gets its share of the cores: R ranks run with
OMP_NUM_THREADS = OPENBLAS_NUM_THREADS = cores / R. Per rank count: a warm-up step, then the median of --iters
timed steps (rank 0's clock, between the control steps that keep the ranks in step), images per second =
ranks x batch / step time, and the time of the gradient all-reduce inside the step (packing included).

--fcn8s: the same for VGG16's FCN-8s (prototxt/voc-fcn8s, 134M params) at --size x --size, batch 1 per rank, its
Input replaced by DummyData (constant image, zero labels) and a SoftmaxWithLoss added: how much of a step the
all-reduce of its 538 MB of gradients takes (slow: minutes, and about 5 GB of memory per rank).

All-reduce: float32 buffers of 4 KiB to 2^sizes bytes, summed in place by 2 ranks (MPI_Allreduce, blocking); the
median of several repetitions per size, and a least-squares fit t = latency + bytes / bandwidth.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy

ROOT = Path(__file__).resolve().parent.parent


def mpiexec():
    path = shutil.which("mpiexec")
    if path is None:
        sys.exit("bench.distributed needs mpiexec and mpi4py: pip install -e \".[mpi]\"")
    return path


def cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def run_ranks(ranks, args):
    threads = str(max(1, cores() // ranks))
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    result = subprocess.run([mpiexec(), "-n", str(ranks), sys.executable, "-m", "bench.distributed", *args],
                            env=env, capture_output=True, text=True, cwd=ROOT)
    if result.returncode:
        sys.exit(f"{ranks} rank(s) failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- the workers (one per rank, under mpiexec)
def train_worker(solver_path, iters):
    import logging
    from solver import get_solver, parallel
    from solver.log import get_logger
    get_logger().setLevel(logging.WARNING)
    comm = parallel.world()
    solver = get_solver(solver_path)
    group = parallel.attach(solver, comm) if comm.size > 1 else None
    solver.step(1)                                   # warm-up
    times, reduce_times = [], []
    for _ in range(iters):
        before = group.reduce_seconds if group else 0.0
        started = time.perf_counter()
        solver.step(1)
        times.append(time.perf_counter() - started)
        reduce_times.append((group.reduce_seconds if group else 0.0) - before)
    if comm.rank == 0:
        batch = solver.net.blobs["data"].shape[0]
        params = sum(b.count for b in solver.net.learnable_params)
        print(json.dumps(dict(ranks=comm.size, batch=batch, params=params, step=statistics.median(times),
                              steps=times, allreduce=statistics.median(reduce_times))))


def allreduce_worker(max_log2, reps):
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    rows = []
    for k in sorted(set(range(12, max_log2, 2)) | {max_log2}):
        n = (1 << k) // 4
        buffer = numpy.ones(n, dtype=numpy.float32)
        comm.Allreduce(MPI.IN_PLACE, buffer)         # warm-up (page faults, connection set-up)
        times = []
        for _ in range(reps if k < 24 else max(3, reps // 3)):
            comm.Barrier()
            started = time.perf_counter()
            comm.Allreduce(MPI.IN_PLACE, buffer)
            times.append(time.perf_counter() - started)
        rows.append((4 * n, statistics.median(times)))
    if comm.rank == 0:
        print(json.dumps(dict(ranks=comm.Get_size(), library=MPI.Get_library_version().splitlines()[0].strip(),
                              rows=rows)))


# ---------------------------------------------------------------- the driver
def write_demo(folder):
    """The demo's default FCN-8s train net and solver on its synthetic data (a few dozen images)."""
    from demo import nets, pipeline, synthetic
    from netspec import io as netio
    c = pipeline.CONFIGS["default"]
    data = folder / "data"
    synthetic.write_voc(str(data), seed=0, n_train=64, n_val=8, size=c.size)
    param = pipeline.seg_data_param(str(data), "train", c.batch, c.size, 0)
    net = nets.fcn("8s", param, c.widths, c.fc, pipeline._pool5_size(c.crop), synthetic.NUM_CLASSES, c.pad)
    netio.write_text(net, str(folder / "train.prototxt"))
    (folder / "solver.prototxt").write_text('train_net: "train.prototxt"\nbase_lr: 0.01\nmomentum: 0.9\n'
                                            'weight_decay: 0.0005\nlr_policy: "fixed"\nmax_iter: 100000\n'
                                            'display: 0\nsnapshot_after_train: false\nrandom_seed: 0\n')
    return folder / "solver.prototxt"


def write_fcn8s(folder, size):
    """VGG16's FCN-8s (deploy net) with DummyData in place of its Input, and a loss: a train net for timing."""
    from netspec import caffe_pb2, io as netio
    net = netio.read_net(str(ROOT / "prototxt" / "voc-fcn8s" / "deploy.prototxt"))
    first = net.layer[0]
    assert first.type == "Input"
    first.type = "DummyData"
    first.ClearField("input_param")
    first.top.append("label")
    for shape in ([1, 3, size, size], [1, 1, size, size]):
        first.dummy_data_param.shape.add().dim.extend(shape)
    first.dummy_data_param.data_filler.add(type="constant", value=0.5)
    first.dummy_data_param.data_filler.add(type="constant", value=0)
    net.layer.add(name="loss", type="SoftmaxWithLoss", bottom=["score", "label"], top=["loss"])
    net.ClearField("input")
    net.ClearField("input_shape")
    netio.write_text(net, str(folder / "fcn8s.prototxt"))
    (folder / "solver.prototxt").write_text('train_net: "fcn8s.prototxt"\nbase_lr: 1e-10\nmomentum: 0.99\n'
                                            'weight_decay: 0.0005\nlr_policy: "fixed"\nmax_iter: 100000\n'
                                            'display: 0\nsnapshot_after_train: false\nrandom_seed: 0\n')
    return folder / "solver.prototxt", caffe_pb2


def fit(rows):
    """Least squares t = latency + bytes / bandwidth over the sizes of 1 MiB and more."""
    big = [(b, t) for b, t in rows if b >= 1 << 20]
    if len(big) < 2:
        big = rows[-2:]
    slope, intercept = numpy.polyfit([b for b, _ in big], [t for _, t in big], 1)
    return max(intercept, 0.0), 1.0 / slope


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iters", type=int, default=6, help="timed steps per rank count (default 6)")
    parser.add_argument("--sizes", type=int, default=29, help="largest all-reduce: 2^SIZES bytes (default 29)")
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--fcn8s", action="store_true", help="time VGG16's FCN-8s instead (see above)")
    parser.add_argument("--size", type=int, default=256, help="--fcn8s: image size (default 256)")
    parser.add_argument("--worker", choices=["train", "allreduce"], help=argparse.SUPPRESS)
    parser.add_argument("--solver", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker == "train":
        return train_worker(args.solver, args.iters)
    if args.worker == "allreduce":
        return allreduce_worker(args.sizes, args.reps)

    print(f"machine: {os.cpu_count()} cores ({cores()} usable), load average {os.getloadavg()} at the start")
    if args.fcn8s:
        with tempfile.TemporaryDirectory() as tmp:
            solver, _ = write_fcn8s(Path(tmp), args.size)
            results = [run_ranks(r, ["--worker", "train", "--solver", str(solver), "--iters", str(args.iters)])
                       for r in (1, 2)]
        print(f"\nVGG16 FCN-8s ({results[0]['params']:,} params), {args.size} x {args.size}, batch 1 per rank, "
              f"{args.iters} timed steps, median:")
        print("ranks  threads/rank  step (s)  images/s  all-reduce in step (s)  all-reduce share  speed-up")
        for r in results:
            print(f"{r['ranks']:>5}  {max(1, cores() // r['ranks']):>12}  {r['step']:>8.2f}  "
                  f"{r['ranks'] / r['step']:>8.3f}  {r['allreduce']:>22.3f}  {r['allreduce'] / r['step']:>16.1%}  "
                  f"{r['ranks'] / r['step'] * results[0]['step']:>8.2f}")
        print(f"load average at the end: {os.getloadavg()}")
        return None
    with tempfile.TemporaryDirectory() as tmp:
        solver = write_demo(Path(tmp))
        results = [run_ranks(r, ["--worker", "train", "--solver", str(solver), "--iters", str(args.iters)])
                   for r in (1, 2)]
    print(f"\nDemo FCN-8s ({results[0]['params']:,} params), batch {results[0]['batch']} per rank, "
          f"{args.iters} timed steps, median:")
    print("ranks  threads/rank  step (s)  images/s  all-reduce in step (s)  speed-up")
    # the all-reduce column is the time inside the all-reduce call: packing, waiting for the slower rank, the sum
    for r in results:
        images = r["ranks"] * r["batch"] / r["step"]
        base = results[0]["batch"] / results[0]["step"]
        print(f"{r['ranks']:>5}  {max(1, cores() // r['ranks']):>12}  {r['step']:>8.3f}  {images:>8.1f}  "
              f"{r['allreduce']:>22.4f}  {images / base:>8.2f}")
    ar = run_ranks(2, ["--worker", "allreduce", "--sizes", str(args.sizes), "--reps", str(args.reps)])
    latency, bandwidth = fit(ar["rows"])
    print(f"\nMPI all-reduce, 2 ranks on this machine ({ar['library']}), in-place float32 sum, median:")
    print("bytes          time (ms)   algorithm bandwidth (GB/s)")
    for nbytes, t in ar["rows"]:
        print(f"{nbytes:>12,}  {t * 1e3:>10.3f}   {nbytes / t / 1e9:>8.2f}")
    print(f"fit over >= 1 MiB: t = {latency * 1e6:.1f} us + bytes / ({bandwidth / 1e9:.2f} GB/s)")
    from layers import Net
    fcn8s = Net(str(ROOT / "prototxt" / "voc-fcn8s" / "deploy.prototxt"), input_shapes={"data": (1, 3, 32, 32)})
    params = sum(b.count for b in fcn8s.learnable_params)
    print(f"FCN-8s (prototxt/voc-fcn8s): {params:,} learnable params, {params * 4 / 1e6:.1f} MB of float32 "
          f"gradients all-reduced per step -> {(latency + params * 4 / bandwidth) * 1e3:.0f} ms at this fit")
    print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
