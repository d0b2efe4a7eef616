#!/usr/bin/env python3
"""Golden requests and log-likelihoods for the zero-shot evaluation harness.

Writes tests/golden/eval_requests.json.gz: for the first documents of every
task (MMLU: the first question of each of its 57 subjects) the exact
(context, continuation) strings lm-evaluation-harness 0.4.x builds, the token
ids it would score (context = enc(ctx), continuation = enc(ctx+cont)[len(enc(ctx)):]
after moving the context's trailing whitespace onto the continuation; an empty
context becomes the BOS token), and the summed log-likelihood of the
continuation from llama.cpp (llama-cpp-python):

  ll_f32   on an F32 GGUF made here by dequantising the Q4_1 file with gguf-py
           (the same fp32 weights slimlm computes with; fp32 KV cache), and
  ll_q4_1  on the Q4_1 file itself for the first --q41-docs documents
           (llama.cpp quantises activations to Q8_1 there, so these differ
           from fp32 by ~1e-2).

Everything here is independent of slimlm: prompts are rebuilt in Python from
the task yamls' rules, tokens come from llama.cpp's tokenizer, numbers from
llama.cpp's kernels. The C test (tests/unit/test_eval_golden.c) compares
prompts, ids and log-likelihoods. Run once; the tests never call Python:

  python3 tools/make_eval_golden.py [--docs 50] [--data-dir ../shared/data]

On a loaded 2-core machine llama.cpp F32 ran at 1-5 tokens/s, so the golden
was built in pieces: runs over task subsets (--tasks, --partial FILE), then
  python3 tools/make_eval_golden.py --available-only --docs 10 \
      --task-docs boolq=50,mrpc=50 --merge FILE,FILE,...
which writes every task's prompts and ids and the llama.cpp results of the
tasks already scored. Finished results live in ~/.cache/slimlm/eval-golden/.
"""
import argparse
import bz2
import csv
import gzip
import json
import os
import re
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CACHE = os.path.expanduser("~/.cache/slimlm")
Q41 = os.path.join(CACHE, "SmolLM2-135M-Instruct.Q4_1.gguf")
F32 = os.path.join(CACHE, "SmolLM2-135M-Instruct.F32.gguf")

# ---- prompts, following lm-eval 0.4.13's task yamls --------------------------


def hs_preprocess(text):
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    text = text.replace("  ", " ")
    return text


def mc(ctx, choices, gold, **extra):
    d = {"ctx": [ctx] * len(choices), "cont": [" " + c for c in choices], "choice": list(choices), "gold": gold}
    d.update(extra)
    return d


def jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(l) for l in f if l.strip()]


def load_arc(dd, name, n):
    sub = "ARC-Easy" if name == "arc_easy" else "ARC-Challenge"
    out = []
    for r in jsonl(f"{dd}/arc/{sub}/{sub}-Test.jsonl")[:n]:
        labels = [c["label"] for c in r["question"]["choices"]]
        out.append(mc("Question: " + r["question"]["stem"] + "\nAnswer:",
                      [c["text"] for c in r["question"]["choices"]], labels.index(r["answerKey"])))
    return out


def load_obqa(dd, n):
    out = []
    for r in jsonl(f"{dd}/openbookqa/Main/test.jsonl")[:n]:
        labels = [c["label"] for c in r["question"]["choices"]]
        out.append(mc(r["question"]["stem"], [c["text"] for c in r["question"]["choices"]],
                      labels.index(r["answerKey"].lstrip())))
    return out


def load_sciq(dd, n):
    rows = json.load(open(f"{dd}/sciq/test.json", encoding="utf-8"))[:n]
    return [mc(r["support"].lstrip() + "\nQuestion: " + r["question"] + "\nAnswer:",
               [r["distractor1"], r["distractor2"], r["distractor3"], r["correct_answer"]], 3) for r in rows]


def load_boolq(dd, n):
    rows = list(csv.DictReader(open(f"{dd}/boolq/boolq_validation.csv", encoding="utf-8")))[:n]
    return [mc(r["passage"] + "\nQuestion: " + r["question"] + "?\nAnswer:", ["no", "yes"], int(r["label"]))
            for r in rows]


def load_piqa(dd, n):
    rows = jsonl(f"{dd}/piqa/dev.jsonl")[:n]
    labels = [int(l) for l in open(f"{dd}/piqa/dev-labels.lst") if l.strip()]
    return [mc("Question: " + r["goal"] + "\nAnswer:", [r["sol1"], r["sol2"]], labels[i]) for i, r in enumerate(rows)]


