#!/usr/bin/env python3
"""Golden perplexity values for tests/unit/test_ppl*.c, from llama.cpp.

llama.cpp (through llama-cpp-python) is the independent reference: the same
GGUF, its own tokenizer and forward pass. This script re-runs, in Python,
exactly the two protocols that src/eval/perplexity.c implements, so the C
code can be checked against numbers it had no part in making. It is never
called by the tests; run it once and commit the small JSON files it writes.

  llamacpp  llama.cpp tools/perplexity/perplexity.cpp (perplexity()):
            read the file, drop one trailing '\\n' (common/arg.cpp -f),
            tokenize once with add_special=true / parse_special=false,
            n_chunk = n_tok / n_ctx non-overlapping chunks, first token of a
            chunk replaced by BOS when the vocab adds BOS, KV cache cleared
            per chunk, score logits n_ctx/2 .. n_ctx-2 (next-token NLL).
            Writes ppl_llamacpp_ctx<N>.json (running [i] values per chunk,
            final PPL and llama.cpp's stderr).
  lmeval    lm-evaluation-harness 0.4.13 task `wikitext` (wikitext-2-raw-v1):
            documents split as EleutherAI/wikitext_document_level does,
            preprocess_wikitext.wikitext_detokenizer, loglikelihood_rolling
            with utils.get_rolling_token_windows(context_len=1) +
            make_disjoint_window, prefix token = BOS (else EOS), words and
            bytes counted on the original page. Writes ppl_lmeval_*.json.

Usage (from the repository root; ~10 minutes per full protocol on 2 cores):
  nice python3 tools/make_ppl_golden.py llamacpp
  nice python3 tools/make_ppl_golden.py lmeval-docs      # few docs, small ctx (test)
  nice python3 tools/make_ppl_golden.py lmeval-full      # all 62 docs, model ctx (report)
  python3 tools/make_ppl_golden.py lmeval-full --no-model --out ppl_lmeval_docstats.json
                                                         # split/detokenizer/counts only (test_ppl_wikitext)
"""
import argparse
import json
import math
import os
import re
import sys
import time
import zlib

import numpy as np

DEFAULT_MODEL = os.path.expanduser("~/.cache/slimlm/SmolLM2-135M-Instruct.Q4_1.gguf")
DEFAULT_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data",
                            "wikitext-2-raw", "wiki.test.raw")
GOLDEN_DIR = os.path.join(os.path.dirname(__file__), "..", "tests", "golden")


# ---- lm-eval pieces, transcribed from lm_eval 0.4.13 --------------------------
# (EleutherAI/wikitext_document_level wikitext_document_level.py,
#  lm_eval/tasks/wikitext/preprocess_wikitext.py, lm_eval/utils.py)

def wikitext_documents(raw_text):
    """EleutherAI/wikitext_document_level _generate_examples on the raw file."""
    ret, pages = [], []
    for line in raw_text.split("\n"):
        rline = line.replace("= = =", "===").replace("= =", "==").strip()
        if rline.startswith("= ") and rline.strip().endswith(" ="):
            page = "\n".join(ret)
            if page.strip():
                pages.append(page)
            ret = []
        ret.append(line)
    pages.append("\n".join(ret))
    return pages


def wikitext_detokenizer(string):
    string = string.replace("s '", "s'")
    string = re.sub(r"/' [0-9]/", r"/'[0-9]/", string)
    string = string.replace(" @-@ ", "-")
    string = string.replace(" @,@ ", ",")
    string = string.replace(" @.@ ", ".")
    string = string.replace(" : ", ": ")
    string = string.replace(" ; ", "; ")
    string = string.replace(" . ", ". ")
    string = string.replace(" ! ", "! ")
    string = string.replace(" ? ", "? ")
    string = string.replace(" , ", ", ")
    string = re.sub(r"\(\s*([^\)]*?)\s*\)", r"(\1)", string)
    string = re.sub(r"\[\s*([^\]]*?)\s*\]", r"[\1]", string)
    string = re.sub(r"{\s*([^}]*?)\s*}", r"{\1}", string)
    string = re.sub(r"\"\s*([^\"]*?)\s*\"", r'"\1"', string)
    string = re.sub(r"'\s*([^']*?)\s*'", r"'\1'", string)
    string = string.replace("= = = =", "====")
    string = string.replace("= = =", "===")
    string = string.replace("= =", "==")
    string = string.replace(" " + chr(176) + " ", chr(176))
    string = string.replace(" \n", "\n")
    string = string.replace("\n ", "\n")
    string = string.replace(" N ", " 1 ")
    string = string.replace(" 's", "'s")
    return string


