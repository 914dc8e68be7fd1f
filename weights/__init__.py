"""weights: Caffe weight files and net surgery.

caffemodel: read .caffemodel (V0/V1/V2 binary) and .caffemodel.h5 as Caffe does, normalize legacy blob
shapes, convert between the formats (built on netspec.io). surgery: FCN's net surgery (upsample_filt,
interp, transplant, convolutionalize, handoff). The command line is `python -m weights --help`.
"""
from weights.caffemodel import HDF5, V0_BINARY, V1_BINARY, V2_BINARY, Weights, convert, detect_format, load, save
from weights.surgery import Report, convolutionalize, handoff, interp, transplant, upsample_filt

__all__ = [
    "HDF5", "V0_BINARY", "V1_BINARY", "V2_BINARY", "Weights", "convert", "detect_format", "load", "save",
    "Report", "convolutionalize", "handoff", "interp", "transplant", "upsample_filt",
]