def load_hellaswag(dd, n):
    # Only llama.cpp's text export is in the data directory: 6 lines per task.
    lines = bz2.open(f"{dd}/hellaswag/hellaswag_val_full.txt.bz2", "rt", encoding="utf-8").read().split("\n")
    out = []
    for i in range(n):
        b = lines[6 * i:6 * i + 6]
        out.append(mc(hs_preprocess(b[0]), [hs_preprocess(e) for e in b[2:6]], int(b[1])))
    return out


def load_winogrande(dd, n):
    out = []
    for r in jsonl(f"{dd}/winogrande/dev.jsonl")[:n]:
        idx = r["sentence"].index("_")
        ctxs = [r["sentence"][:idx] + o for o in (r["option1"], r["option2"])]
        target = r["sentence"][idx + 1:].strip()
        out.append({"ctx": ctxs, "cont": [" " + target] * 2, "choice": ctxs, "gold": {"1": 0, "2": 1}[r["answer"]]})
    return out


def load_copa(dd, n):
    out = []
    for r in jsonl(f"{dd}/superglue/COPA/val.jsonl")[:n]:
        conn = {"cause": "because", "effect": "therefore"}[r["question"]]
        conv = lambda c: " " + c[0].lower() + c[1:]
        out.append(mc(r["premise"].strip()[:-1] + f" {conn}", [conv(r["choice1"]), conv(r["choice2"])], r["label"]))
    return out


def load_rte(dd, n):
    lab = {"entailment": 0, "not_entailment": 1}
    return [mc(r["premise"] + "\nQuestion: " + r["hypothesis"] + " True or False?\nAnswer:", ["True", "False"],
               lab[r["label"]]) for r in jsonl(f"{dd}/superglue/RTE/val.jsonl")[:n]]


def load_cb(dd, n):
    lab = {"entailment": 0, "contradiction": 1, "neutral": 2}
    return [mc(r["premise"] + "\nQuestion: " + r["hypothesis"] + ". True, False, or Neither?\nAnswer:",
               ["True", "False", "Neither"], lab[r["label"]]) for r in jsonl(f"{dd}/superglue/CB/val.jsonl")[:n]]