def get_rolling_token_windows(token_list, prefix_token, max_seq_len, context_len):
    assert 1 <= context_len <= max_seq_len
    if not token_list:
        return
    pred_len = max_seq_len - context_len + 1
    predicted = 0
    first_seq_len = min(max_seq_len, len(token_list))
    yield [prefix_token] + token_list[: first_seq_len - 1], token_list[:first_seq_len]
    predicted += first_seq_len
    while predicted < len(token_list):
        window_pred_len = min(len(token_list) - predicted, pred_len)
        window_end = predicted + window_pred_len
        yield (token_list[window_end - max_seq_len - 1: window_end - 1],
               token_list[window_end - window_pred_len: window_end])
        predicted += window_pred_len


def make_disjoint_window(pair):
    a, b = pair
    return a[: len(a) - (len(b) - 1)], b


def check_against_lm_eval(pages):
    """Checks the transcription against lm_eval's own code when it can be
    found: an installed lm_eval, or LM_EVAL_SRC=<unpacked lm_eval wheel>
    (e.g. `pip download lm_eval==0.4.13 --no-deps` and unzip; its two
    files are loaded by path, so lm_eval's heavy dependencies are not needed)."""
    import importlib.util

    def load(name, path):
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    root = os.environ.get("LM_EVAL_SRC")
    if root is None:
        spec = importlib.util.find_spec("lm_eval")
        root = os.path.dirname(os.path.dirname(spec.origin)) if spec else None
    if root is None:
        print("lm_eval not found: using the transcription above unchecked", file=sys.stderr)
        return
    pw = load("lm_eval_preprocess_wikitext", os.path.join(root, "lm_eval/tasks/wikitext/preprocess_wikitext.py"))
    lu = load("lm_eval_utils", os.path.join(root, "lm_eval/utils.py"))
    for p in pages:
        assert pw.wikitext_detokenizer({"page": p}) == wikitext_detokenizer(p)
    toks = list(range(1000))
    for n in (1, 7, 127, 128, 129, 999, 1000):
        a = list(map(lu.make_disjoint_window, lu.get_rolling_token_windows(toks[:n], -1, 128, 1)))
        b = list(map(make_disjoint_window, get_rolling_token_windows(toks[:n], -1, 128, 1)))
        assert a == b, n
    print(f"transcription matches lm_eval at {root}", file=sys.stderr)


# ---- numerics -------------------------------------------------------------------

def log_softmax_at(logits_rows, targets):
    """log p(target) per row, in float64 (rows: [n][V] float32)."""
    x = np.asarray(logits_rows, dtype=np.float64)
    m = x.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(x - m).sum(axis=1))
    return x[np.arange(len(targets)), targets] - lse


def dequantized_copy(model):
    """An all-F32 copy of the GGUF made by llama.cpp itself (llama_model_quantize
    with LLAMA_FTYPE_ALL_F32). llama.cpp multiplies Q4_1 weights by activations
    quantised to Q8_1, which moves PPL by ~0.5%; on the F32 copy it computes
    in fp32 from exactly the weight values slimlm dequantises, so the two can
    be compared closely."""
    import ctypes
    import llama_cpp
    out = os.path.join("/tmp", os.path.basename(model).replace(".gguf", ".dequant-f32.gguf"))
    if not os.path.exists(out):
        p = llama_cpp.llama_model_quantize_default_params()
        p.ftype = 0  # LLAMA_FTYPE_ALL_F32
        p.allow_requantize = True
        if llama_cpp.llama_model_quantize(model.encode(), out.encode(), ctypes.byref(p)) != 0:
            sys.exit("llama_model_quantize failed")
    return out


def load_llama(model, n_ctx, threads):
    import llama_cpp
    return llama_cpp.Llama(model_path=model, n_ctx=n_ctx, n_batch=512, logits_all=True,
                           n_threads=threads, n_threads_batch=threads, verbose=False)


def eval_logits(llm, tokens):
    llm.reset()
    llm.eval(tokens)
    return llm.scores[: len(tokens)]


