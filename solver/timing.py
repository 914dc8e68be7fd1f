"""python -m solver time NET.prototxt [--iterations N] [--gpu N] [--phase TRAIN|TEST] [--level L] [--stage S]

Caffe's `caffe time`: builds the net (TRAIN phase by default, as Caffe), runs one forward and backward pass to
warm up, then times `iterations` forward-backward passes layer by layer (Net.timing) and logs, as Caffe does,
each iteration's time, each layer's average forward and backward time, the average forward, backward and
forward-backward pass and the total. Inputs keep what their layers produce (data layers read their sources;
Input layers hold zeros).
"""
import argparse
import time

from layers import Net
from solver.log import get_logger


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m solver time", description=__doc__.split("\n\n")[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("net", help="the net .prototxt to time")
    parser.add_argument("--iterations", type=int, default=50, help="forward-backward passes timed (default 50)")
    parser.add_argument("--gpu", type=int, help="GPU id to run on (default: the CPU)")
    parser.add_argument("--phase", default="TRAIN", choices=("TRAIN", "TEST"), help="the net's phase (default TRAIN)")
    parser.add_argument("--level", type=int, default=0, help="the net's level (default 0)")
    parser.add_argument("--stage", default="", help="comma-separated stages of the net")
    args = parser.parse_args(argv)
    if args.iterations < 1:
        parser.error(f"--iterations must be at least 1, got {args.iterations}")
    return args


def time_net(net, iterations, log):
    """Caffe's time(): a warm-up pass, then `iterations` timed passes; returns the LayerTimes."""
    log.info("Performing Forward")
    net.forward()
    log.info(f"Initial loss: {net.loss:g}")
    log.info("Performing Backward")
    net.backward()
    log.info("*** Benchmark begins ***")
    log.info(f"Testing for {iterations} iterations.")
    total = 0.0
    with net.timing() as times:
        for i in range(iterations):
            start = time.perf_counter()
            net.forward()
            net.backward()
            seconds = time.perf_counter() - start
            total += seconds
            log.info(f"Iteration: {i + 1} forward-backward time: {1000 * seconds:.5g} ms.")
    log.info("Average time per layer: ")
    width = max([10] + [len(layer.name) for layer in net.layers])
    for layer, forward, backward in zip(net.layers, times.forward, times.backward):
        log.info(f"{layer.name:>{width}}\tforward: {1000 * forward / iterations:.5g} ms.")
        log.info(f"{layer.name:>{width}}\tbackward: {1000 * backward / iterations:.5g} ms.")
    log.info(f"Average Forward pass: {1000 * sum(times.forward) / iterations:.5g} ms.")
    log.info(f"Average Backward pass: {1000 * sum(times.backward) / iterations:.5g} ms.")
    log.info(f"Average Forward-Backward: {1000 * total / iterations:.5g} ms.")
    log.info(f"Total Time: {1000 * total:.5g} ms.")
    log.info("*** Benchmark ends ***")
    return times


def main(argv):
    args = parse_args(argv)
    stages = [s for s in args.stage.split(",") if s]
    net = Net(args.net, phase=args.phase, level=args.level, stages=stages,
              device=None if args.gpu is None else args.gpu)
    time_net(net, args.iterations, get_logger())
    return 0
