"""Hand-written CuPy kernels, one module per op, each beside (and tested against) its numpy twin in the layers:

    im2col.py        im2col/col2im            twin: layers.im2col.im2col / col2im
    pooling.py       MAX pooling + argmax     twin: PoolingLayer's tap loop (layers/pooling.py)
    softmax_loss.py  SoftmaxWithLoss          twin: SoftmaxWithLossLayer.forward/backward

They are defined as backend.ElementwiseKernel (compiled on first call, CuPy only) and checked on every machine by
tests/layers/test_gpu_kernels.py (their CUDA source run on the CPU by tests/cuda_sim.py, and on a GPU with -m gpu).
The layers do not call them yet: the layer files they belong beside were being changed for CPU speed when they
were written; wiring them in is a few lines per layer (the GPU paths' dispatch), after which these modules move
into those files. SGD's fused update kernel lives in solver/sgd.py, where it is used.
"""
