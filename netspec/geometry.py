"""Convolution and pooling geometry: one home for output sizes, the (h, w) parsing of kernel/stride/pad/dilation
from a ConvolutionParameter or PoolingParameter, and the ConvGeometry value object every kernel takes.

Pure arithmetic on ints and protobuf messages (no arrays). It lives in netspec, the bottom package, so that both
the layers (layers/kernels/geometry.py adds the kernels' tap ranges to it) and netspec's graph tools (coord_map,
rarefy) use it: netspec importing layers would make the packages import each other."""
import dataclasses
from typing import Tuple

Pair = Tuple[int, int]


def conv_outsize(size, kernel, stride, pad, dilation=1):
    """Caffe's convolution output size (floor)."""
    extent = dilation * (kernel - 1) + 1
    return (size + 2 * pad - extent) // stride + 1


def deconv_outsize(size, kernel, stride, pad, dilation=1):
    """Caffe's deconvolution output size: stride * (size - 1) + extent - 2 * pad."""
    extent = dilation * (kernel - 1) + 1
    return stride * (size - 1) + extent - 2 * pad


def pool_outsize(size, kernel, stride, pad, ceil_mode=True):
    """Caffe's pooled size: ceil (or floor) of (size + 2 pad - kernel) / stride, + 1, minus a window in the pad."""
    span = size + 2 * pad - kernel
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if pad and (out - 1) * stride >= size + pad:
        out -= 1
    return out


@dataclasses.dataclass(frozen=True)
class ConvGeometry:
    """A 2-D convolution's shape parameters, each an (h, w) pair, and its group count."""
    kernel: Pair
    stride: Pair = (1, 1)
    pad: Pair = (0, 0)
    dilation: Pair = (1, 1)
    group: int = 1

    def __post_init__(self):
        for name in ("kernel", "stride", "pad", "dilation"):          # lists and numpy ints become int pairs
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))

    @property
    def extent(self) -> Pair:
        """The kernel's reach on the input, dilation included."""
        return tuple(d * (k - 1) + 1 for k, d in zip(self.kernel, self.dilation))

    @property
    def taps(self):
        return self.kernel[0] * self.kernel[1]

    def out_size(self, h, w) -> Pair:
        """The convolution's output (OH, OW) for an H x W input."""
        return (conv_outsize(h, self.kernel[0], self.stride[0], self.pad[0], self.dilation[0]),
                conv_outsize(w, self.kernel[1], self.stride[1], self.pad[1], self.dilation[1]))

    def deconv_size(self, h, w) -> Pair:
        """The deconvolution's output for an H x W input (the convolution's input size)."""
        return (deconv_outsize(h, self.kernel[0], self.stride[0], self.pad[0], self.dilation[0]),
                deconv_outsize(w, self.kernel[1], self.stride[1], self.pad[1], self.dilation[1]))

    @property
    def is_pointwise(self):
        """1x1, stride 1, unpadded: the input is already its column matrix (Caffe's is_1x1_)."""
        return self.kernel == (1, 1) and self.stride == (1, 1) and self.pad == (0, 0)

    @property
    def flipped_pad(self) -> Pair:
        """At stride 1, the input gradient is the convolution of dy with the flipped kernel and this pad."""
        return tuple(e - 1 - p for e, p in zip(self.extent, self.pad))


# ------------------------------------------------------------------------------------------ parsing parameters
def pair(error, repeated, h, w, has_h, default, what):
    """Caffe's kernel/pad/stride/dilation rule: the _h/_w pair, or 0, 1 or 2 repeated values.
    `error(message)` makes the exception to raise (a layer's error names the layer)."""
    if has_h:
        if len(repeated):
            raise error(f"give either {what}_size-style repeated values or {what}_h/{what}_w, not both")
        return int(h), int(w)
    values = list(repeated)
    if len(values) == 0:
        if default is None:
            raise error(f"{what} size is required (kernel_size, or kernel_h and kernel_w)")
        return default, default
    if len(values) == 1:
        return int(values[0]), int(values[0])
    if len(values) == 2:
        return int(values[0]), int(values[1])
    raise error(f"{what} takes 1 or 2 values for a 2-D convolution, got {len(values)}")


def pair_or_repeated(p, name, default):
    """The lenient reading graph tools use (any number of axes, no checks): the _h/_w pair if given, else the
    (repeated or single) field, as a tuple; `default` when absent (None: empty)."""
    if p.HasField(f"{name}_h") or p.HasField(f"{name}_w"):
        return (getattr(p, f"{name}_h"), getattr(p, f"{name}_w"))
    field = name if name != "kernel" else "kernel_size"
    value = getattr(p, field)
    if isinstance(value, int):                        # Pooling's singular fields
        return (value,) if value or default is None else (default,)
    return tuple(value) or ((default,) if default is not None else ())


def conv_geometry(error, p):
    """A ConvolutionParameter as a ConvGeometry, checked as Caffe's BaseConvolutionLayer::LayerSetUp does."""
    has_kh, has_kw = p.HasField("kernel_h"), p.HasField("kernel_w")
    if has_kh != has_kw:
        raise error("kernel_h and kernel_w must be given together")
    kernel = pair(error, p.kernel_size, p.kernel_h, p.kernel_w, has_kh, None, "kernel")
    if p.HasField("stride_h") != p.HasField("stride_w") or p.HasField("pad_h") != p.HasField("pad_w"):
        raise error("stride_h/stride_w and pad_h/pad_w must be given in pairs")
    stride = pair(error, p.stride, p.stride_h, p.stride_w, p.HasField("stride_h"), 1, "stride")
    pad = pair(error, p.pad, p.pad_h, p.pad_w, p.HasField("pad_h"), 0, "pad")
    dilation = pair(error, p.dilation, 0, 0, False, 1, "dilation")
    if min(kernel) <= 0 or min(stride) <= 0 or min(dilation) <= 0 or min(pad) < 0:
        raise error(f"kernel {kernel}, stride {stride} and dilation {dilation} must be positive "
                    f"and pad {pad} not negative")
    return ConvGeometry(kernel, stride, pad, dilation, p.group)      # the layer checks the group


def pool_pairs(error, p):
    """A PoolingParameter's (kernel or None when global, stride, pad): its fields are singular, not repeated."""
    kernel = None
    if not p.global_pooling:
        has_kh, has_kw = p.HasField("kernel_h"), p.HasField("kernel_w")
        if has_kh != has_kw:
            raise error("kernel_h and kernel_w must be given together")
        kernel = pair(error, [p.kernel_size] if p.HasField("kernel_size") else [], p.kernel_h, p.kernel_w, has_kh,
                      None, "kernel")
    if p.HasField("pad_h") != p.HasField("pad_w") or p.HasField("stride_h") != p.HasField("stride_w"):
        raise error("pad_h/pad_w and stride_h/stride_w must be given in pairs")
    pad = pair(error, [p.pad] if p.HasField("pad") else [], p.pad_h, p.pad_w, p.HasField("pad_h"), 0, "pad")
    stride = pair(error, [p.stride] if p.HasField("stride") else [], p.stride_h, p.stride_w,
                  p.HasField("stride_h"), 1, "stride")
    return kernel, stride, pad
