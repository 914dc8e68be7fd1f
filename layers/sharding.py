"""Disjoint data shares for data-parallel training (cf. Caffe's DataReader and HDF5DataLayer::Skip with
solver_count > 1), by batches: rank r of N reads the batches a single process would read at positions r, r+N,
r+2N, ... of its sequence, so that N ranks read, batch for batch, what one process with iter_size N reads.

A data layer takes part by defining fast_forward(batches): skip that many forward passes' worth of data exactly
as that many forwards would. HDF5Data, FCN's dataset layers (as "Python" layers and as their native types) and
SegFolderData define it; a user's Python layer opts in by defining it too. Other layers (Input, DummyData,
MemoryData) are left alone: every rank reads the same from them.

    shard = Shard(net, rank, count)      # once, after the net is built: each data layer moves to position `rank`
    ...                                  # after each of its forwards a data layer skips the other ranks' batches
    shard.skip_to(batches)               # restore: the position after `batches` batches of the single sequence
"""


def data_layers(net):
    """{layer index: layer} of the layers of `net` that can skip batches (define fast_forward)."""
    return {i: layer for i, layer in enumerate(net.layers) if hasattr(layer, "fast_forward")}


class Shard:
    """Rank `rank` of `count`'s share of `net`'s data. `position` counts the batches of the single sequence that
    all ranks together have gone past (a multiple of `count` while training); this rank reads position + rank."""

    def __init__(self, net, rank, count, position=0):
        if not 0 <= rank < count:
            raise ValueError(f"rank {rank} is not one of 0..{count - 1}")
        self.rank, self.count = rank, count
        self.layers = data_layers(net)
        self.position = int(position)        # where the data layers are already (a restore before sharding)
        self.first = min(self.layers) if self.layers else None
        for layer in self.layers.values():
            layer.fast_forward(rank)
        net.after_forward(self._after_forward)

    def _after_forward(self, layer_id):
        layer = self.layers.get(layer_id)
        if layer is not None:
            layer.fast_forward(self.count - 1)     # the batches ranks r+1..N-1 and 0..r-1 read
            if layer_id == self.first:
                self.position += self.count

    def skip_to(self, batches):
        """Go to where the single sequence is after `batches` batches (this rank then reads batch + rank)."""
        skip = int(batches) - self.position
        if skip < 0:
            raise ValueError(f"the data has gone past batch {batches} already (at {self.position})")
        for layer in self.layers.values():
            layer.fast_forward(skip)
        self.position = int(batches)
