#!/usr/bin/env python3
"""Paired accuracy difference of two models on the same documents.

    tools/paired_acc.py BASE.jsonl MODEL.jsonl [MODEL2.jsonl ...]

Each file is a `slimlm eval --tasks rom6 --log-samples FILE` log. For each
of the six tasks of issue #5's average (acc, or acc_norm where the paper
reports it: the per-document argmax of log-likelihood over the choice's
characters, as slimlm and lm-evaluation-harness compute it) the script pairs the two
models' per-document correctness and prints the mean difference and its
standard error sd(d) / sqrt(n). Pairing removes the documents' own
difficulty from the error: two models that agree on most documents differ
with a much smaller standard error than either accuracy has alone (the
unpaired SE of a six-task average at 500 documents is about 0.9 points).
The average's difference is the mean of the six, its SE sqrt(sum SE^2) / 6.
"""
import json
import math
import sys

TASKS = [("boolq", "acc"), ("piqa", "acc"), ("hellaswag", "acc_norm"), ("winogrande", "acc"),
         ("arc_easy", "acc"), ("arc_challenge", "acc_norm")]


def argmax(v):
    return max(range(len(v)), key=lambda i: (v[i], -i))


def correct(rec, metric):
    ll = rec["loglik"]
    if metric == "acc_norm":
        # the choice's characters, without the space slimlm (like the
        # harness's target delimiter) puts before it
        ll = [x / max(len(c[1:] if c.startswith(" ") else c), 1) for x, c in zip(ll, rec["continuations"])]
    return 1.0 if argmax(ll) == rec["gold"] else 0.0


def load(path):
    out = {}
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            out[(r["task"], r["doc_id"])] = r
    return out


def compare(base, other):
    rows, total, var = [], 0.0, 0.0
    for task, metric in TASKS:
        ids = sorted(k for k in base if k[0] == task and k in other)
        if not ids:
            sys.exit("paired_acc: no shared documents of task %s" % task)
        d = [correct(other[k], metric) - correct(base[k], metric) for k in ids]
        n = len(d)
        mean = sum(d) / n
        sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1)) if n > 1 else 0.0
        se = sd / math.sqrt(n)
        acc_b = 100 * sum(correct(base[k], metric) for k in ids) / n
        rows.append((task, metric, n, acc_b, acc_b + 100 * mean, 100 * mean, 100 * se))
        total += mean
        var += se * se
    return rows, 100 * total / len(TASKS), 100 * math.sqrt(var) / len(TASKS)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    base = load(sys.argv[1])
    for path in sys.argv[2:]:
        rows, avg, se = compare(base, load(path))
        print("%s vs %s" % (path, sys.argv[1]))
        print("| task | metric | docs | base | model | difference | paired SE |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for task, metric, n, a, b, d, s in rows:
            print("| %s | %s | %d | %.1f | %.1f | %+.2f | %.2f |" % (task, metric, n, a, b, d, s))
        ab = sum(r[3] for r in rows) / len(rows)
        print("| **average** | | | %.2f | %.2f | **%+.2f** | %.2f |" % (ab, ab + avg, avg, se))
        print()


if __name__ == "__main__":
    main()
