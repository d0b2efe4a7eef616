#!/usr/bin/env python3
"""Do llama.cpp and slimlm agree on the GGUF files slimlm writes?

1. Reference files made independently with gguf-py: every tensor of the
   source GGUF dequantised with gguf.quants.dequantize and written with
   gguf.GGUFWriter, all metadata copied (F32), plus the same weights stored
   as F16 / BF16 / Q8_0 by gguf-py (numpy astype / gguf.quants.quantize;
   1-D tensors stay F32, as llama.cpp's converter does).
2. slimlm's files: `slimlm convert SRC -o x.gguf --dtype T` for each T.
3. llama-cpp-python loads each file, tokenises a few prompts (token ids
   must agree: slimlm writes the tokenizer metadata itself) and computes
   the logits of every position. slimlm's T file is compared with gguf-py's
   T file (expected identical: same bytes in, same logits out) and with the
   F32 reference (the cost of the type).

Usage: python3 tools/check_gguf_llamacpp.py [--slimlm build/slimlm] [--model SRC.gguf] [--work DIR]
Prints a table; exit status 1 if an identical pair differs or token ids differ.
"""
import argparse
import os
import subprocess
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    if n < 2:\n        return n",
    "In 1969, Neil Armstrong became the first person to walk on the Moon. He said:",
    "<|im_start|>user\nWhat is 17 * 23?<|im_end|>\n<|im_start|>assistant\n",
]
TYPES = {"f32": T.F32, "f16": T.F16, "bf16": T.BF16, "q8_0": T.Q8_0}
FILE_TYPE = {"f32": 0, "f16": 1, "bf16": 32, "q8_0": 7}


def copy_metadata(r, w, file_type):
    for key, f in r.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue  # header fields; the architecture is set by GGUFWriter(arch=...)
        if key == "general.file_type":
            w.add_uint32(key, file_type)
            continue
        vtype = f.types[0]
        val = f.contents()
        if vtype == gguf.GGUFValueType.ARRAY:
            w.add_key_value(key, val, vtype, sub_type=f.types[-1])
        else:
            w.add_key_value(key, val, vtype)


def make_reference(src, out, tname):
    if os.path.exists(out):
        return
    r = gguf.GGUFReader(src)
    arch = r.fields["general.architecture"].contents()
    w = gguf.GGUFWriter(out + ".tmp", arch=arch)
    copy_metadata(r, w, FILE_TYPE[tname])
    qt = TYPES[tname]
    for t in r.tensors:
        x = dequantize(t.data, t.tensor_type).astype(np.float32)
        x = x.reshape([int(d) for d in reversed(t.shape)])
        if x.ndim == 1 or qt == T.F32:
            w.add_tensor(t.name, x)
        elif qt == T.F16:
            w.add_tensor(t.name, x.astype(np.float16))
        else:
            w.add_tensor(t.name, quantize(x, qt), raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(out + ".tmp", out)


def logits_of(path, prompts, kv_f32=False):
    """kv_f32: keep llama.cpp's KV cache in F32 (type 0) instead of its
    default F16, whose rounding moves logits by ~1e-2 (needed when the
    comparison is with another engine rather than llama.cpp itself)."""
    from llama_cpp import Llama
    kv = dict(type_k=0, type_v=0) if kv_f32 else {}
    llm = Llama(model_path=path, n_ctx=256, n_batch=256, logits_all=True, n_threads=2, verbose=False, **kv)
    toks, outs = [], []
    for p in prompts:
        ids = llm.tokenize(p.encode("utf-8"), add_bos=True, special=True)
        llm.reset()
        llm.eval(ids)
        toks.append(list(ids))
        outs.append(np.array(llm.scores[: len(ids)], dtype=np.float32))
    del llm
    return toks, outs


def compare(a, b):
    d = max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))
    top = np.mean(np.concatenate([np.argmax(x, -1) == np.argmax(y, -1) for x, y in zip(a, b)]))
    return d, top


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--slimlm", default=os.path.join(here, "..", "build", "slimlm"))
    ap.add_argument("--model", default=os.path.expanduser("~/.cache/slimlm/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--work", default="/tmp/slimlm-gguf-check")
    ap.add_argument("--types", default="f32,f16,bf16,q8_0")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    ok = True
    ref = {}
    rows = []
    for tname in args.types.split(","):
        gp = os.path.join(args.work, f"ggufpy_{tname}.gguf")
        sl = os.path.join(args.work, f"slimlm_{tname}.gguf")
        make_reference(args.model, gp, tname)
        subprocess.run([args.slimlm, "convert", args.model, "-o", sl, "--dtype", tname, "-q"], check=True)
        tg, lg = logits_of(gp, PROMPTS)
        ts, ls = logits_of(sl, PROMPTS)
        if tname == "f32":
            ref = {"toks": tg, "logits": lg}
        if ts != tg or ts != ref["toks"]:
            print(f"{tname}: token ids differ between slimlm's and gguf-py's files")
            ok = False
        d_same, top_same = compare(ls, lg)
        d_ref, top_ref = compare(ls, ref["logits"])
        rows.append((tname, sum(len(t) for t in ts), d_same, top_same, d_ref, top_ref))
        ok = ok and d_same == 0.0
    print(f"source: {os.path.basename(args.model)}; prompts: {len(PROMPTS)}")
    print("| type | positions | max abs diff vs gguf-py same type | top-1 agree | max abs diff vs F32 reference | top-1 agree |")
    print("|---|---|---|---|---|---|")
    for tname, n, d1, t1, d2, t2 in rows:
        print(f"| {tname.upper()} | {n} | {d1:.3g} | {100 * t1:.1f}% | {d2:.3g} | {100 * t2:.1f}% |")
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
