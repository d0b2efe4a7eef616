#!/usr/bin/env python3
"""Golden files for the GGUF reader and the tensor types (tests/golden/).

Everything here comes from the `gguf` Python package (gguf-py, maintained
with llama.cpp), an implementation independent of slimlm's C code:

  dtype_golden.bin      random valid blocks of every type slimlm reads, with
                        the floats gguf.quants.dequantize gives for them; and
                        random floats with the bytes gguf.quants.quantize
                        gives for the types slimlm writes (F16, BF16, Q8_0).
  gguf_alltypes.gguf    a small GGUF v3 written by gguf.GGUFWriter with one
                        key of every metadata type, arrays (also of strings
                        and of arrays), and tensors of several types; the
                        expected values are listed in test_gguf.c and below.
  gguf_smollm2.txt      what gguf.GGUFReader sees in the SmolLM2 Q4_1 model:
                        counts, alignment, data offset, every tensor's type,
                        dims and offset, and the first / last 64 values of a
                        few tensors of each type (as float bit patterns).

Run: python3 tools/make_gguf_golden.py [model.gguf]  (default: the SmolLM2
file in ~/.cache/slimlm). Deterministic (fixed seed).

dtype_golden.bin layout (little-endian):
  "SLMDTYP1", u32 n_cases, then per case:
  u32 type (ggml id), u32 direction (0 = bytes -> floats, 1 = floats -> bytes),
  u32 n_elems, u32 n_bytes, n_bytes of block data, n_elems float32.
"""
import os
import struct
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "..", "tests", "golden")
DEFAULT_MODEL = os.path.expanduser("~/.cache/slimlm/SmolLM2-135M-Instruct.Q4_1.gguf")

# type -> (elements per block, bytes per block, byte offsets of fp16 scales)
LAYOUT = {
    T.Q4_0: (32, 18, [0]),
    T.Q4_1: (32, 20, [0, 2]),
    T.Q8_0: (32, 34, [0]),
    T.Q4_K: (256, 144, [0, 2]),
    T.Q5_K: (256, 176, [0, 2]),
    T.Q6_K: (256, 210, [208]),
}


def random_fp16_scales(rng, n):
    """Finite fp16 scales: mostly typical magnitudes, some subnormal / zero / negative."""
    v = (rng.standard_normal(n) * 0.05).astype(np.float16)
    special = np.array([0.0, -0.0, 6e-8, -3e-6, 1.0, -65504.0], dtype=np.float16)
    k = min(n, len(special))
    v[:k] = special[:k] if n > 8 else v[:k]
    rng.shuffle(v)
    return v


def block_cases(rng):
    cases = []
    for t, (bs, ts, scale_offs) in LAYOUT.items():
        nblk = 8 if bs == 32 else 4
        raw = rng.integers(0, 256, size=(nblk, ts), dtype=np.uint8)
        for off in scale_offs:
            raw[:, off:off + 2] = random_fp16_scales(rng, nblk).view(np.uint8).reshape(nblk, 2)
        vals = dequantize(raw.reshape(-1), t).astype(np.float32).reshape(-1)
        assert vals.size == nblk * bs and np.all(np.isfinite(vals))
        cases.append((int(t), 0, vals.size, raw.tobytes(), vals))
    # plain floats: fp16 / bf16 bit patterns (finite) -> floats
    h = rng.integers(0, 0x7C00, size=256, dtype=np.uint16) | (rng.integers(0, 2, 256, dtype=np.uint16) << 15)
    cases.append((int(T.F16), 0, 256, h.tobytes(), h.view(np.float16).astype(np.float32)))
    b = rng.integers(0, 0x7F80, size=256, dtype=np.uint16) | (rng.integers(0, 2, 256, dtype=np.uint16) << 15)
    cases.append((int(T.BF16), 0, 256, b.tobytes(), dequantize(b.view(np.uint8), T.BF16).astype(np.float32)))
    return cases


def quant_cases(rng):
    x = (rng.standard_normal(512) * 0.1).astype(np.float32)
    x[:32] = 0.0                       # an all-zero block (d = 0)
    x[32:64] = np.linspace(-1, 1, 32)  # exact halves: roundf ties away from zero
    x[64] = 1e-30                      # tiny values (fp16 / bf16 subnormal or zero)
    x[65] = 70000.0                    # beyond fp16 range -> inf
    x[66] = 1.00390625                 # bf16 tie -> even
    cases = []
    for t in (T.F16, T.BF16, T.Q8_0):
        src = x.copy()
        if t == T.Q8_0:
            src[65] = 3.0  # keep Q8_0's fp16 scale finite
        if t == T.F16:
            with np.errstate(over="ignore"):
                q = src.astype(np.float16).view(np.uint8)  # IEEE round to nearest even
        else:
            q = quantize(src, t).view(np.uint8)
        cases.append((int(t), 1, src.size, q.tobytes(), src))
    return cases


