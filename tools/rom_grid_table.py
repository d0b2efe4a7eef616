#!/usr/bin/env python3
"""Markdown tables of tools/rom_quality_grid.sh's results (issue #5).

Six-task average: acc for boolq, piqa, winogrande, arc_easy; acc_norm for
hellaswag and arc_challenge (lm-eval's usual reading, as in the LLaMA paper
whose numbers LLM-ROM's dense row repeats).
Usage: tools/rom_grid_table.py WORK_DIR
"""
import json
import math
import os
import sys

TASKS = [("boolq", "acc"), ("piqa", "acc"), ("hellaswag", "acc_norm"), ("winogrande", "acc"),
         ("arc_easy", "acc"), ("arc_challenge", "acc_norm")]


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def zero_shot_cells(ev):
    """The six tasks' accuracies and their average (with its standard
    error), in percent, as table cells; blanks where a result is missing."""
    if not ev:
        return [""] * (len(TASKS) + 1)
    accs = []
    for t, metric in TASKS:
        r = ev["results"].get(t)
        accs.append((r[metric + ",none"], r[metric + "_stderr,none"]) if r else None)
    cells = ["%.1f" % (100 * a[0]) if a else "" for a in accs]
    if all(accs):
        avg = sum(a[0] for a in accs) / len(accs)
        se = math.sqrt(sum(a[1] ** 2 for a in accs)) / len(accs)
        cells.append("**%.1f** ± %.1f" % (100 * avg, 100 * se))
    else:
        cells.append("")
    return cells


def row(work, name, label, model_json=None):
    ppl = load(os.path.join(work, name.replace("-abl", "") + ".ppl.json"))
    ev = load(os.path.join(work, name + ".eval.json"))
    rep = load(os.path.join(work, (model_json or name) + ".json"))
    cells = [label]
    if rep:
        cells.append("%.2f M (%.1f%%)" % (rep["params_after"] / 1e6, 100 * rep["params_after"] / rep["params_before"]))
        cells.append("last %d, b %.3f" % (rep["blocks_compressed"], rep["module_budget"]))
        cells.append("%.0f" % rep["seconds"])
    elif name.startswith("orig"):
        cells += ["134.52 M (100%)", "-", "-"]
    else:
        cells += ["", "", ""]
    cells.append("%.2f ± %.2f" % (ppl["ppl"], ppl["stderr"]) if ppl else "")
    cells += zero_shot_cells(ev)
    return "| " + " | ".join(cells) + " |"


def table(work, rows):
    head = ["model", "#params", "plan", "compress s", "wikitext-2 PPL",
            "BoolQ", "PIQA", "HellaSwag", "WinoGrande", "ARC-e", "ARC-c", "avg"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for args in rows:
        print(row(work, *args))
    print()


def main():
    work = sys.argv[1]
    rows = [("orig", "uncompressed (fp32)")]
    for bud in ("0.9", "0.8", "0.5"):
        for meth in ("rom", "svd-llm", "svd"):
            rows.append(("%s-%s" % (meth, bud), "%s %d%%" % (meth, round(float(bud) * 100))))
    table(work, rows)
    abl = [("orig-abl", "uncompressed (fp32)"), ("rom-0.8-abl", "rom 80%: batch 512, seqlen 128, mix", "rom-0.8"),
           ("abl-batch32", "batch 32"), ("abl-batch128", "batch 128"), ("abl-seq32", "seqlen 32"),
           ("abl-seq64", "seqlen 64"), ("abl-arcc", "calib task:arc_challenge"),
           ("abl-text", "calib text (Austen, Emma)")]
    table(work, abl)


if __name__ == "__main__":
    main()
