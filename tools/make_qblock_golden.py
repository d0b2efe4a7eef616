#!/usr/bin/env python3
"""Golden for tests/unit/test_qblock_kernels.c: float rows and their Q8_0
quantisation by gguf-py (gguf.quants.quantize, which reproduces ggml's
quantize_row_q8_0_ref byte for byte). Activations fed to the QBLOCK kernels
are quantised the same way (Q8_1 adds only the sum term).

Layout of tests/golden/qblock_q8_0.bin (little-endian):
  u32 n (a multiple of 32) | f32 x[n] | Q8_0 blocks of x (n/32 * 34 bytes)
Blocks use different scales (1e-3 .. 1e3), one block is all zeros, one
holds exact .5 ties of x/d (half away from zero in ggml), one has a single
non-zero value.
Usage: python3 tools/make_qblock_golden.py [out]  (default tests/golden/qblock_q8_0.bin)
"""
import struct
import sys

import numpy as np
from gguf import GGMLQuantizationType
from gguf.quants import quantize

out = sys.argv[1] if len(sys.argv) > 1 else "tests/golden/qblock_q8_0.bin"
rng = np.random.default_rng(20240601)
blocks = []
for i in range(60):
    scale = 10.0 ** rng.uniform(-3, 3)
    blocks.append((rng.standard_normal(32) * scale).astype(np.float32))
blocks.append(np.zeros(32, np.float32))
ties = (np.arange(32, dtype=np.float32) - 16.0) + 0.5  # amax 15.5 -> d = 15.5/127
ties[0] = 127.0  # amax 127 -> d = 1: x/d = k + .5 exactly
blocks.append(ties)
one = np.zeros(32, np.float32)
one[7] = -3.25
blocks.append(one)
blocks.append((rng.uniform(-1, 1, 32) * 1e-6).astype(np.float32))
x = np.concatenate(blocks).astype(np.float32)
q = quantize(x.reshape(1, -1), GGMLQuantizationType.Q8_0)
with open(out, "wb") as f:
    f.write(struct.pack("<I", x.size))
    f.write(x.tobytes())
    f.write(q.tobytes())
print(f"{out}: {x.size} values, {q.nbytes} bytes of Q8_0")