def write_dtype_golden(path):
    rng = np.random.default_rng(20240611)
    cases = block_cases(rng) + quant_cases(rng)
    with open(path, "wb") as f:
        f.write(b"SLMDTYP1" + struct.pack("<I", len(cases)))
        for t, d, n, raw, vals in cases:
            f.write(struct.pack("<IIII", t, d, n, len(raw)))
            f.write(raw)
            f.write(np.asarray(vals, dtype="<f4").tobytes())
    print(f"{path}: {len(cases)} cases, {os.path.getsize(path)} bytes")


def write_alltypes(path):
    """Every metadata type once; values mirrored in tests/unit/test_gguf.c."""
    w = gguf.GGUFWriter(path, arch="llama")  # adds general.architecture
    w.add_uint8("t.u8", 200)
    w.add_int8("t.i8", -100)
    w.add_uint16("t.u16", 60000)
    w.add_int16("t.i16", -30000)
    w.add_uint32("t.u32", 4000000000)
    w.add_int32("t.i32", -2000000000)
    w.add_float32("t.f32", 1.5)
    w.add_bool("t.bool", True)
    w.add_string("t.str", "héllo wörld")
    w.add_uint64("t.u64", 2**63 + 5)   # does not fit int64: getter must refuse
    w.add_int64("t.i64", -(2**40))
    w.add_float64("t.f64", 0.1)
    w.add_array("t.arr_i32", [1, -2, 3])
    w.add_key_value("t.arr_f32", [0.5, 0.25], gguf.GGUFValueType.ARRAY, sub_type=gguf.GGUFValueType.FLOAT32)
    w.add_array("t.arr_str", ["a", "", "ünï"])
    w.add_array("t.arr_arr", [[1, 2], [3]])
    w.add_tensor("f32", np.arange(6, dtype=np.float32).reshape(2, 3))
    w.add_tensor("f16", (np.arange(64, dtype=np.float32) / 8).astype(np.float16))
    q = quantize(np.linspace(-1, 1, 64, dtype=np.float32), T.Q8_0)
    w.add_tensor("q8", q.reshape(2, 34), raw_dtype=T.Q8_0)  # byte shape: 2 rows of one block
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"{path}: {os.path.getsize(path)} bytes")


def fbits(v):
    return " ".join("%08x" % x for x in np.asarray(v, dtype=np.float32).view(np.uint32))


def write_model_golden(model, path):
    r = gguf.GGUFReader(model)
    align = r.fields.get("general.alignment")
    align = int(align.contents()) if align else 32
    picks = {"token_embd.weight", "output_norm.weight", "blk.0.attn_norm.weight", "blk.0.attn_q.weight",
             "blk.0.attn_k.weight", "blk.29.ffn_down.weight", "blk.15.ffn_gate.weight"}
    with open(path, "w") as f:
        f.write("# made by tools/make_gguf_golden.py from %s with gguf-py\n" % os.path.basename(model))
        f.write("counts %d %d\n" % (len(r.tensors), len(r.fields) - 3))  # fields include 3 header entries
        f.write("alignment %d\n" % align)
        f.write("data_offset %d\n" % r.data_offset)
        for t in r.tensors:
            dims = " ".join(str(int(d)) for d in t.shape)
            f.write("tensor %s %d %d %d %s\n" % (t.name, int(t.tensor_type), int(t.data_offset) - r.data_offset,
                                                 len(t.shape), dims))
        for t in r.tensors:
            if t.name not in picks:
                continue
            v = dequantize(t.data, t.tensor_type).astype(np.float32).reshape(-1)
            f.write("values %s %d\n" % (t.name, v.size))
            f.write("first %s\n" % fbits(v[:64]))
            f.write("last %s\n" % fbits(v[-64:]))
    print(f"{path}: {os.path.getsize(path)} bytes")


def main():
    model = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_MODEL
    os.makedirs(GOLDEN, exist_ok=True)
    write_dtype_golden(os.path.join(GOLDEN, "dtype_golden.bin"))
    write_alltypes(os.path.join(GOLDEN, "gguf_alltypes.gguf"))
    write_model_golden(model, os.path.join(GOLDEN, "gguf_smollm2.txt"))


if __name__ == "__main__":
    main()
