"""fcn-caffe: a Caffe-faithful engine in Python (numpy, optional CuPy) that reproduces FCN."""
from setuptools import setup

setup(
    name="fcn-caffe",
    version="0.1.0",
    description="Caffe-faithful FCN (Fully Convolutional Networks) engine on numpy and CuPy",
    python_requires=">=3.9",
    packages=["netspec", "layers", "solver", "weights"],
    package_data={"netspec": ["caffe.proto"]},
    data_files=[],
    include_package_data=True,
    install_requires=["numpy>=1.22", "scipy>=1.8", "protobuf>=7.35.1,<8", "h5py>=3.6", "pillow>=9.0"],
    extras_require={
        "gpu": ["cupy-cuda12x>=13"],
        # grpcio-tools brings protoc, used to check that netspec/caffe_pb2.py is current
        "test": ["pytest>=7", "grpcio-tools==1.85.1"],
    },
)