# ---- protocols -----------------------------------------------------------------

def run_llamacpp(args):
    with open(args.data, "rb") as f:
        raw = f.read()
    text = raw[:-1] if raw.endswith(b"\n") else raw  # common/arg.cpp: one trailing '\n' dropped
    llm = load_llama(args.model, args.ctx, args.threads)
    add_bos = llm._model.add_bos_token() if hasattr(llm._model, "add_bos_token") else False
    tokens = llm.tokenize(text, add_bos=True, special=False)  # add_special=true, as common_tokenize(ctx, prompt, true)
    n_ctx = args.ctx
    n_chunk_max = len(tokens) // n_ctx
    n_chunk = n_chunk_max if args.chunks < 0 else min(args.chunks, n_chunk_max)
    first = n_ctx // 2
    nll = nll2 = 0.0
    count = 0
    running, running_err, chunk_nll = [], [], []
    t0 = time.time()
    # --first-chunk: score only chunks from there on (a long run split over
    # sessions); chunk_nll / chunk_nll2 let the parts be combined exactly.
    chunk_nll2 = []
    def result():
        mean = nll / count
        var = nll2 / count - mean * mean
        ppl = math.exp(mean)
        err = math.sqrt(var / (count - 1)) * ppl
        return ppl, err, {
            "reference": "llama-cpp-python " + __import__("llama_cpp").__version__ +
                         ", llama.cpp tools/perplexity protocol",
            "model": args.model_name, "dequantized_f32": args.dequantize,
            "data": os.path.basename(args.data), "data_bytes": len(raw), "ctx": n_ctx, "add_bos": bool(add_bos),
            "n_tokens_file": len(tokens), "n_chunks": n_chunk, "n_scored": count,
            "ppl": ppl, "stderr": err, "first_chunk": args.first_chunk, "chunks_done": len(chunk_nll),
            "running_ppl": running, "running_stderr": running_err,
            "chunk_nll": chunk_nll, "chunk_nll2": chunk_nll2,
            "first_tokens": list(tokens[:16]),
            "seconds": time.time() - t0,
        }

    name = args.out or f"ppl_llamacpp{args.tag}_ctx{n_ctx}.json"
    for i in range(args.first_chunk, n_chunk):
        chunk = list(tokens[i * n_ctx:(i + 1) * n_ctx])
        if add_bos:
            chunk[0] = llm.token_bos()
        logits = eval_logits(llm, chunk)
        lp = log_softmax_at(logits[first:n_ctx - 1], chunk[first + 1:n_ctx])
        v = -lp
        nll += v.sum()
        nll2 += (v * v).sum()
        count += len(v)
        chunk_nll.append(float(v.sum()))
        chunk_nll2.append(float((v * v).sum()))
        running.append(math.exp(nll / count))
        m_, v_ = nll / count, nll2 / count - (nll / count) ** 2
        running_err.append(math.sqrt(v_ / (count - 1)) * running[-1])
        print(f"[{i + 1}]{running[-1]:.4f},", end="", flush=True, file=sys.stderr)
        if len(chunk_nll) % 25 == 0:  # a partial file survives an interrupted run
            write_json(name, result()[2])
    print(file=sys.stderr)
    ppl, err, out = result()
    print(f"PPL = {ppl:.4f} +/- {err:.5f}  ({time.time() - t0:.0f} s)", file=sys.stderr)
    write_json(name, out)


def lmeval_doc(llm, tokens, prefix, max_len):
    """Sum of log-likelihoods of one document, as HFLM.loglikelihood_rolling."""
    ll, n_win = 0.0, 0
    for ctx, cont in map(make_disjoint_window,
                         get_rolling_token_windows(tokens, prefix, max_len, 1)):
        inp = (ctx + cont)[-(max_len + 1):][:-1]
        logits = eval_logits(llm, inp)
        rows = logits[len(inp) - len(cont):len(inp)]
        ll += float(log_softmax_at(rows, cont).sum())
        n_win += 1
    return ll, n_win


