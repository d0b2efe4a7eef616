#!/usr/bin/env python3
"""Rewrite a GGUF with every weight matrix in one type (F32, BF16 or Q8_0),
dequantising with gguf-py and copying all metadata unchanged (except
general.file_type). 1-D tensors (norms) stay F32, as llama.cpp requires.

Used by tools/make_logits_golden.py (an exact-fp32 llama.cpp reference:
with F32 weights llama.cpp multiplies in fp32 instead of quantising the
activations to Q8_1) and by bench/run_forward_bench.sh (llama.cpp's F32,
BF16 and Q8_0 modes on the same weights). Never called by the tests.

  python3 tools/gguf_requant.py IN.gguf OUT.gguf --type F32|BF16|Q8_0
"""
import argparse
import os
import sys

import numpy as np
import gguf
from gguf.quants import dequantize, quantize

T = gguf.GGMLQuantizationType
FILE_TYPES = {"F32": (T.F32, gguf.LlamaFileType.ALL_F32), "BF16": (T.BF16, gguf.LlamaFileType.MOSTLY_BF16),
              "Q8_0": (T.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0)}


def requant(src, dst, type_name):
    qtype, ftype = FILE_TYPES[type_name]
    r = gguf.GGUFReader(src)
    arch = r.fields["general.architecture"].contents()
    tmp = dst + ".tmp"
    w = gguf.GGUFWriter(tmp, arch)
    for f in r.fields.values():
        if f.name.startswith("GGUF.") or f.name == "general.architecture":
            continue
        if f.name == "general.file_type":
            w.add_file_type(int(ftype))
            continue
        vtype = f.types[0]
        sub = f.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(f.name, f.contents(), vtype, sub_type=sub)
    for t in r.tensors:
        # numpy shape is GGUF dims reversed: [n_out, n_in] for a weight
        shape = [int(x) for x in reversed(t.shape.tolist())]
        x = dequantize(t.data, t.tensor_type).astype(np.float32).reshape(shape)
        if len(shape) == 1 or qtype == T.F32:
            w.add_tensor(t.name, x)
        else:
            q = quantize(x, qtype)
            w.add_tensor(t.name, q, raw_shape=q.shape, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(tmp, dst)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--type", default="F32", choices=sorted(FILE_TYPES))
    a = ap.parse_args()
    requant(a.src, a.dst, a.type)
    print(f"wrote {a.dst} ({os.path.getsize(a.dst) / 2**20:.1f} MiB, {a.type})", file=sys.stderr)


if __name__ == "__main__":
    main()
