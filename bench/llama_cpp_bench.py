#!/usr/bin/env python3
"""llama.cpp's side of bench/run_forward_bench.sh: prefill of a T-token chunk
(last-token logits, as llama.cpp computes by default) and token-by-token
decode, best of --reps, through llama-cpp-python with the same thread count
and n_batch 512. Also reports peak RSS (VmHWM) of this process. Prints JSON.

  python3 bench/llama_cpp_bench.py MODEL.gguf [--threads 2] [--prefill 512] [--decode 128] [--reps 5]
"""
import argparse
import json
import time

import llama_cpp


def vm_hwm_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return -1.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prefill", type=int, default=512)
    ap.add_argument("--decode", type=int, default=128)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    llm = llama_cpp.Llama(a.model, n_ctx=a.prefill + a.decode, n_batch=512, n_ubatch=512, n_threads=a.threads,
                          n_threads_batch=a.threads, logits_all=False, verbose=False)
    # the same token ids as bench_forward.c
    toks = [(i * 7919 + 13) % llm.n_vocab() for i in range(a.prefill + a.decode)]
    best_pp = 1e30
    for k in range(a.reps + 1):  # the first run pages the weights in
        llm.reset()
        llm._ctx.kv_cache_clear()
        t = time.perf_counter()
        llm.eval(toks[:a.prefill])
        t = time.perf_counter() - t
        if k > 0:
            best_pp = min(best_pp, t)
    best_tg = 1e30
    for k in range((a.reps + 1) // 2 + 1):
        llm.reset()
        llm._ctx.kv_cache_clear()
        t = time.perf_counter()
        for i in range(a.decode):
            llm.eval([toks[i]])
        best_tg = min(best_tg, time.perf_counter() - t)
    print(json.dumps({"prefill_tok_s": a.prefill / best_pp, "decode_tok_s": a.decode / best_tg,
                      "peak_rss_mib": vm_hwm_mib(), "threads": a.threads, "version": llama_cpp.__version__}))


if __name__ == "__main__":
    main()
