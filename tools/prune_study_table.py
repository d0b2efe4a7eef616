#!/usr/bin/env python3
"""Markdown table of tools/prune_study.sh's results (issue #6).

Perplexity: wikitext-2 test, llama.cpp protocol (slimlm ppl). Zero-shot:
the rom6 average as tools/rom_grid_table.py reads it.
Usage: tools/prune_study_table.py WORK_DIR STRATEGY
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rom_grid_table import load, zero_shot_cells  # noqa: E402

STRATEGIES = ["max-gap", "input", "output", "middle", "both", "block-influence"]
ARMS = [("cpt-none", "continued pretraining, no KD"), ("cpt-vanilla", "+ vanilla KD (logits)"),
        ("cpt-minilm", "+ miniLM KD (last-layer relations)"), ("cpt-homotopic", "+ homotopic KD (hidden states)"),
        ("scratch", "pruned shape from scratch")]
HEAD = ["model", "blocks", "train tokens", "tokens/s", "wikitext-2 PPL",
        "BoolQ", "PIQA", "HellaSwag", "WinoGrande", "ARC-e", "ARC-c", "avg"]


def ppl_cell(work, name):
    p = load(os.path.join(work, name + ".ppl.json"))
    return "%.2f ± %.2f" % (p["ppl"], p["stderr"]) if p else ""


def line(cells):
    return "| " + " | ".join(cells) + " |"


def main():
    work, strategy = sys.argv[1], sys.argv[2]
    print("After pruning 15 of 30 blocks (no training):\n")
    print(line(["strategy", "dropped blocks", "#params", "wikitext-2 PPL"]))
    print("|---|---|---|---|")
    for s in STRATEGIES:
        rep = load(os.path.join(work, "prune-%s.json" % s)) or {}
        dropped = rep.get("dropped_blocks", "")
        params = rep.get("params_after", "")
        print(line([s, ",".join(str(b) for b in dropped) if isinstance(dropped, list) else str(dropped),
                    "%.2f M" % (params / 1e6) if params else "", ppl_cell(work, "prune-" + s)]))
    print("\nArms (pruning: %s):\n" % strategy)
    print(line(HEAD))
    print("|" + "---|" * len(HEAD))
    print(line(["uncompressed", "30", "-", "-", ppl_cell(work, "orig")] + zero_shot_cells(load(os.path.join(work, "orig.eval.json")))))
    print(line(["pruned, untrained", "15", "0", "-", ppl_cell(work, "prune-" + strategy)]
               + zero_shot_cells(load(os.path.join(work, "prune-%s.eval.json" % strategy)))))
    for name, label in ARMS:
        rep = load(os.path.join(work, name + ".json")) or {}
        cells = [label, str(rep.get("blocks_kept", "")), "%d" % rep["tokens"] if "tokens" in rep else "",
                 "%.1f" % rep["tokens_per_second"] if "tokens_per_second" in rep else "", ppl_cell(work, name)]
        print(line(cells + zero_shot_cells(load(os.path.join(work, name + ".eval.json")))))


if __name__ == "__main__":
    main()
