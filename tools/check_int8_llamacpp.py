#!/usr/bin/env python3
"""Does llama.cpp load and agree with what `slimlm quantize --int8` writes?

1. `slimlm quantize SRC --int8 --gguf-q8_0 Q8 -o INT8`: slimlm's int8 GGUF
   (its own layout, which llama.cpp does not read) and the source model as
   a standard GGUF Q8_0 (llama.cpp's own 32-weight blocks with fp16 scales).
2. Reference files made independently with gguf-py (tools/check_gguf_llamacpp.py):
   the source dequantised to F32, and the same weights quantised to Q8_0 by
   gguf.quants.quantize.
3. llama-cpp-python loads slimlm's Q8_0 file and computes the logits of
   every position of a few prompts: they must equal those of gguf-py's Q8_0
   file exactly (same bytes in); the difference to F32 is the cost of Q8_0.
4. Greedy continuations (N tokens) of each prompt: llama.cpp on F32 and on
   slimlm's Q8_0, slimlm's `generate --temp 0` on its int8 GGUF and on the
   source in fp32: the table says how many characters each shares with
   llama.cpp's F32 text (slimlm and llama.cpp differ in summation order, so
   identical texts are likely but not guaranteed).

Never called by the tests. Usage:
  python3 tools/check_int8_llamacpp.py [--slimlm build/slimlm] [--model SRC.gguf] [--work DIR] [--tokens N]
Prints tables; exit status 1 if llama.cpp cannot load the Q8_0 file or its
logits differ from gguf-py's Q8_0 file.
"""
import argparse
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_gguf_llamacpp as cg  # noqa: E402  (gguf-py references, llama.cpp logits)


def greedy_llamacpp(path, prompts, n):
    from llama_cpp import Llama
    llm = Llama(model_path=path, n_ctx=512, n_batch=256, n_threads=2, verbose=False, type_k=0, type_v=0,
                logits_all=True)
    outs = []
    for p in prompts:
        ids = llm.tokenize(p.encode("utf-8"), add_bos=True, special=True)
        llm.reset()
        llm.eval(ids)
        gen = []
        for _ in range(n):
            t = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            if t == llm.token_eos():
                break
            gen.append(t)
            llm.eval([t])
        outs.append(llm.detokenize(gen).decode("utf-8", errors="replace"))
    del llm
    return outs


def greedy_slimlm(slimlm, path, prompts, n, extra=()):
    outs = []
    for p in prompts:
        r = subprocess.run([slimlm, "generate", path, "-p", p, "-n", str(n), "--temp", "0", "-q", "-t", "2", *extra],
                           capture_output=True, text=True, check=True)
        outs.append(r.stdout.rstrip("\n"))
    return outs


def common_prefix(a, b):
    k = 0
    while k < min(len(a), len(b)) and a[k] == b[k]:
        k += 1
    return k


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--slimlm", default=os.path.join(here, "..", "build", "slimlm"))
    ap.add_argument("--model", default=os.path.expanduser("~/.cache/slimlm/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--work", default="/tmp/slimlm-int8-check")
    ap.add_argument("--tokens", type=int, default=24)
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    q8 = os.path.join(args.work, "slimlm_q8_0.gguf")
    i8 = os.path.join(args.work, "slimlm_int8.gguf")
    subprocess.run([args.slimlm, "quantize", args.model, "--int8", "--gguf-q8_0", q8, "-o", i8, "-q", "-t", "2"],
                   check=True, stdout=subprocess.DEVNULL)
    ref_f32 = os.path.join(args.work, "ggufpy_f32.gguf")
    ref_q8 = os.path.join(args.work, "ggufpy_q8_0.gguf")
    cg.make_reference(args.model, ref_f32, "f32")
    cg.make_reference(args.model, ref_q8, "q8_0")

    ok = True
    try:
        ts, ls = cg.logits_of(q8, cg.PROMPTS)
    except Exception as e:  # llama.cpp refused the file
        print(f"llama.cpp cannot load {q8}: {e}")
        return 1
    tg, lg = cg.logits_of(ref_q8, cg.PROMPTS)
    tf, lf = cg.logits_of(ref_f32, cg.PROMPTS)
    if ts != tg or ts != tf:
        print("token ids differ between slimlm's and gguf-py's files")
        ok = False
    d_same, top_same = cg.compare(ls, lg)
    d_ref, top_ref = cg.compare(ls, lf)
    ok = ok and d_same == 0.0
    print(f"source: {os.path.basename(args.model)}; prompts: {len(cg.PROMPTS)}, "
          f"{sum(len(t) for t in ts)} positions (llama-cpp-python)")
    print("| file | loads in llama.cpp | max abs diff vs gguf-py Q8_0 | top-1 agree | max abs diff vs F32 | top-1 agree |")
    print("|---|---|---|---|---|---|")
    print(f"| `slimlm quantize --gguf-q8_0` | yes | {d_same:.3g} | {100 * top_same:.1f}% | {d_ref:.3g} | "
          f"{100 * top_ref:.1f}% |")

    n = args.tokens
    texts = {
        "llama.cpp F32": greedy_llamacpp(ref_f32, cg.PROMPTS, n),
        "llama.cpp Q8_0 (slimlm's file)": greedy_llamacpp(q8, cg.PROMPTS, n),
        "slimlm fp32": greedy_slimlm(args.slimlm, args.model, cg.PROMPTS, n, ("--dequantize",)),
        "slimlm int8 (LLM.int8)": greedy_slimlm(args.slimlm, i8, cg.PROMPTS, n),
    }
    base = texts["llama.cpp F32"]
    print(f"\ngreedy continuations ({n} tokens): characters shared with llama.cpp F32 / its length, per prompt")
    print("| engine | " + " | ".join(f"prompt {i + 1}" for i in range(len(cg.PROMPTS))) + " |")
    print("|---|" + "---|" * len(cg.PROMPTS))
    for name, outs in texts.items():
        cells = [f"{common_prefix(o, b)}/{len(b)}" for o, b in zip(outs, base)]
        print(f"| {name} | " + " | ".join(cells) + " |")
    for name, outs in texts.items():
        print(f"\n{name}:")
        for o in outs:
            print("  " + repr(o))
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
