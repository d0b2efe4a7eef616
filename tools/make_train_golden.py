#!/usr/bin/env python3
"""Golden files for the training engine tests (tests/unit/test_train_torch.c,
tests/unit/test_train_optim.c). Independent reference: PyTorch and
transformers. Run once; the C tests never call Python.

  python3 tools/make_train_golden.py [--data ../shared/data] [--out tests/golden] [--only grads|optim|kd]

Writes:
  train_grads.json  For three HF checkpoints (tiny-random-LlamaForCausalLM:
                    MHA, untied, V 32000; hf_qwen2_tiny: GQA, q/k/v biases,
                    tied, BF16 weights; hf_llama3_tiny: MQA, llama3 RoPE
                    scaling, untied, F16 weights), loaded in fp32 with eager
                    attention: B=2 sequences of T=12 fixed token ids, labels =
                    the ids with one position set to -100, and
                    LlamaForCausalLM/Qwen2ForCausalLM's loss (mean next-token
                    CE over the non-ignored shifted labels). Per parameter
                    (named_parameters, so a tied head appears once, as the
                    embedding): shape, gradient L2 norm, max |g|, and 16
                    sampled gradient values (the 8 largest |g| and 8 random
                    flat indices) as [index, value].
  train_optim.json  Synthetic tensors (one decayed weight, a norm and a bias
                    that are not decayed, a frozen one) and four steps of
                    gradients (scaled so global-norm clipping at 1.0 acts on
                    some steps only), the learning rate of each step from
                    warm-up + cosine decay to 10% of peak, and the values
                    after each step of
                      - torch.optim.AdamW (betas 0.9, 0.95, eps 1e-8, weight
                        decay 0.1 on the weight only) after
                        torch.nn.utils.clip_grad_norm_(.., 1.0),
                      - Lion written out here in float64 from Chen et al.
                        (2023), Algorithm 2, with the same clipping, decay, lr;
                    plus the loss rows: F.cross_entropy (with ignore_index)
                    and F.kl_div(log_softmax(s/tau), softmax(t/tau),
                    'batchmean') * tau^2, each value and gradient w.r.t. the
                    student logits.
  train_kd.json     The combined, normalised distillation loss (Jha et al.
                    Eq. 8 as docs/train.md states it) on hf_qwen2_tiny (GQA
                    4/2 heads, q/k/v biases, tied): teacher = the model,
                    student = the model without block 0 (its block 1 kept),
                    B=2 x T=12 fixed ids, lambda 0.5, tau 2:
                      CE (mean next-token), vanilla KD (kl_div batchmean *
                      tau^2 over the predicted rows), MiniLM relation KD of
                      the last blocks (KL(teacher || student) of the causal
                      softmax(q k^T / sqrt(Dh)) per query head with its key
                      head and of softmax(v v^T / sqrt(Dh)) per key/value
                      head, q and k after RoPE, means over (b, head, row)),
                      homotopic KD (MSE of the embeddings + per student
                      block MSE of its output and of its o_proj output
                      against teacher block 1), and
                        loss = CE + lambda * sum_i L_i * CE.detach() / L_i.detach()
                    then loss.backward(): every term's value and each student
                    parameter's gradient (norm, max, samples), named as
                    slimlm names them (the student's layer 0 is block 1).
"""
import argparse
import json
import math
import os

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

B, T = 2, 12
N_TOP, N_RAND = 8, 8


def sched_lr(step, peak, warmup, total, final_frac):
    """Linear warm-up then cosine decay to final_frac * peak (docs/train.md)."""
    if step < warmup:
        return peak * (step + 1) / warmup
    prog = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (final_frac + (1 - final_frac) * 0.5 * (1 + math.cos(math.pi * prog)))


