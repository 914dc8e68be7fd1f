"""HDF5Data layer ("HDF5Data"): rows of HDF5 datasets, `batch_size` at a time. Semantics: caffe hdf5_data_layer.cpp.

hdf5_data_param.source is a text file listing .h5 files (whitespace separated). Each top reads the dataset of the
same name; every dataset of a file has the same number of rows (axis 0). Rows are read in order, file after file,
wrapping around; with `shuffle` the file order is shuffled once and again at each wrap, and the rows of each file
are shuffled when it is loaded and at each wrap (Caffe's Next()). One file is in memory at a time, as in Caffe.

Relative paths: the source is looked for under the net's base_dir (the solver file's folder when a solver built the
net), then as written (the working directory). A file named in the list is looked for under base_dir, as written,
then beside the list file.
"""
import os

import numpy

from layers.base import Layer
from layers.registry import register
from layers.rng import caffe_rng
from netspec.paths import find_file


@register("HDF5Data")
class HDF5DataLayer(Layer):
    exact_num_bottom = 0
    min_num_top = 1

    def setup(self, bottom, top):
        p = self.param.hdf5_data_param
        if self.param.HasField("transform_param"):
            raise self.error("HDF5Data does not transform data; delete transform_param "
                             "(store the data already transformed)")
        if p.batch_size < 1:
            raise self.error(f"hdf5_data_param.batch_size must be at least 1, got {p.batch_size}")
        if not p.source:
            raise self.error("hdf5_data_param.source is empty; give a text file listing .h5 files")
        self.batch_size = p.batch_size
        self.shuffle = p.shuffle
        self.rng = numpy.random.default_rng(caffe_rng().integers(2 ** 63)) if self.shuffle else None
        base = self.base_dir
        try:
            self.source = find_file(p.source, [base, None], f"{self.type} layer '{self.name}': source list")
        except (FileNotFoundError, IsADirectoryError) as e:
            raise self.error(str(e).split(": ", 1)[1]) from None
        with open(self.source) as f:
            names = f.read().split()
        if not names:
            raise self.error(f"source list {self.source} names no HDF5 file")
        list_dir = os.path.dirname(os.path.abspath(self.source))
        self.filenames = []
        for name in names:
            try:
                self.filenames.append(find_file(name, [base, None, list_dir], "HDF5 file"))
            except (FileNotFoundError, IsADirectoryError) as e:
                raise self.error(f"{e} (listed in {self.source})") from None
        self.top_names = list(self.param.top)
        self.file_permutation = numpy.arange(len(self.filenames))
        if self.shuffle:
            self.rng.shuffle(self.file_permutation)
        self.current_file = 0
        self._open(self.filenames[self.file_permutation[0]])
        self.current_row = 0
        self.row_shapes = [a.shape[1:] for a in self.arrays]
        for t, shape in zip(top, self.row_shapes):
            t.reshape(self.batch_size, *shape)

    def _read(self, filename):
        """The datasets named by the tops, as float32 arrays (Caffe's hdf5_load_nd_dataset), checked."""
        import h5py                   # imported here: nets without HDF5 layers never need it
        try:
            f = h5py.File(filename, "r")
        except OSError as e:
            raise self.error(f"cannot open HDF5 file {filename}: {e}") from None
        with f:
            missing = [n for n in self.top_names if n not in f]
            if missing:
                raise self.error(f"HDF5 file {filename} has no dataset {', '.join(map(repr, missing))}; the tops "
                                 f"are read from the datasets of the same name (the file has: "
                                 f"{', '.join(sorted(f.keys()))})")
            arrays = []
            for name in self.top_names:
                data = f[name]
                if not isinstance(data, h5py.Dataset) or data.dtype.kind not in "fiub" or data.ndim < 1:
                    raise self.error(f"HDF5 file {filename}: '{name}' must be a numeric dataset with at least 1 "
                                     f"axis, got {data!r}")
                arrays.append(numpy.asarray(data[()], dtype=numpy.float32))
        rows = arrays[0].shape[0]
        for name, a in zip(self.top_names, arrays):
            if a.shape[0] != rows:
                raise self.error(f"HDF5 file {filename}: dataset '{name}' has {a.shape[0]} rows but "
                                 f"'{self.top_names[0]}' has {rows}; every dataset needs the same number of rows")
        if rows == 0:
            raise self.error(f"HDF5 file {filename} holds no rows")
        if hasattr(self, "row_shapes"):
            for name, a, shape in zip(self.top_names, arrays, self.row_shapes):
                if a.shape[1:] != shape:
                    raise self.error(f"HDF5 file {filename}: rows of '{name}' have shape {a.shape[1:]}, but the "
                                     f"first file's have {shape}; all files must agree")
        return arrays

    def _open(self, filename):
        """Caffe's LoadHDF5FileData: read the file, and start a row permutation (shuffled if asked)."""
        self.arrays = self._read(filename)
        self.loaded = filename
        self._permute(len(self.arrays[0]))

    def _permute(self, rows):
        self.data_permutation = numpy.arange(rows)
        if self.shuffle:
            self.rng.shuffle(self.data_permutation)

    def _next(self):
        """Caffe's Next(): move to the next row; at the end of a file go on to the next file (or wrap)."""
        self.current_row += 1
        if self.current_row == len(self.data_permutation):
            self._end_of_file(read=True)

    def _end_of_file(self, read):
        if len(self.filenames) > 1:
            self.current_file += 1
            if self.current_file == len(self.filenames):
                self.current_file = 0
                if self.shuffle:
                    self.rng.shuffle(self.file_permutation)
            name = self.filenames[self.file_permutation[self.current_file]]
            if read:
                self._open(name)
            else:                        # the same generator draws as _open, from the row count alone
                import h5py
                with h5py.File(name, "r") as f:
                    self._permute(f[self.top_names[0]].shape[0])
        self.current_row = 0
        if self.shuffle:
            self.rng.shuffle(self.data_permutation)

    def fast_forward(self, batches):
        """Skip `batches` forward passes' worth of rows exactly as that many forwards would (shuffles included).

        A solver restoring a snapshot calls this, so that a resumed run reads what an uninterrupted run would have
        read. Files passed over are not read, only their row counts; the file it stops in is read.
        """
        left = int(batches) * self.batch_size
        while left:
            step = min(left, len(self.data_permutation) - self.current_row)
            left -= step
            self.current_row += step
            if self.current_row == len(self.data_permutation):
                self._end_of_file(read=False)
        name = self.filenames[self.file_permutation[self.current_file]]
        if name != self.loaded:
            self.arrays = self._read(name)
            self.loaded = name
        return self

    def reshape(self, bottom, top):
        pass                                      # tops keep their (batch_size, ...) shape from setup

    def forward(self, bottom, top):
        batch = [numpy.empty((self.batch_size,) + shape, dtype=numpy.float32) for shape in self.row_shapes]
        for i in range(self.batch_size):
            row = self.data_permutation[self.current_row]
            for b, a in zip(batch, self.arrays):
                b[i] = a[row]
            self._next()
        for t, b in zip(top, batch):
            t.data[...] = self.xp(t).asarray(b, dtype=t.dtype)

    def backward(self, top, propagate_down, bottom):
        pass                                      # data layers have no backward
