"""The reference network's two convolutions, forward and backward, in float32
and in bfloat16 on the CPU, through the venv's PyTorch (the libtorch the worker
links): whether this CPU's oneDNN runs bfloat16 convolutions faster than
float32 ones at all, which bounds what `[training] precision = "bf16"` can
gain in `scripts/bench-epoch.sh`.

    .venv/bin/python scripts/bench-conv-precision.py [--batch 100] [--reps 3]

bfloat16 runs as autocast does: input, weight and bias cast, the product in
bfloat16, the result back to float32. Prints milliseconds per layer and the
float32 / bfloat16 time ratio (above 1: bfloat16 faster) for channels-last
(the worker's CPU layout) and contiguous convolutions, and the CPU's bfloat16
instruction sets as oneDNN reports them.
"""

import argparse
import time

import torch

# (in channels, out channels, input side) of conv1 and conv2 at 128 x 128.
LAYERS = [(2, 20, 128), (20, 50, 63)]


def layer_seconds(dtype, channels_last, cin, cout, side, batch, reps):
    """Mean seconds of one forward and backward of a 3 x 3 convolution."""
    x = torch.randn(batch, cin, side, side)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(cin != 2)  # the first layer's input has no gradient
    w = torch.randn(cout, cin, 3, 3, requires_grad=True)
    b = torch.randn(cout, requires_grad=True)

    def step():
        y = torch.nn.functional.conv2d(x.to(dtype), w.to(dtype), b.to(dtype))
        y.float().backward(torch.ones(y.shape))

    step()  # oneDNN builds its primitives on first use
    start = time.perf_counter()
    for _ in range(reps):
        step()
    return (time.perf_counter() - start) / reps


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=100, help="T x N of a batch")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    isa = torch.backends.cpu.get_cpu_capability()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability {isa}")
    for channels_last in (True, False):
        layout = "channels-last" if channels_last else "contiguous"
        total = {}
        for dtype in (torch.float32, torch.bfloat16):
            total[dtype] = 0.0
            for cin, cout, side in LAYERS:
                s = layer_seconds(dtype, channels_last, cin, cout, side, args.batch, args.reps)
                total[dtype] += s
                name = str(dtype).replace("torch.", "")
                print(f"{layout:13} {name:8} conv {cin}->{cout} at {side}: {s * 1e3:8.1f} ms")
        ratio = total[torch.float32] / total[torch.bfloat16]
        print(f"{layout:13} float32 / bfloat16 time: {ratio:.2f} (above 1: bfloat16 faster)")


if __name__ == "__main__":
    main()