def model_case(path, rel, seed):
    torch.manual_seed(0)
    m = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")
    m.train()  # dropout is 0 in these configs; train() only matters for the loss path
    V = m.config.vocab_size
    rng = np.random.RandomState(seed)
    ids = rng.randint(0, V, size=(B, T)).astype(np.int64)
    labels = ids.copy()
    labels[1, 5] = -100  # one ignored target (the C side: targets[1][4] = -1)
    out = m(input_ids=torch.tensor(ids), labels=torch.tensor(labels))
    out.loss.backward()
    tensors = []
    for name, p in m.named_parameters():
        g = p.grad.detach().double().numpy().reshape(-1)
        top = np.argsort(-np.abs(g))[:N_TOP]
        rnd = rng.randint(0, g.size, size=N_RAND)
        idx = list(dict.fromkeys([int(i) for i in list(top) + list(rnd)]))
        tensors.append({
            "name": name,
            "shape": list(p.shape),
            "grad_norm": float(np.linalg.norm(g)),
            "grad_max": float(np.abs(g).max()),
            "samples": [[i, float(g[i])] for i in idx],
        })
    print(f"{rel}: loss {out.loss.item():.7f}, {len(tensors)} tensors")
    return {"model": rel, "B": B, "T": T, "tokens": ids.reshape(-1).tolist(),
            "labels": labels.reshape(-1).tolist(), "loss": float(out.loss.item()), "tensors": tensors}