def run_lmeval(args, docs_sel):
    with open(args.data, encoding="utf-8") as f:
        raw = f.read()
    pages = wikitext_documents(raw)
    check_against_lm_eval(pages)
    max_len = args.ctx
    llm = load_llama(args.model, max_len, args.threads) if not args.no_model else None
    if llm is None:
        import llama_cpp
        llm_tok = llama_cpp.Llama(model_path=args.model, vocab_only=True, verbose=False)
    else:
        llm_tok = llm
    # lm-eval's prefix token: the tokenizer's BOS, else its EOS (HFLM.prefix_token_id).
    bos, eos = llm_tok.token_bos(), llm_tok.token_eos()
    prefix = bos if bos >= 0 else eos
    docs = []
    tot_ll = tot_words = tot_bytes = 0
    t0 = time.time()
    for i, page in enumerate(pages):
        text = wikitext_detokenizer(page)
        # HF tokenizers add BOS only when the tokenizer says so: add_special=true here too.
        tokens = list(llm_tok.tokenize(text.encode("utf-8"), add_bos=True, special=False))
        d = {"index": i, "words": len(re.split(r"\s+", page)),
             "bytes": len(page.encode("utf-8")), "page_bytes": len(page.encode("utf-8")),
             "text_bytes": len(text.encode("utf-8")),
             "text_crc32": zlib.crc32(text.encode("utf-8")), "n_tokens": len(tokens)}
        if llm is not None and (docs_sel is None or i in docs_sel):
            ll, nw = lmeval_doc(llm, tokens, prefix, max_len)
            d["loglik"], d["n_windows"] = ll, nw
            tot_ll += ll
            tot_words += d["words"]
            tot_bytes += d["bytes"]
            print(f"doc {i}: {len(tokens)} tokens, ll {ll:.3f}", file=sys.stderr, flush=True)
        docs.append(d)
    out = {
        "reference": "llama-cpp-python " + __import__("llama_cpp").__version__ +
                     ", lm-evaluation-harness 0.4.13 wikitext protocol",
        "model": args.model_name, "dequantized_f32": args.dequantize,
        "data": os.path.basename(args.data), "max_length": max_len, "prefix_token": prefix, "n_docs": len(pages),
        "scored_docs": [] if args.no_model else
                       sorted(docs_sel) if docs_sel is not None else list(range(len(pages))),
        "documents": docs,
    }
    if tot_words:
        out.update({
            "loglik": tot_ll, "words": tot_words, "bytes": tot_bytes,
            "word_perplexity": math.exp(-tot_ll / tot_words),
            "byte_perplexity": math.exp(-tot_ll / tot_bytes),
            "bits_per_byte": -tot_ll / tot_bytes / math.log(2),
            "seconds": time.time() - t0,
        })
        print(f"word_perplexity {out['word_perplexity']:.4f} byte_perplexity "
              f"{out['byte_perplexity']:.4f} bits_per_byte {out['bits_per_byte']:.4f}", file=sys.stderr)
    write_json(args.out or f"ppl_lmeval_{args.mode.split('-')[1]}{args.tag}_ctx{max_len}.json", out)


def write_json(name, obj):
    path = os.path.join(GOLDEN_DIR, name)
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
    os.replace(path + ".tmp", path)
    print("wrote", os.path.normpath(path), file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["llamacpp", "lmeval-docs", "lmeval-full"])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--ctx", type=int, default=0, help="llamacpp: 512; lmeval-docs: 128; lmeval-full: 8192")
    ap.add_argument("--chunks", type=int, default=-1)
    ap.add_argument("--first-chunk", type=int, default=0, help="llamacpp: start at this chunk (0-based)")
    ap.add_argument("--docs", default="28,29,14", help="lmeval-docs: document indices to score")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-model", action="store_true", help="lmeval: document statistics only")
    ap.add_argument("--out", default=None)
    ap.add_argument("--dequantize", action="store_true",
                    help="run llama.cpp on an F32 copy of the model (fp32 activations, as slimlm)")
    args = ap.parse_args()
    args.model_name = os.path.basename(args.model)
    if args.dequantize:
        args.model = dequantized_copy(args.model)
    args.tag = "_f32" if args.dequantize else ""
    if args.mode == "llamacpp":
        args.ctx = args.ctx or 512
        run_llamacpp(args)
    elif args.mode == "lmeval-docs":
        args.ctx = args.ctx or 128
        run_lmeval(args, {int(x) for x in args.docs.split(",")})
    else:
        args.ctx = args.ctx or 8192  # SmolLM2: max_position_embeddings = 8192 (lm-eval's max_length)
        run_lmeval(args, None)


if __name__ == "__main__":
    main()
