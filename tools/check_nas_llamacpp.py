#!/usr/bin/env python3
"""Does llama.cpp run an extracted NAS sub-network as slimlm does?

For a sub-network whose blocks differ in MLP width (and some blocks dropped),
`slimlm nas extract MODEL --arch '{"mlp_widths": [...]}' -o x.gguf` writes
the GGUF at the true per-block widths (general.architecture "deci", an INT32
deci.feed_forward_length array, tensors not padded), and with
--logits-tokens also dumps the logits of the *in-memory* sub-network (the
source model with the plan applied, as the search evaluates it) for the
token ids of each prompt. llama-cpp-python loads x.gguf (KV cache in F32)
and computes the logits of the same ids; they must agree to 1e-3 (both
fp32: the difference is float summation order). The file's metadata is
checked too: architecture deci, block count, per-block widths, tensor shapes.

Optionally (--channel-order) the MLP channels are first sorted by importance
(as `nas search --reorder` does), by passing a search file's channel order.

When transformers is installed, the safetensors extraction (zero-padded to
the widest block, since HF Llama has one intermediate_size) is loaded with
AutoModelForCausalLM and compared with the same logits (tolerance 1e-3).

Usage: python3 tools/check_nas_llamacpp.py [--slimlm build/slimlm] [--model SRC.gguf]
       [--arch JSON | --search FILE --member K]
Prints the comparison; exit status 1 on a mismatch. Never called by tests.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import gguf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_gguf_llamacpp import PROMPTS  # noqa: E402


def default_arch(n_layers=30, d_ff=1536):
    """25 blocks kept (first), alternating widths 768 / 1536, block 3 at 384."""
    w = [(d_ff // 2 if i % 2 else d_ff) if i < 25 else 0 for i in range(n_layers)]
    w[3] = d_ff // 4
    return {"mlp_widths": w}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--slimlm", default=os.path.join(here, "..", "build", "slimlm"))
    ap.add_argument("--model", default=os.path.expanduser("~/.cache/slimlm/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--arch", help='inline JSON {"mlp_widths": [...]} (default: a mixed 25-block sub-network)')
    ap.add_argument("--search", help="a nas search file; with --member K extracts front member K")
    ap.add_argument("--member", type=int, default=1)
    ap.add_argument("--work", default=tempfile.mkdtemp(prefix="slimlm-nas-check-"))
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    from llama_cpp import Llama

    arch_args = ["--arch", args.search, "--member", str(args.member)] if args.search else \
        ["--arch", args.arch or json.dumps(default_arch())]
    out = os.path.join(args.work, "sub.gguf")
    # token ids from llama.cpp's tokenizer on the source model, so both engines see the same ids
    src = Llama(model_path=args.model, n_ctx=256, vocab_only=True, verbose=False)
    ids = [list(src.tokenize(p.encode(), add_bos=True, special=True)) for p in PROMPTS]
    del src
    ok = True
    lo = os.path.join(args.work, "logits.f32")
    seqs = ";".join(",".join(map(str, t)) for t in ids)
    r = subprocess.run([args.slimlm, "nas", "extract", args.model, *arch_args, "-o", out, "-t", "2",
                        "--logits-tokens", seqs, "--logits-out", lo], capture_output=True, text=True)
    if r.returncode:
        print("slimlm failed:", r.stdout, r.stderr)
        return 1
    print(r.stdout.strip())
    rd = gguf.GGUFReader(out)
    arch = rd.fields["general.architecture"].contents()
    ff = rd.fields[f"{arch}.feed_forward_length"].contents()
    nb = rd.fields[f"{arch}.block_count"].contents()
    shapes = {t.name: [int(x) for x in t.shape] for t in rd.tensors}
    bad = [b for b in range(nb) if shapes[f"blk.{b}.ffn_gate.weight"][1] != ff[b]
           or shapes[f"blk.{b}.ffn_down.weight"][0] != ff[b]]
    print(f"{out}: general.architecture {arch}, {nb} blocks, feed_forward_length {ff}")
    if arch != "deci" or bad:
        print(f"FAIL: expected deci with unpadded tensors; blocks with other shapes: {bad}")
        ok = False
    llm = Llama(model_path=out, n_ctx=256, n_batch=256, logits_all=True, n_threads=2, verbose=False,
                type_k=0, type_v=0)
    V = llm.n_vocab()
    allmine = np.fromfile(lo, dtype=np.float32)
    hf_ref, off = [], 0
    for k, toks in enumerate(ids):
        mine = allmine[off: off + len(toks) * V].reshape(len(toks), V)
        off += len(toks) * V
        llm.reset()
        llm.eval(toks)
        theirs = np.array(llm.scores[: len(toks)], dtype=np.float32)
        d = float(np.max(np.abs(mine - theirs)))
        top = float(np.mean(np.argmax(mine, -1) == np.argmax(theirs, -1)))
        print(f"prompt {k}: {len(toks)} tokens, max|slimlm - llama.cpp| = {d:.2e} (logits up to "
              f"{np.max(np.abs(theirs)):.1f}), argmax agreement {top:.3f}")
        ok &= d < 1e-3 and top == 1.0
        hf_ref.append((toks, mine))
    try:
        import torch
        from transformers import AutoModelForCausalLM
    except ImportError:
        print("transformers not installed: safetensors check skipped")
        return 0 if ok else 1
    hf_dir = os.path.join(args.work, "sub_hf")
    r = subprocess.run([args.slimlm, "nas", "extract", args.model, *arch_args, "-o", hf_dir, "-t", "2"],
                       capture_output=True, text=True)
    if r.returncode:
        print("slimlm safetensors extract failed:", r.stderr)
        return 1
    model = AutoModelForCausalLM.from_pretrained(hf_dir, torch_dtype=torch.float32)
    model.eval()
    for k, (toks, mine) in enumerate(hf_ref):
        with torch.no_grad():
            hf = model(torch.tensor([toks])).logits[0].numpy()
        d = float(np.max(np.abs(mine - hf)))
        print(f"safetensors (padded) in transformers, prompt {k}: max|slimlm - transformers| = {d:.2e}")
        ok &= d < 1e-3
    print("OK" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
