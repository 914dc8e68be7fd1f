"""Split insertion, as Caffe's util/insert_splits.cpp.

A top blob read by more than one bottom (or read once and also weighted as a loss) gets a
"Split" layer right after its producer, named `<blob>_<layer>_<top index>_split`, whose tops
`<blob>_<layer>_<top index>_split_<k>` feed the consumers in net order. Each consumer then
writes its own bottom diff, and the Split layer sums them: layers can overwrite bottom diffs.

A loss-weighted top that is also consumed passes its loss weight to the split's first top
(`split_0`), the producer's loss_weight list is cleared, and consumers start at `split_1`.
"""
from netspec import caffe_pb2 as pb
from netspec.errors import NetDefinitionError

# The producer name Caffe used for deprecated net-level `input` blobs (read_net turns them
# into an Input layer of that name, so the split names come out the same either way).
INPUT_LAYER_NAME = "input"


def split_layer_name(blob_name, layer_name, top_index):
    return f"{blob_name}_{layer_name}_{top_index}_split"


def split_blob_name(blob_name, layer_name, top_index, split_index):
    return f"{blob_name}_{layer_name}_{top_index}_split_{split_index}"


def insert_splits(net_param):
    """Return a copy of `net_param` with Split layers inserted where blobs fan out."""
    producer_of, consumers, loss_weight = _count_uses(net_param)
    names = {-1: INPUT_LAYER_NAME}
    names.update((i, layer.name) for i, layer in enumerate(net_param.layer))
    next_split = {}  # (layer, top) -> index of the next split top to hand out

    out = pb.NetParameter()
    out.CopyFrom(net_param)
    out.ClearField("layer")
    for i, blob in enumerate(net_param.input):
        if consumers.get((-1, i), 0) > 1:
            out.layer.append(_split_layer(INPUT_LAYER_NAME, blob, i, consumers[(-1, i)], 0.0))
    for i, layer in enumerate(net_param.layer):
        new = out.layer.add()
        new.CopyFrom(layer)
        for j, blob in enumerate(layer.bottom):
            source = producer_of[(i, j)]
            if consumers.get(source, 0) > 1:
                k = next_split.get(source, 0)
                next_split[source] = k + 1
                new.bottom[j] = split_blob_name(blob, names[source[0]], source[1], k)
        for j, blob in enumerate(layer.top):
            count = consumers.get((i, j), 0)
            if count <= 1:
                continue
            weight = loss_weight.get((i, j), 0.0)
            out.layer.append(_split_layer(layer.name, blob, j, count, weight))
            if weight:
                # The split's first top now carries the loss; Caffe clears the whole list.
                new.ClearField("loss_weight")
                next_split[(i, j)] = next_split.get((i, j), 0) + 1
    return out


def _count_uses(net_param):
    """Map each bottom to the top it reads, count reads per top (a nonzero loss weight counts
    as one read), and record each top's loss weight. Tops are (layer index, top index), with
    layer -1 for net-level `input` blobs."""
    last_top = {blob: (-1, i) for i, blob in enumerate(net_param.input)}
    producer_of, consumers, loss_weight = {}, {}, {}
    for i, layer in enumerate(net_param.layer):
        for j, blob in enumerate(layer.bottom):
            if blob not in last_top:
                raise NetDefinitionError(f"Unknown bottom blob '{blob}' (layer '{layer.name}', bottom index {j}): "
                                         f"no earlier layer has it as a top")
            producer_of[(i, j)] = last_top[blob]
            consumers[last_top[blob]] = consumers.get(last_top[blob], 0) + 1
        for j, blob in enumerate(layer.top):
            last_top[blob] = (i, j)
        for j in range(min(len(layer.loss_weight), len(layer.top))):
            source = last_top[layer.top[j]]
            loss_weight[source] = layer.loss_weight[j]
            if layer.loss_weight[j]:
                consumers[source] = consumers.get(source, 0) + 1
    return producer_of, consumers, loss_weight


def _split_layer(layer_name, blob_name, top_index, count, loss_weight):
    """Caffe's ConfigureSplitLayer."""
    split = pb.LayerParameter(name=split_layer_name(blob_name, layer_name, top_index), type="Split",
                              bottom=[blob_name])
    for k in range(count):
        split.top.append(split_blob_name(blob_name, layer_name, top_index, k))
        if loss_weight:
            split.loss_weight.append(loss_weight if k == 0 else 0.0)
    return split
