#!/usr/bin/env python3
"""The reference pipeline in numpy + tonic, timed: read a jAER AEDAT 2.0 recording
(numpy on the raw big-endian records; tonic's read_dvs_128 wrapper is broken from
1.4.3 on), slice it by its tag CSV, and bin every sample with
Downsample(time_factor=0.001), TimeAlignment(), ToFrame(time_window=dt), keep the
first T windows, zero-pad, transpose to [2, X, Y, T], OR mode.

Usage: pipeline_tonic.py RECORDING TAGS DT_MS STEPS REPEATS
Prints one line: `median_seconds checksum` (checksum = sum of all tensors' values,
computed in an extra untimed run).
"""
import sys
import time

import numpy as np
import tonic.transforms as T

SENSOR = (128, 128, 2)


def read_dvs128(path):
    raw = open(path, "rb").read()
    pos = 0
    while raw[pos:pos + 1] == b"#":
        pos = raw.index(b"\n", pos) + 1
    body = np.frombuffer(raw, dtype=">u4", offset=pos).reshape(-1, 2)
    addr = body[:, 0]
    ev = np.empty(len(body), dtype=[("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")])
    ev["x"] = (addr >> 8) & 0x7F
    ev["y"] = (addr >> 1) & 0x7F
    ev["p"] = addr & 1
    ev["t"] = body[:, 1]
    return ev


def pipeline(rec, tags, dt, steps, check):
    events = read_dvs128(rec)
    rows = np.loadtxt(tags, delimiter=",", skiprows=1, dtype=np.int64)
    transform = T.Compose([
        T.Downsample(time_factor=0.001),
        T.TimeAlignment(),
        T.ToFrame(sensor_size=SENSOR, time_window=dt),
    ])
    total = 0.0
    for _, start, end in rows:
        frames = transform(events[start:end])[:steps]
        if frames.shape[0] < steps:
            pad = np.zeros((steps - frames.shape[0],) + frames.shape[1:], dtype=frames.dtype)
            frames = np.concatenate([frames, pad])
        x = np.transpose(frames, (1, 3, 2, 0))
        x = (x > 0).astype(np.float32)
        if check:
            total += float(x.sum())
    return total


def main():
    rec, tags, dt, steps, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    total = pipeline(rec, tags, dt, steps, True)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        pipeline(rec, tags, dt, steps, False)
        times.append(time.perf_counter() - t0)
    print(f"{float(np.median(times)):.6f} {total:.0f}")


if __name__ == "__main__":
    main()
