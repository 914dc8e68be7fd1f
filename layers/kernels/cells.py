"""CPU strategy "cells": the columns strategy (columns.py) gathering and scattering whole cells of stride x stride
pixels instead of single taps.

Where the stride divides the kernel (undilated, strided), every tap lands in a whole cell, a whole number of cells
from its window's corner, so im2col/col2im move (kh/sh)*(kw/sw) blocks of cells instead of kh*kw single taps:
FCN's k64 s32 upsampling is 4 blocks, not 4096.

Supports and applies: undilated, stride above 1 dividing the kernel; all three operations."""
import numpy

from layers.kernels import blas, columns


def uses_cells(kernel, stride, dilation):
    (kh, kw), (sh, sw) = kernel, stride
    return dilation == (1, 1) and sh * sw > 1 and kh % sh == 0 and kw % sw == 0


def supports(op, geom, x, w, y):
    return uses_cells(geom.kernel, geom.stride, geom.dilation) and blas.handles(x, w, y)


applies = supports


def forward(x, w, b, out, geom):
    columns.forward(x, w, b, out, geom, canvas=Cells)


def data_grad(dy, w, dx, geom):
    columns.data_grad(dy, w, dx, geom, canvas=Cells)


def weight_grad(x, dy, dw, geom):
    columns.weight_grad(x, dy, dw, geom, canvas=Cells)


class Cells:
    """A zero-padded image (C, H, W) on a canvas of cells: grid[c, i, r, j, q] is padded pixel (i*sh + r, j*sw + q),
    so tap (a*sh + r, b*sw + q) of output (y, x) is grid[c, y + a, r, x + b, q]."""

    def __init__(self, x_shape, out_shape, geom, dtype):
        (c, h, w), (out_h, out_w) = x_shape, out_shape[-2:]
        (kh, kw), (sh, sw), (ph, pw) = geom.kernel, geom.stride, geom.pad
        self.blocks = (kh // sh, kw // sw)
        self.stride = geom.stride
        self.out_w = out_w
        # every window, and every image pixel (rows past the last window get a zero gradient), on the canvas
        rows = max(out_h + self.blocks[0] - 1, -(-(ph + h) // sh))
        cols = max(out_w + self.blocks[1] - 1, -(-(pw + w) // sw))
        self.canvas = numpy.zeros((c, rows * sh, cols * sw), dtype=dtype)
        self.grid = self.canvas.reshape(c, rows, sh, cols, sw)
        self.image = self.canvas[:, ph:ph + h, pw:pw + w]

    def _blocks_of(self, col):
        """col (C, kh, kw, rows, OW) as (C, kh/sh, sh, kw/sw, sw, rows, OW)."""
        (fh, fw), (sh, sw) = self.blocks, self.stride
        return col.reshape(col.shape[0], fh, sh, fw, sw, *col.shape[3:])

    def gather(self, col, r0, n):
        """im2col of output rows r0..r0+n-1 into col (C, kh, kw, >=n, OW)."""
        col = self._blocks_of(col)
        ow = self.out_w
        for a in range(self.blocks[0]):
            for b in range(self.blocks[1]):
                col[:, a, :, b, :, :n] = self.grid[:, r0 + a:r0 + a + n, :, b:b + ow].transpose(0, 2, 4, 1, 3)

    def scatter(self, dcol, r0, n, channels):
        """col2im: add dcol (C, kh, kw, >=n, OW), output rows r0..r0+n-1, onto the canvas (those channels)."""
        dcol = self._blocks_of(dcol)
        ow = self.out_w
        for a in range(self.blocks[0]):
            for b in range(self.blocks[1]):
                self.grid[channels, r0 + a:r0 + a + n, :, b:b + ow] += \
                    dcol[channels, a, :, b, :, :n].transpose(0, 3, 1, 4, 2)
