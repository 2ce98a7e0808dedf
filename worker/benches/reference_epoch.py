"""One training epoch of SLANIMALSNet in the reference style
(benches/reference_step.py's network: every layer called once per time step
inside a Python loop) over frames written by `coordinator data frames`, timed.

Run by scripts/bench-epoch.sh beside `worker train` on the same samples:
  .venv/bin/python worker/benches/reference_epoch.py --frames DIR --batch 8 --threads 2 \
      [--experiment EXPERIMENT.toml]
The frames (one `<recording>_<NN>.npy` per sample, float32 [2, X, Y, T]) are
loaded before the clock starts; the epoch is forward, MSE loss on the one-hot
class, backward and an Adam step per batch, in file-name order.

With --experiment naming a file with a `[network] blocks = [...]` list, the
network is that block list built by the PyTorch builder of the network goldens
(worker/tests/fixtures/network_golden.py, imported, not copied: a LIF after
every conv and linear unless `lif = false`, a block's own tau/vth/a, else the
file's [simulation] values); without it, or without [network], SLANIMALSNet of
reference_step.py as before. Prints one JSON line: {"samples": ...,
"seconds": ..., "samples_per_second": ..., "network": compact name}.
"""
import argparse
import json
import pathlib
import sys
import time
import tomllib

import numpy as np
import torch
import torch.nn.functional as F

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests" / "fixtures"))
import network_golden  # noqa: E402
from reference_step import Net  # noqa: E402

REFERENCE = "c20k3-p2a-c50k3-p2a-f200-f19"


class BlockNet(torch.nn.Module):
    """network_golden.Net, returning the rates only (as reference_step's Net)."""

    def __init__(self, blocks, channels, side):
        super().__init__()
        self.net = network_golden.Net(blocks, channels, side)

    def forward(self, x):
        return self.net(x)[0]


def network(experiment, shape):
    """(model, compact name) for the experiment file's [network], or SLANIMALSNet."""
    if experiment is None:
        return Net(), REFERENCE
    with open(experiment, "rb") as f:
        config = tomllib.load(f)
    blocks = config.get("network", {}).get("blocks")
    if blocks is None:
        return Net(), REFERENCE
    sim = config.get("simulation", {})
    network_golden.TAU = sim.get("tau", 0.3)
    network_golden.VTH = sim.get("vth", 0.3)
    network_golden.A = sim.get("a", 0.5)
    channels, x, y = shape
    if x != y:
        sys.exit(f"frames of {x} x {y}: the block-list builder takes square input")
    return BlockNet(blocks, channels, x), network_golden.compact(blocks)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", required=True)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--experiment", help="experiment file whose [network] to build")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    files = sorted(pathlib.Path(a.frames).glob("*.npy"))
    if not files:
        sys.exit(f"no .npy frames in {a.frames}")
    inputs = torch.from_numpy(np.stack([np.load(f) for f in files])).float()
    labels = torch.tensor([int(f.stem.rsplit("_", 1)[1]) for f in files])
    net, name = network(a.experiment, tuple(inputs.shape[1:4]))
    opt = torch.optim.Adam(net.parameters(), lr=a.lr)
    start = time.perf_counter()
    for i in range(0, len(files), a.batch):
        x = inputs[i:i + a.batch]
        target = F.one_hot(labels[i:i + a.batch], 19).float()
        loss = F.mse_loss(net(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - start
    print(json.dumps({"samples": len(files), "seconds": seconds,
                      "samples_per_second": len(files) / seconds,
                      "network": name}))


if __name__ == "__main__":
    main()
