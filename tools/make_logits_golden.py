#!/usr/bin/env python3
"""Golden next-token log-probabilities from llama.cpp for tests/unit/test_forward_golden.c.

llama.cpp (llama-cpp-python) is the independent reference: its own tokenizer
and forward pass on the same weights. For each fixed prompt this writes the
token ids llama.cpp produced (so the C test does not depend on slimlm's
tokenizer) and the log-softmax of the last position.

Two references, because llama.cpp multiplies Q4_1 weights against
activations quantised to Q8_1, which moves its logits away from exact fp32
math on the same weights:
  logits_smollm2_f32.json   the Q4_1 file dequantised to an F32 GGUF with
                            gguf-py (tools/gguf_requant.py): llama.cpp then
                            runs fp32 matmuls; slimlm (which dequantises Q4_1
                            on load: identical weights) must match it closely.
  logits_smollm2_q4_1.json  the Q4_1 GGUF itself (llama.cpp's quantised path).
The KV cache is kept in F32 (type_k = type_v = F32, no flash attention) so
llama.cpp's attention is fp32 too.

To stay small (tests/golden is for small files) each prompt stores the 256
most likely tokens plus every 32nd vocabulary id: ~1.8k of 49152 values,
log-softmax computed over the full vocabulary in float64.

Usage: python3 tools/make_logits_golden.py [--model Q4_1.gguf] [--data-dir DIR]
"""
import argparse
import json
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gguf_requant import requant  # noqa: E402

DEFAULT_MODEL = os.path.expanduser("~/.cache/slimlm/SmolLM2-135M-Instruct.Q4_1.gguf")
DEFAULT_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")
GOLDEN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden")
TOP = 256
STRIDE = 32
LONG_TOKENS = 700  # longer than one 512-token batch: exercises chunking and far RoPE positions

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return",
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "<|im_start|>user\nWhat is 12 * 7?<|im_end|>\n<|im_start|>assistant\n",
    "Ünïcödé façade — naïve café 😀 2024-11-23: π ≈ 3.14159, and",
    "Once upon a time, in a small village at the edge of a vast forest, there lived an old clockmaker who",
]


def long_prompt(data_dir):
    with open(os.path.join(data_dir, "wikitext-2-raw", "wiki.test.raw"), encoding="utf-8") as f:
        return f.read(6000)


def run(model_path, prompts):
    import llama_cpp
    llm = llama_cpp.Llama(model_path, n_ctx=1024, n_batch=512, n_threads=2, n_threads_batch=2,
                          logits_all=False, type_k=0, type_v=0, flash_attn=False, verbose=False)
    out = []
    for text in prompts:
        toks = llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)
        if len(toks) > LONG_TOKENS:
            toks = toks[:LONG_TOKENS]
        llm.reset()
        llm.eval(toks)
        lg = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).astype(np.float64)
        mx = lg.max()
        lsm = lg - (mx + np.log(np.exp(lg - mx).sum()))
        out.append((text, [int(t) for t in toks], lsm))
    return out, llama_cpp.__version__


def write(path, desc, results, version, ref_ids=None):
    prompts = []
    for i, (text, toks, lsm) in enumerate(results):
        # The same ids in both files (chosen from the F32 reference) so the test compares like with like.
        ids = ref_ids[i] if ref_ids else sorted(set(np.argsort(-lsm)[:TOP].tolist()) | set(range(0, len(lsm), STRIDE)))
        prompts.append({"text": text, "tokens": toks, "argmax": int(lsm.argmax()), "ids": [int(x) for x in ids],
                        "logprobs": [round(float(lsm[x]), 6) for x in ids]})
    doc = {"made_by": "tools/make_logits_golden.py", "reference": f"llama-cpp-python {version}", "model": desc,
           "n_vocab": int(len(results[0][2])), "prompts": prompts}
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
    os.replace(tmp, path)
    print(f"wrote {path} ({os.path.getsize(path) / 1024:.0f} KiB)", file=sys.stderr)
    return [p["ids"] for p in prompts]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--data-dir", default=DEFAULT_DATA)
    a = ap.parse_args()
    prompts = PROMPTS + [long_prompt(a.data_dir)]
    with tempfile.TemporaryDirectory() as td:
        f32 = os.path.join(td, "f32.gguf")
        requant(a.model, f32, "F32")
        res_f32, ver = run(f32, prompts)
    res_q, _ = run(a.model, prompts)
    for (t1, k1, _), (t2, k2, _) in zip(res_f32, res_q):
        assert k1 == k2, "tokenisation differs between the two files"
    ids = write(os.path.join(GOLDEN_DIR, "logits_smollm2_f32.json"),
                "SmolLM2-135M-Instruct Q4_1 dequantised to F32 by gguf-py; llama.cpp fp32 matmuls, F32 KV cache",
                res_f32, ver)
    write(os.path.join(GOLDEN_DIR, "logits_smollm2_q4_1.json"),
          "SmolLM2-135M-Instruct Q4_1 as shipped; llama.cpp Q4_1 x Q8_1 matmuls, F32 KV cache", res_q, ver, ids)
    for (text, toks, l1), (_, _, l2) in zip(res_f32, res_q):
        print(f"{len(toks):4d} tokens  max|F32 - Q4_1| over the vocabulary = {np.abs(l1 - l2).max():.4f}", file=sys.stderr)


if __name__ == "__main__":
    main()