def optim_case():
    rng = np.random.RandomState(7)
    shapes = {"w": 48, "norm": 16, "bias": 8, "frozen": 8}
    decay = {"w": True, "norm": False, "bias": False}
    p0 = {k: rng.uniform(-1, 1, n).astype(np.float32) for k, n in shapes.items()}
    scales = [0.02, 0.5, 0.01, 0.3]
    grads = []
    for s in scales:
        g = {k: (rng.normal(size=n) * s).astype(np.float32) for k, n in shapes.items()}
        g["w"][3] = 0.0
        g["w"][4] = np.float32(1e-9)
        grads.append(g)
    sch = {"peak": 1e-2, "warmup": 2, "total": 6, "final_frac": 0.1}
    lrs = [sched_lr(s, **sch) for s in range(len(scales))]
    hp = {"beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.1, "clip_norm": 1.0}
    train = ["w", "norm", "bias"]

    # AdamW: torch
    params = {k: torch.tensor(p0[k].copy(), requires_grad=True) for k in train}
    opt = torch.optim.AdamW([{"params": [params["w"]], "weight_decay": hp["weight_decay"]},
                             {"params": [params["norm"], params["bias"]], "weight_decay": 0.0}],
                            lr=lrs[0], betas=(hp["beta1"], hp["beta2"]), eps=hp["eps"])
    adamw, norms = [], []
    for s, g in enumerate(grads):
        for k in train:
            params[k].grad = torch.tensor(g[k].copy())
        norms.append(float(torch.nn.utils.clip_grad_norm_([params[k] for k in train], hp["clip_norm"])))
        for grp in opt.param_groups:
            grp["lr"] = lrs[s]
        opt.step()
        adamw.append({k: params[k].detach().numpy().astype(float).tolist() for k in train})

    # Lion: written out (Chen et al. 2023, Algorithm 2, decoupled weight decay), float64
    p = {k: p0[k].astype(np.float64) for k in train}
    mom = {k: np.zeros(shapes[k]) for k in train}
    lion = []
    for s, g in enumerate(grads):
        tot = math.sqrt(sum(float(np.sum(g[k].astype(np.float64) ** 2)) for k in train))
        coef = min(1.0, hp["clip_norm"] / (tot + 1e-6))
        for k in train:
            gk = g[k].astype(np.float64) * coef
            c = hp["beta1"] * mom[k] + (1 - hp["beta1"]) * gk
            if decay[k]:
                p[k] = p[k] * (1 - lrs[s] * hp["weight_decay"])
            p[k] = p[k] - lrs[s] * np.sign(c)
            mom[k] = hp["beta2"] * mom[k] + (1 - hp["beta2"]) * gk
        lion.append({k: p[k].tolist() for k in train})

    # loss rows
    R, V, tau = 6, 50, 2.0
    s = torch.tensor(rng.normal(size=(R, V)) * 3, dtype=torch.float64, requires_grad=True)
    t = torch.tensor(rng.normal(size=(R, V)) * 3, dtype=torch.float64)
    y = torch.tensor(rng.randint(0, V, size=R))
    y[2] = -100
    ce = F.cross_entropy(s, y, ignore_index=-100)
    ce.backward()
    ce_grad = s.grad.clone()
    s.grad = None
    kd = F.kl_div(F.log_softmax(s / tau, dim=-1), F.softmax(t / tau, dim=-1), reduction="batchmean") * tau * tau
    kd.backward()
    print(f"optim: clip norms {[round(x, 4) for x in norms]}, lrs {lrs}; CE {ce.item():.6f} KD {kd.item():.6f}")
    return {
        "shapes": shapes, "decay": decay, "p0": {k: v.astype(float).tolist() for k, v in p0.items()},
        "grads": [{k: v.astype(float).tolist() for k, v in g.items()} for g in grads],
        "schedule": sch, "lr": lrs, "hyper": hp, "clip_norms": norms, "adamw": adamw, "lion": lion,
        "loss_rows": {"R": R, "V": V, "tau": tau, "student": s.detach().reshape(-1).tolist(),
                      "teacher": t.reshape(-1).tolist(), "targets": y.tolist(),
                      "ce": ce.item(), "ce_grad": ce_grad.reshape(-1).tolist(),
                      "kd": kd.item(), "kd_grad": s.grad.reshape(-1).tolist()},
    }


def kd_case(path, rel):
    """Combined normalised KD loss of a student (block 0 removed) against the model itself."""
    import copy
    from transformers.models.qwen2.modeling_qwen2 import apply_rotary_pos_emb
    lam, tau = 0.5, 2.0
    teacher = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")
    student = copy.deepcopy(teacher)
    kept = [1]  # student layer i is teacher block kept[i]
    student.model.layers = torch.nn.ModuleList([student.model.layers[i] for i in kept])
    student.config.num_hidden_layers = len(kept)
    for i, layer in enumerate(student.model.layers):
        layer.self_attn.layer_idx = i
    cfg = teacher.config
    H, Hkv = cfg.num_attention_heads, cfg.num_key_value_heads
    Dh = getattr(cfg, "head_dim", None) or cfg.hidden_size // H
    V = cfg.vocab_size
    rng = np.random.RandomState(5)
    ids = torch.tensor(rng.randint(0, V, size=(B, T)).astype(np.int64))

    def capture(model):
        """Hooks that record embeddings, block outputs, o_proj outputs and the last block's q, k, v."""
        rec = {"out": [], "att": []}
        hs = [model.model.embed_tokens.register_forward_hook(lambda m, i, o: rec.__setitem__("emb", o))]
        for layer in model.model.layers:
            hs.append(layer.register_forward_hook(lambda m, i, o: rec["out"].append(o[0] if isinstance(o, tuple) else o)))
            hs.append(layer.self_attn.o_proj.register_forward_hook(lambda m, i, o: rec["att"].append(o)))
        last = model.model.layers[-1].self_attn
        for nm in ("q", "k", "v"):
            hs.append(getattr(last, nm + "_proj").register_forward_hook(
                lambda m, i, o, nm=nm: rec.__setitem__(nm, o)))
        return rec, hs

    def qkv_heads(model, rec):
        q = rec["q"].view(B, T, H, Dh).transpose(1, 2)
        k = rec["k"].view(B, T, Hkv, Dh).transpose(1, 2)
        v = rec["v"].view(B, T, Hkv, Dh).transpose(1, 2)
        pos = torch.arange(T).unsqueeze(0).expand(B, T)
        cos, sin = model.model.rotary_emb(v, pos)
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        return q, k, v

    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))

    def rel_kl(xs, ys, xt, yt):
        """mean over (b, head, row) of KL(softmax_t || softmax_s) of causal x y^T / sqrt(Dh) rows."""
        ss = (xs @ ys.transpose(-1, -2) / math.sqrt(Dh)).masked_fill(~mask, float("-inf"))
        st = (xt @ yt.transpose(-1, -2) / math.sqrt(Dh)).masked_fill(~mask, float("-inf"))
        ls, lt = F.log_softmax(ss, -1), F.log_softmax(st, -1)
        kl = torch.where(mask, lt.exp() * (lt - ls), torch.zeros_like(ls)).sum(-1)
        return kl.mean()

    rec_t, hs_t = capture(teacher)
    with torch.no_grad():
        zt = teacher(input_ids=ids).logits
    rec_s, hs_s = capture(student)
    zs = student(input_ids=ids).logits
    for h in hs_t + hs_s:
        h.remove()
    ce = F.cross_entropy(zs[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1))
    kd = F.kl_div(F.log_softmax(zs[:, :-1].reshape(-1, V) / tau, -1), F.softmax(zt[:, :-1].reshape(-1, V) / tau, -1),
                  reduction="batchmean") * tau * tau
    qs, ks, vs = qkv_heads(student, rec_s)
    with torch.no_grad():
        qt, kt, vt = qkv_heads(teacher, rec_t)
    rep = H // Hkv
    rel_qk = rel_kl(qs, ks.repeat_interleave(rep, 1), qt, kt.repeat_interleave(rep, 1))
    rel_vv = rel_kl(vs, vs, vt, vt)
    rel_t = rel_qk + rel_vv
    emb = F.mse_loss(rec_s["emb"], rec_t["emb"])
    hid = sum(F.mse_loss(rec_s["out"][i], rec_t["out"][b]) for i, b in enumerate(kept))
    att = sum(F.mse_loss(rec_s["att"][i], rec_t["att"][b]) for i, b in enumerate(kept))
    hom = emb + hid + att
    c = ce.detach()
    loss = ce + lam * (kd / kd.detach() * c + rel_t / rel_t.detach() * c + hom / hom.detach() * c)
    loss.backward()
    tensors = []
    for name, p in student.named_parameters():
        parts = name.split(".")
        if parts[:2] == ["model", "layers"]:
            parts[2] = str(kept[int(parts[2])])
        g = p.grad.detach().double().numpy().reshape(-1)
        top = np.argsort(-np.abs(g))[:N_TOP]
        rnd = rng.randint(0, g.size, size=N_RAND)
        idx = list(dict.fromkeys([int(i) for i in list(top) + list(rnd)]))
        tensors.append({"name": ".".join(parts), "shape": list(p.shape), "grad_norm": float(np.linalg.norm(g)),
                        "grad_max": float(np.abs(g).max()), "samples": [[i, float(g[i])] for i in idx]})
    print(f"kd: ce {ce.item():.6f} kd {kd.item():.6f} rel {rel_t.item():.6f} (qk {rel_qk.item():.6f}) "
          f"hom {hom.item():.6f} (emb {emb.item():.3g}) loss {loss.item():.6f}, {len(tensors)} tensors")
    return {"model": rel, "B": B, "T": T, "lambda": lam, "tau": tau, "dropped": [0], "tokens": ids.reshape(-1).tolist(),
            "ce": ce.item(), "kd": kd.item(), "rel": rel_t.item(), "rel_qk": rel_qk.item(), "rel_vv": rel_vv.item(),
            "hom": hom.item(), "hom_emb": emb.item(), "hom_hidden": hid.item(), "hom_attn": att.item(),
            "loss": loss.item(), "tensors": tensors}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(here, "..", "..", "shared", "data"))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "golden"))
    ap.add_argument("--only", choices=["grads", "optim", "kd"], help="write one golden file only")
    a = ap.parse_args()
    torch.set_num_threads(2)
    if a.only == "kd" or a.only is None:
        with open(os.path.join(a.out, "train_kd.json"), "w") as f:
            json.dump(kd_case(os.path.join(a.out, "hf_qwen2_tiny"), "golden:hf_qwen2_tiny"), f, separators=(",", ":"))
        print("train_kd.json", os.path.getsize(os.path.join(a.out, "train_kd.json")), "bytes")
        if a.only:
            return
    cases = [
        (os.path.join(a.data, "models", "tiny-random-LlamaForCausalLM"), "data:models/tiny-random-LlamaForCausalLM", 1),
        (os.path.join(a.out, "hf_qwen2_tiny"), "golden:hf_qwen2_tiny", 2),
        (os.path.join(a.out, "hf_llama3_tiny"), "golden:hf_llama3_tiny", 3),
    ]
    if a.only in (None, "grads"):
        grads = {"cases": [model_case(p, rel, seed) for p, rel, seed in cases]}
        with open(os.path.join(a.out, "train_grads.json"), "w") as f:
            json.dump(grads, f, separators=(",", ":"))
        print("train_grads.json", os.path.getsize(os.path.join(a.out, "train_grads.json")), "bytes")
    if a.only in (None, "optim"):
        with open(os.path.join(a.out, "train_optim.json"), "w") as f:
            json.dump(optim_case(), f, separators=(",", ":"))
        print("train_optim.json", os.path.getsize(os.path.join(a.out, "train_optim.json")), "bytes")


if __name__ == "__main__":
    main()