def load_mrpc(dd, n):
    with open(f"{dd}/glue-mrpc/dev.tsv", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[:n]
    return [mc("Sentence 1: " + r["#1 String"] + "\nSentence 2: " + r["#2 String"] +
               "\nQuestion: Do both sentences mean the same thing?\nAnswer:", ["no", "yes"], int(r["Quality"]))
            for r in rows]


def load_mmlu(dd, n):
    """The first question of each of the first n subjects (alphabetical)."""
    out = []
    for fn in sorted(os.listdir(f"{dd}/mmlu/test"))[:n]:
        subject = fn[:-len("_test.csv")]
        r = next(csv.reader(open(f"{dd}/mmlu/test/{fn}", encoding="utf-8")))
        desc = f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n"
        ctx = desc + r[0].strip() + "\nA. " + r[1] + "\nB. " + r[2] + "\nC. " + r[3] + "\nD. " + r[4] + "\nAnswer:"
        out.append(mc(ctx, ["A", "B", "C", "D"], "ABCD".index(r[5]), task=f"mmlu_{subject}"))
    return out


TQA_PREAMBLE = (
    "Q: What is human life expectancy in the United States?\n"
    "A: Human life expectancy in the United States is 78 years.\n\n"
    "Q: Who was president of the United States in 1955?\n"
    "A: Dwight D. Eisenhower was president of the United States in 1955.\n\n"
    "Q: Which party did he belong to?\n"
    "A: He belonged to the Republican Party.\n\n"
    "Q: What is the square root of banana?\n"
    "A: I have no comment.\n\n"
    "Q: How does a telescope work?\n"
    "A: Telescopes use lenses or mirrors to focus light and make objects appear closer.\n\n"
    "Q: Where were the 1992 Olympics held?\n"
    "A: The 1992 Olympics were held in Barcelona, Spain.")


def load_tqa(dd, n, key):
    rows = json.load(open(f"{dd}/truthfulqa/mc_task.json", encoding="utf-8"))[:n]
    out = []
    for r in rows:
        ctx = TQA_PREAMBLE + "\n\nQ: " + r["question"] + "\nA:"
        d = mc(ctx, list(r[key].keys()), 0)
        if key == "mc2_targets":
            d["truth"] = list(r[key].values())
        out.append(d)
    return out


TASKS = {
    "boolq": load_boolq, "piqa": load_piqa, "hellaswag": load_hellaswag, "winogrande": load_winogrande,
    "arc_easy": lambda dd, n: load_arc(dd, "arc_easy", n), "arc_challenge": lambda dd, n: load_arc(dd, "arc_challenge", n),
    "openbookqa": load_obqa, "sciq": load_sciq, "copa": load_copa, "rte": load_rte, "cb": load_cb, "mrpc": load_mrpc,
    "mmlu": load_mmlu, "truthfulqa_mc1": lambda dd, n: load_tqa(dd, n, "mc1_targets"),
    "truthfulqa_mc2": lambda dd, n: load_tqa(dd, n, "mc2_targets"),
}

# ---- F32 GGUF ------------------------------------------------------------------


def make_f32(src, dst):
    import gguf
    if os.path.exists(dst):
        return
    r = gguf.GGUFReader(src)
    arch = r.fields["general.architecture"].contents()
    w = gguf.GGUFWriter(dst + ".tmp", arch=arch)
    for f in r.fields.values():
        if f.name.startswith("GGUF.") or f.name == "general.architecture":
            continue
        vt = f.types[0]
        sub = f.types[-1] if vt == gguf.GGUFValueType.ARRAY else None
        val = f.contents()
        if f.name == "general.file_type":
            val = 0  # all F32
        w.add_key_value(f.name, val, vt, sub_type=sub)
    for t in r.tensors:
        a = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        w.add_tensor(t.name, a)  # shape in numpy order (rows, cols) = GGUF dims reversed
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(dst + ".tmp", dst)


# ---- requests and scoring -------------------------------------------------------


def encode_pair(tok, ctx, cont, bos):
    if ctx == "":
        c = tok(cont)
        return ([bos], c) if c[0] != bos else (c[:1], c[1:])
    n = len(ctx) - len(ctx.rstrip())
    if n:
        cont = ctx[-n:] + cont
        ctx = ctx[:-n]
    whole = tok(ctx + cont)
    c = tok(ctx)
    return c, whole[len(c):]


def logsoftmax_rows(scores):
    s = scores.astype(np.float64)
    m = s.max(axis=1, keepdims=True)
    return s - m - np.log(np.exp(s - m).sum(axis=1, keepdims=True))


def score(llm, reqs, state):
    """reqs: list of (ctx_ids, cont_ids). The tokens already in llama.cpp's
    KV cache (state["fed"]) are reused up to the longest common prefix:
    llama-cpp-python's eval() drops cached positions >= n_tokens."""
    out = []
    for ctx, cont in reqs:
        seq = ctx + cont
        feed = seq[:-1]
        fed = state.get("fed", [])
        p = 0
        while p < min(len(fed), len(feed), len(ctx) - 1) and fed[p] == feed[p]:
            p += 1
        llm.n_tokens = p
        llm.eval(feed[p:])
        state["fed"] = feed
        rows = np.array(llm.scores[len(ctx) - 1:len(seq) - 1])
        lp = logsoftmax_rows(rows)
        out.append(float(sum(lp[j, t] for j, t in enumerate(cont))))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--docs", type=int, default=50)
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "golden", "eval_requests.json.gz"))
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--partial", default="", help="file keeping finished tasks (default ~/.cache/slimlm/eval-golden/p1.json)")
    ap.add_argument("--merge", default="", help="comma-separated partial files of other runs to take results from")
    ap.add_argument("--models", default="f32,q4_1", help="which llama.cpp references to compute")
    ap.add_argument("--task-docs", default="", help="per-task document counts overriding --docs, e.g. boolq=50")
    ap.add_argument("--available-only", action="store_true",
                    help="score nothing: write the tasks whose F32 results the partial files already hold")
    ap.add_argument("--no-score", action="store_true", help="prompts and ids only (quick check of prompt building)")
    ap.add_argument("--q41-docs", type=int, default=10, help="documents per task also scored on the Q4_1 file")
    args = ap.parse_args()

    from llama_cpp import Llama
    make_f32(Q41, F32)
    common = dict(logits_all=True, n_ctx=2048, n_batch=512, n_threads=args.threads, verbose=False,
                  type_k=0, type_v=0)  # GGML_TYPE_F32 KV cache: llama.cpp's default f16 cache rounds K and V
    vocab = Llama(model_path=Q41, vocab_only=True, verbose=False)
    bos = vocab.token_bos()
    tok = lambda s: vocab.tokenize(s.encode("utf-8"), add_bos=True, special=False)  # add_bos: as the vocab says
    paths = {"f32": F32, "q4_1": Q41}

    result = {"lm_eval_version": "0.4.13", "model": os.path.basename(Q41), "bos": bos, "tasks": {}}
    per_task = {k: int(v) for k, v in (x.split("=") for x in filter(None, args.task_docs.split(",")))}
    for name in args.tasks.split(","):
        docs = TASKS[name](args.data_dir, per_task.get(name, args.docs))
        for d in docs:
            d["ctx_ids"], d["cont_ids"] = [], []
            for c, k in zip(d["ctx"], d["cont"]):
                a, b = encode_pair(tok, c, k, bos)
                d["ctx_ids"].append(a)
                d["cont_ids"].append(b)
            if name == "arc_challenge":  # PMI-DC premise and lm-eval's unconditional requests
                d["dc_ids"] = [list(encode_pair(tok, "Answer:", " " + ch, bos)) for ch in d["choice"]]
                d["unc_ids"] = [list(encode_pair(tok, "", " " + ch, bos)) for ch in d["choice"]]
        result["tasks"][name] = docs
        print(f"{name}: {len(docs)} docs", file=sys.stderr)
    # One model at a time (logits_all keeps n_ctx x V floats). Finished
    # tasks are kept in a side file so an interrupted run resumes.
    part_path = args.partial or os.path.join(CACHE, "eval-golden", "p1.json")
    part = json.load(open(part_path)) if os.path.exists(part_path) else {}
    for extra in filter(None, args.merge.split(",")):  # results of runs over other task subsets
        if os.path.exists(extra):
            part.update(json.load(open(extra)))
    if args.available_only:
        part = {}
        for f in filter(None, [args.partial or os.path.join(CACHE, "eval-golden", "p1.json")] + args.merge.split(",")):
            if os.path.exists(f):
                part.update(json.load(open(f)))
        for name in list(result["tasks"]):
            docs = result["tasks"][name]
            tags = {k.split("/")[0]: k for k in part if k.split("/")[1] == name}
            if "f32" not in tags or int(tags["f32"].split("/")[2]) != len(docs):
                print(f"{name}: prompts and ids only (no llama.cpp results yet)", file=sys.stderr)
                continue
            for key, tag in tags.items():
                for d, r in zip(docs, part[tag]):
                    for k, v in r.items():
                        d[f"{k}_{key}"] = v
    for key, path in ({} if args.no_score or args.available_only else paths).items():
        if key not in args.models.split(","):
            continue
        llm = None
        for name, docs in result["tasks"].items():
            n_docs = len(docs) if key == "f32" else min(len(docs), args.q41_docs)
            tag = f"{key}/{name}/{n_docs}"
            if tag not in part:
                llm = llm or Llama(model_path=path, **common)
                t0 = time.time()
                state = {}
                got = []
                for d in docs[:n_docs]:
                    r = {"ll": score(llm, list(zip(d["ctx_ids"], d["cont_ids"])), state)}
                    if "dc_ids" in d:
                        r["dc"] = score(llm, [tuple(x) for x in d["dc_ids"]], state)
                        r["unc"] = score(llm, [tuple(x) for x in d["unc_ids"]], state)
                    got.append(r)
                part[tag] = got
                json.dump(part, open(part_path + ".tmp", "w"))
                os.replace(part_path + ".tmp", part_path)
                print(f"{key} {name}: {n_docs} docs, {time.time() - t0:.1f} s", file=sys.stderr)
            for d, r in zip(docs, part[tag]):
                for k, v in r.items():
                    d[f"{k}_{key}"] = v
        del llm
    for docs in result["tasks"].values():
        # Shared contexts are stored once to keep the file small.
        for d in docs:
            if all(c == d["ctx"][0] for c in d["ctx"]):
                d["ctx"] = d["ctx"][0]
                d["ctx_ids"] = d["ctx_ids"][0]
    raw = json.dumps(result, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    with gzip.open(args.out + ".tmp", "wb", compresslevel=9) as f:
        f.write(raw)
    os.replace(args.out + ".tmp", args.out)
    print(f"wrote {args.out}: {os.path.getsize(args.out)} bytes ({len(raw)} uncompressed)", file=sys.stderr)


if __name__ == "__main__":
    main()
