"""FCN's data layers, one implementation each, usable two ways:

- as a Python layer, exactly as the reference prototxts write them:
  type: "Python"  python_param { module: "voc_layers" layer: "VOCSegDataLayer" param_str: "{...}" }
  (the Python layer falls back to layers.data.<module>, so these module and class names are the reference's);
- as a native type that reads python_param.param_str: "VOCSegData", "SBDDSegData", "SIFTFlowSegData",
  "NYUDSegData", "PASCALContextSegData", and "SegFolderData" for a dataset of your own.
"""
from layers.data import nyud_layers, pascalcontext_layers, seg_folder, siftflow_layers, voc_layers  # noqa: F401
