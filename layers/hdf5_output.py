"""HDF5Output layer ("HDF5Output"): write bottom[0] and bottom[1] to hdf5_output_param.file_name as datasets
`data` and `label`, whatever the bottoms are called, in Caffe's legacy 4-D shapes ((2,) is stored as (2,1,1,1)).
No tops; backward does nothing. Semantics: caffe hdf5_output_layer.cpp: setup creates (truncates) the file, as
written (relative to the working directory). Each forward rewrites the file atomically with its batch, where
Caffe's second forward aborts on the datasets that exist."""
from layers import backend
from layers.base import Layer
from layers.registry import register
from netspec.io import atomic_write


@register("HDF5Output")
class HDF5OutputLayer(Layer):
    exact_num_bottom = 2
    exact_num_top = 0

    def setup(self, bottom, top):
        self.file_name = self.param.hdf5_output_param.file_name
        if not self.file_name:
            raise self.error("hdf5_output_param.file_name is empty")
        self._write({})

    def reshape(self, bottom, top):
        if bottom[0].num != bottom[1].num:
            raise self.error(f"data and label must have the same batch size, got {bottom[0].shape} and "
                             f"{bottom[1].shape}")

    def _write(self, datasets):
        import h5py

        def write(tmp):
            with h5py.File(tmp, "w") as f:
                for name, array in datasets.items():
                    f.create_dataset(name, data=array)
        try:
            atomic_write(self.file_name, write)
        except OSError as e:
            raise self.error(f"cannot write {self.file_name}: {e}") from e

    def forward(self, bottom, top):
        self._write({name: backend.to_cpu(b.data).reshape(b.num, b.channels, b.height, b.width)
                     for name, b in zip(("data", "label"), bottom)})

    def backward(self, top, propagate_down, bottom):
        pass
