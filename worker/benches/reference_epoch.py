"""One training epoch of SLANIMALSNet in the reference style
(benches/reference_step.py's network: every layer called once per time step
inside a Python loop) over frames written by `coordinator data frames`, timed.

Run by scripts/bench-epoch.sh beside `worker train` on the same samples:
  .venv/bin/python worker/benches/reference_epoch.py --frames DIR --batch 8 --threads 2
The frames (one `<recording>_<NN>.npy` per sample, float32 [2, X, Y, T]) are
loaded before the clock starts; the epoch is forward, MSE loss on the one-hot
class, backward and an Adam step per batch, in file-name order. Prints one JSON
line: {"samples": ..., "seconds": ..., "samples_per_second": ...}.
"""
import argparse
import json
import pathlib
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from reference_step import Net  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", required=True)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--lr", type=float, default=1e-3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    files = sorted(pathlib.Path(a.frames).glob("*.npy"))
    if not files:
        sys.exit(f"no .npy frames in {a.frames}")
    inputs = torch.from_numpy(np.stack([np.load(f) for f in files])).float()
    labels = torch.tensor([int(f.stem.rsplit("_", 1)[1]) for f in files])
    net = Net()
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
                      "samples_per_second": len(files) / seconds}))


if __name__ == "__main__":
    main()
