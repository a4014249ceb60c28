"""Feature evolution (ZF Fig. 4): one column per snapshot, each the strongest activation projected."""
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from convscope.analysis import feature_evolution, project_top, top_activations

torch.set_num_threads(1)


def _snapshot(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(3, 2), nn.Conv2d(4, 6, 3), nn.ReLU()).eval()


def test_columns_are_each_snapshots_strongest_activation():
    images = torch.randn(10, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    data = TensorDataset(images)
    loader = DataLoader(data, batch_size=4)
    loaded = []

    def snapshots():  # lazily, as the command loads checkpoints
        for epoch in (1, 5, 9):
            loaded.append(epoch)
            yield epoch, _snapshot(epoch)

    evo = feature_evolution(snapshots(), loader, data, channels={"3": [0, 5], "0": [2]}, progress=False)
    assert loaded == [1, 5, 9]
    fe = evo["3"]
    assert fe.epochs.tolist() == [1, 5, 9] and fe.channels.tolist() == [0, 5]
    assert fe.projections.shape[:2] == (3, 2) and fe.patches.shape == fe.projections.shape
    assert evo["0"].values.shape == (3, 1)
    for col, epoch in enumerate((1, 5, 9)):
        model = _snapshot(epoch)
        top = top_activations(model, loader, layer="3", k=1, progress=False)
        tp = project_top(model, top, data, channels=[0, 5])
        torch.testing.assert_close(fe.values[col], tp.values[:, 0])
        assert torch.equal(fe.index[col], tp.index[:, 0])
        torch.testing.assert_close(fe.projections[col], tp.projections[:, 0])
