#!/usr/bin/env python3
"""Golden files for the HF checkpoint tests (tests/unit/test_hf*.c).

Independent references: the `safetensors` package (tensor values) and
`transformers` + torch (logits). Run once; the C tests never call Python.

  python3 tools/make_hf_golden.py [--data DIR] [--out tests/golden]

Writes (all small):
  hf_tiny_tensors.txt   tiny-random-LlamaForCausalLM: "name flat_index value"
                        for 5 positions of every tensor (python safetensors)
  hf_tiny_logits.bin    its logits from transformers LlamaForCausalLM (fp32)
  hf_qwen2_tiny/        a random Qwen2 checkpoint (BF16 weights, GQA, q/k/v
                        biases, tied embeddings, transformers-5 config)
  hf_qwen2_logits.bin   its logits from transformers (fp32 compute)
  hf_llama3_tiny/       a random Llama checkpoint (F16 weights, GQA, llama3
                        rope scaling that changes the low frequencies)
  hf_llama3_logits.bin  its logits from transformers (fp32 compute)

Logits files: int32 T, int32 V, int32 stride, int32 ids[T], then float32
[T][ceil(V / stride)] (columns 0, stride, 2*stride, ...).
For the 32000-token vocabulary the stride is 8, so the file stays under
200 KB.

  python3 tools/make_hf_golden.py --check DIR --against SRC_DIR
compares transformers' logits of a slimlm-written directory with the source
(manual check that transformers loads what save_hf.c writes).
"""
import argparse
import os
import struct

import numpy as np
import torch
from safetensors.numpy import load_file
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

TINY_IDS = [1, 450, 4996, 17354, 1701, 432, 12500, 975, 278, 17366, 11203, 29889]
SMALL_IDS = [3, 17, 42, 5, 88, 61, 0, 9, 33, 70, 2, 55, 19, 81, 44, 7]


def logits_of(model_dir, ids):
    m = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    m.eval()
    with torch.no_grad():
        return m(torch.tensor([ids])).logits[0].numpy().astype(np.float32)


def write_logits(path, ids, logits, stride=1):
    t, v = logits.shape
    with open(path, "wb") as f:
        f.write(struct.pack("<iii", t, v, stride))
        f.write(np.asarray(ids, dtype="<i4").tobytes())
        f.write(np.ascontiguousarray(logits[:, ::stride]).astype("<f4").tobytes())
    print(f"{path}: T={t} V={v} stride {stride}, {os.path.getsize(path)} bytes")


def write_tensor_values(path, st_path):
    tensors = load_file(st_path)
    with open(path, "w") as f:
        for name in sorted(tensors):
            flat = tensors[name].astype(np.float32).reshape(-1)
            n = flat.size
            for i in sorted({0, 1, n // 3, (2 * n) // 3, n - 1}):
                f.write(f"{name} {i} {flat[i]:.9g}\n")
    print(f"{path}: {len(tensors)} tensors")


def randomize(model, seed):
    """Weights large enough that every part (norms, biases) moves the logits."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(0.5 + torch.rand(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))


def make_qwen2(out_dir):
    cfg = Qwen2Config(vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      rms_norm_eps=1e-6, tie_word_embeddings=True, bos_token_id=1, eos_token_id=[2, 3])
    torch.manual_seed(0)
    m = Qwen2ForCausalLM(cfg)
    randomize(m, 1)
    m.to(torch.bfloat16).save_pretrained(out_dir, safe_serialization=True)


def make_llama3(out_dir):
    cfg = LlamaConfig(vocab_size=96, hidden_size=32, intermediate_size=40, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=1, max_position_embeddings=128,
                      rms_norm_eps=1e-5, tie_word_embeddings=False, rope_theta=500000.0,
                      rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                    "high_freq_factor": 4.0, "original_max_position_embeddings": 64})
    torch.manual_seed(0)
    m = LlamaForCausalLM(cfg)
    randomize(m, 2)
    m.to(torch.float16).save_pretrained(out_dir, safe_serialization=True)


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--data", default=os.path.join(here, "..", "..", "shared", "data"))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "golden"))
    ap.add_argument("--check")
    ap.add_argument("--against")
    a = ap.parse_args()
    if a.check:
        ids = TINY_IDS if "tiny-random" in a.against else SMALL_IDS
        x, y = logits_of(a.check, ids), logits_of(a.against, ids)
        print(f"{a.check} vs {a.against}: max |d| = {np.abs(x - y).max():.3g} (|logit| max {np.abs(y).max():.3g})")
        return
    tiny = os.path.join(a.data, "models", "tiny-random-LlamaForCausalLM")
    os.makedirs(a.out, exist_ok=True)
    write_tensor_values(os.path.join(a.out, "hf_tiny_tensors.txt"), os.path.join(tiny, "model.safetensors"))
    write_logits(os.path.join(a.out, "hf_tiny_logits.bin"), TINY_IDS, logits_of(tiny, TINY_IDS), stride=8)
    for name, make in (("qwen2", make_qwen2), ("llama3", make_llama3)):
        d = os.path.join(a.out, f"hf_{name}_tiny")
        make(d)
        write_logits(os.path.join(a.out, f"hf_{name}_logits.bin"), SMALL_IDS, logits_of(d, SMALL_IDS))


if __name__ == "__main__":
    main()
