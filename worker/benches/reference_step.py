"""One STBP training step of SLANIMALSNet written in the reference style (every
layer called once per time step inside a Python loop, LIF state updated by
slice assignment, a custom autograd Function for the spike), timed.

Called by the `train_step` bench (cargo bench -p spikecv-worker --bench train_step)
so both implementations run in one session with the same thread count:
  .venv/bin/python worker/benches/reference_step.py --batch 8 --steps 50 --iters 3 --threads 2
Prints one JSON line: {"samples_per_second": ..., "seconds_per_step": ...,
"peak_rss_mib": ..., "minor_faults_per_step": ...}.
"""
import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

TAU, VTH, A = 0.3, 0.3, 0.5


class Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u):
        ctx.save_for_backward(u)
        return u.gt(VTH).float()

    @staticmethod
    def backward(ctx, grad):
        (u,) = ctx.saved_tensors
        return grad * (1 / A) * ((u - VTH).abs() < A / 2).float()


class PerStep(nn.Module):
    """Applies a layer to every time step (last dimension), as tdLayer does."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        steps = x.shape[-1]
        out = torch.zeros(self.layer(x[..., 0]).shape + (steps,), device=x.device)
        for t in range(steps):
            out[..., t] = self.layer(x[..., t])
        return out


class LIF(nn.Module):
    def forward(self, x):
        steps = x.shape[-1]
        u = torch.zeros(x.shape[:-1], device=x.device)
        out = torch.zeros(x.shape, device=x.device)
        for t in range(steps):
            u = TAU * u * (1 - out[..., max(t - 1, 0)]) + x[..., t]
            out[..., t] = Spike.apply(u)
        return out


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = PerStep(nn.Conv2d(2, 20, 3, 1))
        self.pool1 = PerStep(nn.AvgPool2d(2))
        self.conv2 = PerStep(nn.Conv2d(20, 50, 3, 1))
        self.pool2 = PerStep(nn.AvgPool2d(2))
        self.fc1 = PerStep(nn.Linear(45000, 200))
        self.fc2 = PerStep(nn.Linear(200, 19))
        self.spike = LIF()

    def forward(self, x):
        steps = x.shape[-1]
        x = self.pool1(self.spike(self.conv1(x)))
        x = self.pool2(self.spike(self.conv2(x)))
        x = x.view(x.shape[0], -1, steps)
        x = self.spike(self.fc1(x))
        x = self.spike(self.fc2(x))
        return x.sum(dim=2) / steps


def peak_rss():
    """This process's peak resident set size in MiB (Linux's VmHWM; getrusage's
    ru_maxrss would include the parent's peak, kept across fork and exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def minor_faults():
    """Minor page faults of this process so far (field 10 of /proc/self/stat)."""
    try:
        with open("/proc/self/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[7])
    except (OSError, IndexError, ValueError):
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--density", type=float, default=0.05)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--warmup", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    net = Net().to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = (torch.rand(a.batch, 2, 128, 128, a.steps) < a.density).float().to(dev)
    target = F.one_hot(torch.arange(a.batch) % 19, 19).float().to(dev)

    def step():
        out = net(x)
        loss = F.mse_loss(out, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(a.warmup):
        step()
    faults = minor_faults()
    start = time.perf_counter()
    for _ in range(a.iters):
        step()
    seconds = (time.perf_counter() - start) / a.iters
    faults_after = minor_faults()
    faults_per_step = None
    if faults is not None and faults_after is not None:
        faults_per_step = (faults_after - faults) // a.iters
    peak_rss_mib = peak_rss()
    print(json.dumps({"samples_per_second": a.batch / seconds, "seconds_per_step": seconds,
                      "peak_rss_mib": peak_rss_mib, "minor_faults_per_step": faults_per_step}))


if __name__ == "__main__":
    main()
