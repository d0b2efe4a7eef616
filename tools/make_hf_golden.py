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
  hf_smollm2_logits.bin SmolLM2-135M-Instruct (the Q4_1 GGUF) converted to HF
                        here, independently of slimlm: `gguf` dequantises,
                        numpy undoes llama.cpp's q/k permute; logits from
                        transformers (every 16th vocabulary column)

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
SMOL_IDS = [1, 504, 3458, 282, 4649, 314, 253, 1345, 30, 378, 2152, 282]
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


def unpermute(w, n_head):
    """Inverse of llama.cpp convert_hf_to_gguf's permute (adjacent pairs -> halves)."""
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def make_smollm2_hf(gguf_path, out_dir):
    import gguf
    from safetensors.numpy import save_file
    r = gguf.GGUFReader(gguf_path)

    def field(k):
        f = r.fields[k]
        return f.parts[f.data[0]].tolist()[0]

    L, D, F = field("llama.block_count"), field("llama.embedding_length"), field("llama.feed_forward_length")
    H, Hkv = field("llama.attention.head_count"), field("llama.attention.head_count_kv")
    t = {x.name: x for x in r.tensors}

    def deq(name):
        x = t[name]
        return gguf.quants.dequantize(x.data, x.tensor_type).reshape([int(v) for v in reversed(x.shape)]).astype(np.float32)

    V = deq("token_embd.weight").shape[0]
    sd = {"model.embed_tokens.weight": deq("token_embd.weight"), "model.norm.weight": deq("output_norm.weight")}
    names = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
             "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
             "ffn_down": "mlp.down_proj"}
    for i in range(L):
        sd[f"model.layers.{i}.input_layernorm.weight"] = deq(f"blk.{i}.attn_norm.weight")
        sd[f"model.layers.{i}.post_attention_layernorm.weight"] = deq(f"blk.{i}.ffn_norm.weight")
        for g, h in names.items():
            w = deq(f"blk.{i}.{g}.weight")
            if g in ("attn_q", "attn_k"):
                w = unpermute(w, H if g == "attn_q" else Hkv)
            sd[f"model.layers.{i}.{h}.weight"] = np.ascontiguousarray(w)
    os.makedirs(out_dir, exist_ok=True)
    save_file(sd, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    cfg = LlamaConfig(vocab_size=V, hidden_size=D, intermediate_size=F, num_hidden_layers=L, num_attention_heads=H,
                      num_key_value_heads=Hkv, rms_norm_eps=float(field("llama.attention.layer_norm_rms_epsilon")),
                      rope_theta=float(field("llama.rope.freq_base")),
                      max_position_embeddings=field("llama.context_length"), tie_word_embeddings=True)
    cfg.save_pretrained(out_dir)


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--data", default=os.path.join(here, "..", "..", "shared", "data"))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "golden"))
    ap.add_argument("--smollm2", default=os.path.expanduser("~/.cache/slimlm/SmolLM2-135M-Instruct.Q4_1.gguf"))
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
    if os.path.exists(a.smollm2):
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            make_smollm2_hf(a.smollm2, d)
            write_logits(os.path.join(a.out, "hf_smollm2_logits.bin"), SMOL_IDS, logits_of(d, SMOL_IDS), stride=16)


if __name__ == "__main__":
    main()
