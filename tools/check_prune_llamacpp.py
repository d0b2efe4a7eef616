#!/usr/bin/env python3
"""Does llama.cpp load the pruned GGUFs slimlm writes, with the right blocks?

For each truncation strategy: `slimlm prune SRC --drop K --strategy S -o
x.gguf` (slimlm's file), and independently with gguf-py a reference: the
source's tensors dequantised to F32, blocks not kept removed and the rest
renumbered 0..L-K-1, llama.block_count set to L-K (the kept block list is
read from slimlm's JSON report, so the check is about the written model,
not the selection rule, which tests/unit/test_prune.c covers). llama-cpp-
python computes the logits of every position of a few prompts on both
files; they must agree (same fp32 weights in both: max |d| ~1e-5 from
nothing but float summation order).

The same prune written as safetensors + config.json (a directory) is loaded
by transformers (AutoModelForCausalLM, fp32) and its logits for the same
token ids are compared with llama.cpp's on the reference (different engines,
both fp32 with llama.cpp's KV cache in F32: tolerance 1e-3).

Usage: python3 tools/check_prune_llamacpp.py [--slimlm build/slimlm] [--model SRC.gguf] [--drop 15]
Prints a table; exit status 1 if a pair differs by more than 1e-3 or token ids differ.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import gguf
from gguf.quants import dequantize

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_gguf_llamacpp import PROMPTS, copy_metadata, logits_of, compare  # noqa: E402


def make_reference(src, out, kept):
    r = gguf.GGUFReader(src)
    arch = r.fields["general.architecture"].contents()
    w = gguf.GGUFWriter(out + ".tmp", arch=arch)
    new_index = {old: new for new, old in enumerate(kept)}
    for key, f in r.fields.items():
        if key == f"{arch}.block_count":
            w.add_uint32(key, len(kept))
        elif key.startswith("GGUF.") or key == "general.architecture":
            continue
        else:
            vtype = f.types[0]
            if vtype == gguf.GGUFValueType.ARRAY:
                w.add_key_value(key, f.contents(), vtype, sub_type=f.types[-1])
            elif key == "general.file_type":
                w.add_uint32(key, 0)
            else:
                w.add_key_value(key, f.contents(), vtype)
    for t in r.tensors:
        m = re.match(r"blk\.(\d+)\.(.*)", t.name)
        name = t.name
        if m:
            if int(m.group(1)) not in new_index:
                continue
            name = f"blk.{new_index[int(m.group(1))]}.{m.group(2)}"
        x = dequantize(t.data, t.tensor_type).astype(np.float32).reshape([int(d) for d in reversed(t.shape)])
        w.add_tensor(name, x)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(out + ".tmp", out)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--slimlm", default=os.path.join(here, "..", "build", "slimlm"))
    ap.add_argument("--model", default=os.path.expanduser("~/.cache/slimlm/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--drop", type=int, default=15)
    ap.add_argument("--strategies", default="max-gap,input,output,middle,both")
    args = ap.parse_args()
    bad = False
    with tempfile.TemporaryDirectory() as work:
        print(f"{'strategy':<10} {'kept blocks':<60} {'max|d logit|':>12} {'argmax agree':>12}")
        for s in args.strategies.split(","):
            sl, js, ref = (os.path.join(work, f"{s}.{x}") for x in ("gguf", "json", "ref.gguf"))
            subprocess.run([args.slimlm, "prune", args.model, "--drop", str(args.drop), "--strategy", s,
                            "-o", sl, "--output", js, "-q"], check=True, stdout=subprocess.DEVNULL)
            kept = json.load(open(js))["kept_blocks"]
            make_reference(args.model, ref, kept)
            ta, la = logits_of(sl, PROMPTS, kv_f32=True)
            tb, lb = logits_of(ref, PROMPTS, kv_f32=True)
            d, top = compare(la, lb)
            ok = ta == tb and d <= 1e-3
            bad |= not ok
            print(f"{s:<10} {','.join(map(str, kept)):<60} {d:12.2e} {top:12.3f}{'' if ok else '  MISMATCH'}")
            if s == args.strategies.split(",")[0]:
                hf = os.path.join(work, f"{s}_hf")
                subprocess.run([args.slimlm, "prune", args.model, "--drop", str(args.drop), "--strategy", s,
                                "-o", hf, "-q"], check=True, stdout=subprocess.DEVNULL)
                import torch
                from transformers import AutoModelForCausalLM
                model = AutoModelForCausalLM.from_pretrained(hf, dtype=torch.float32)
                with torch.no_grad():
                    lh = [model(torch.tensor([t])).logits[0].numpy() for t in tb]
                dh, toph = compare(lh, lb)
                okh = dh <= 1e-3
                bad |= not okh
                print(f"{s + ' (transformers, safetensors)':<71} {dh:12.2e} {toph:12.3f}{'' if okh else '  MISMATCH'}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
