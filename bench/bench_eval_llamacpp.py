#!/usr/bin/env python3
"""llama.cpp's side of bench/bench_eval.sh: scores the first N HellaSwag tasks
with llama-cpp-python on the same GGUF and thread count, building the same
requests lm-eval (and slimlm) build: context = preprocessed query, four
continuations " " + ending, continuation ids = enc(ctx+cont)[len(enc(ctx)):].

--mode full   every (context, ending) pair evaluated on its own, as lm-eval's
              llama.cpp backend and llama-perplexity --hellaswag process them
              (~4 x (context + ending) tokens per task);
--mode shared the context evaluated once per task and each ending on top of it
              (llama.cpp's KV cache kept up to the context), the same work
              slimlm does.
Prints one line: tasks, seconds, tokens evaluated, acc, acc_norm.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import make_eval_golden as g  # noqa: E402  (prompt building and lm-eval's pair encoding)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--limit", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mode", choices=["full", "shared"], default="full")
    args = ap.parse_args()
    from llama_cpp import Llama
    llm = Llama(model_path=args.model, logits_all=True, n_ctx=512, n_batch=512, n_threads=args.threads,
                n_threads_batch=args.threads, verbose=False)
    tok = lambda s: llm.tokenize(s.encode("utf-8"), add_bos=True, special=False)
    docs = g.load_hellaswag(args.data_dir, args.limit)
    t0 = time.time()
    n_tok = 0
    acc = acc_norm = 0
    for d in docs:
        lls = []
        for ctx, cont in zip(d["ctx"], d["cont"]):
            c, k = g.encode_pair(tok, ctx, cont, llm.token_bos())
            seq = c + k
            if args.mode == "shared" and lls:
                llm.n_tokens = len(c)
                llm.eval(seq[len(c):-1]) if len(k) > 1 else None
                n_tok += len(k) - 1
            else:
                llm.reset()
                llm.eval(seq[:-1])
                n_tok += len(seq) - 1
            lp = g.logsoftmax_rows(np.array(llm.scores[len(c) - 1:len(seq) - 1]))
            lls.append(float(sum(lp[j, t] for j, t in enumerate(k))))
        lens = [len(ch) for ch in d["choice"]]
        acc += int(np.argmax(lls) == d["gold"])
        acc_norm += int(np.argmax(np.array(lls) / lens) == d["gold"])
    dt = time.time() - t0
    n = len(docs)
    print(f"llama.cpp ({args.mode}): {n} tasks in {dt:.1f} s ({dt / n:.3f} s/task), {n_tok} tokens "
          f"({n_tok / n:.0f}/task, {n_tok / dt:.0f} tok/s), acc {acc / n:.4f}, acc_norm {acc_norm / n:.4f}")


if __name__ == "__main__":
    main()
