"""The convolution engine's kernels: one module per job.

    geometry.py      ConvGeometry (kernel, stride, pad, dilation as (h, w) pairs, group); conv/deconv/pool output
                     sizes; parsing kernel/stride/pad/dilation out of Convolution and Pooling parameters (all from
                     netspec/geometry.py, which netspec's graph tools share); tap ranges
    im2col.py        im2col/col2im: numpy code (any array module) and their CUDA twins
    blas.py          the ctypes binding to scipy's BLAS: gemm, split_gemm (slabs over the thread pool)
    threads.py       the CPU thread pool, parallel_map, per-thread scratch (ReLU, Pooling and depthwise use it too)
    conv.py          THE dispatch: the ordered strategy list STRATEGIES and the one group loop;
                     forward / data_grad / weight_grad for numpy and CuPy arrays

Convolution strategies, one module each, in dispatch order; each says in its docstring when it applies and
exposes five functions: supports(op, geom, x, w, y) (can it compute op, with op one of "forward", "data_grad",
"weight_grad"; a strategy lacking an operation declines it here), applies(op, geom, x, w, y) (supports it and pays
off: what the dispatch asks), forward(x, w, b, out, geom), data_grad(dy, w, dx, geom), weight_grad(x, dy, dw, geom).
They get one group's arrays at a time unless the module sets ALL_GROUPS = True.

    depthwise.py     group == channels (MobileNet): a loop over taps, all groups at once          (CPU)
    whole_batch.py   many small images: one im2col and one GEMM for the batch                    (CPU, BLAS)
    pointwise.py     1x1 stride 1 unpadded: one GEMM per image on the input as it is              (CPU, BLAS)
    winograd.py      3x3 stride 1, many channels: Winograd, F(2x2, 3x3) forward, F(4x4, 3x3)     (CPU, BLAS)
                     gradients (the blocked F(m x m, 3 x 3) itself, for any m, is winograd_tiles.py)
    taps.py          stride 1: one GEMM per kernel tap over a padded block of rows                (CPU, BLAS)
    cells.py         stride dividing the kernel: columns gathered by whole cells                  (CPU, BLAS)
    columns.py       anything: blocked im2col + GEMM                                              (CPU, BLAS)
    winograd_gpu.py  3x3 stride 1, many channels: Winograd with CUDA transforms                   (GPU)
    im2col_gemm.py   anything, any array module: im2col + a batched matmul: THE REFERENCE        (CPU and GPU)

im2col_gemm is the reference: it always applies (last in the list), and every other strategy is tested against it
(tests/layers/kernels/). A new strategy is a new module with those five functions, tested against the reference,
and its name in conv.STRATEGIES before the first strategy it should win over.
"""
