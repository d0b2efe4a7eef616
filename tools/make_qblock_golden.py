#!/usr/bin/env python3
"""Golden for tests/unit/test_qblock_kernels.c: float rows and their Q8_0
quantisation two ways:
  ref  gguf-py (gguf.quants.quantize, which reproduces ggml's portable
       quantize_row_q8_0_ref byte for byte): id = 1/(amax/127), ties away
       from zero;
  x86  what llama.cpp's CPU backend runs on any AVX machine
       (ggml-cpu/arch/x86/quants.c quantize_row_q8_0 / _q8_1): id =
       127/amax, _mm256_round_ps(_MM_ROUND_NEAREST), i.e. ties to even;
       written here in numpy float32 (np.rint is ties-to-even).
The QBLOCK kernels follow x86, since llama.cpp's numbers on x86 are the ones
users compare with (numpy's x86 emulation of the Q8_0 lm head matched
llama-cpp-python's logits to 7e-6); the test requires byte equality with
x86 and reports how many blocks differ from ref. Q8_1 adds only the sum term.

Layout of tests/golden/qblock_q8_0.bin (little-endian):
  u32 n (a multiple of 32) | f32 x[n] | ref blocks (n/32 * 34 bytes) | x86 blocks
Blocks use different scales (1e-3 .. 1e3), one block is all zeros, one
holds exact .5 ties of x/d, one has a single non-zero value.
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


def quantize_x86(x):
    xb = x.reshape(-1, 32)
    amax = np.abs(xb).max(axis=1).astype(np.float32)
    d = (amax / np.float32(127)).astype(np.float32)
    with np.errstate(divide="ignore"):
        idv = np.where(amax != 0, np.float32(127) / amax, np.float32(0)).astype(np.float32)
    qs = np.rint((xb * idv[:, None]).astype(np.float32)).astype(np.int8)
    out = np.zeros((xb.shape[0], 34), np.uint8)
    out[:, :2] = d.astype(np.float16).view(np.uint8).reshape(-1, 2)
    out[:, 2:] = qs.view(np.uint8)
    return out


q86 = quantize_x86(x)
with open(out, "wb") as f:
    f.write(struct.pack("<I", x.size))
    f.write(x.tobytes())
    f.write(q.tobytes())
    f.write(q86.tobytes())
diff = int((q.reshape(-1, 34) != q86).any(axis=1).sum())
print(f"{out}: {x.size} values, {q.nbytes} bytes of Q8_0 twice; {diff} blocks differ between ref and x86")
