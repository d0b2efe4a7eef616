#!/usr/bin/env python3
"""Writes the damaged checkpoints of tests/bad/ (small files, committed).

Each file is a tiny, otherwise valid LLaMA checkpoint (GGUF, or an HF
directory with config.json + model.safetensors) with exactly one defect.
tests/cli/test_bad_input.sh runs `slimlm info` on every one and requires a
single line `error: <file>: <what>` and a non-zero exit, without a crash or
a sanitizer report. The GGUF bytes are packed by hand (not with gguf-py) so
that the defects can be anything, including lengths that overflow.

Usage: python3 tools/make_bad_inputs.py [tests/bad]
"""
import json
import os
import shutil
import struct
import sys

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "bad")

# GGUF value types
U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)

D, F, H, HKV, V, CTX = 8, 16, 2, 1, 10, 32
DH = D // H


def gstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def kv(key, vtype, value):
    out = gstr(key) + struct.pack("<I", vtype)
    if vtype == STR:
        return out + gstr(value)
    if vtype == U32:
        return out + struct.pack("<I", value)
    if vtype == F32:
        return out + struct.pack("<f", value)
    if vtype == ARR:
        et, items = value
        body = struct.pack("<IQ", et, len(items))
        for it in items:
            body += gstr(it) if et == STR else struct.pack("<i", it)
        return out + body
    raise ValueError(vtype)


def model_kvs(arch="llama"):
    return [
        ("general.architecture", STR, arch),
        ("general.alignment", U32, 32),
        (f"{arch}.context_length", U32, CTX),
        (f"{arch}.embedding_length", U32, D),
        (f"{arch}.block_count", U32, 1),
        (f"{arch}.feed_forward_length", U32, F),
        (f"{arch}.attention.head_count", U32, H),
        (f"{arch}.attention.head_count_kv", U32, HKV),
        (f"{arch}.attention.layer_norm_rms_epsilon", F32, 1e-5),
        (f"{arch}.rope.freq_base", F32, 10000.0),
    ]


def model_tensors():
    """(name, dims fastest-first) of a 1-block model with untied lm head."""
    kvd = HKV * DH
    return [
        ("token_embd.weight", [D, V]),
        ("output_norm.weight", [D]),
        ("output.weight", [D, V]),
        ("blk.0.attn_norm.weight", [D]),
        ("blk.0.attn_q.weight", [D, D]),
        ("blk.0.attn_k.weight", [D, kvd]),
        ("blk.0.attn_v.weight", [D, kvd]),
        ("blk.0.attn_output.weight", [D, D]),
        ("blk.0.ffn_norm.weight", [D]),
        ("blk.0.ffn_gate.weight", [D, F]),
        ("blk.0.ffn_up.weight", [D, F]),
        ("blk.0.ffn_down.weight", [F, D]),
    ]


def build_gguf(kvs=None, tensors=None, version=3, magic=b"GGUF", n_kv=None, n_tensors=None,
               raw_kvs=b"", tweak_info=None, align=32):
    """Returns (bytes, offsets) of a GGUF file. tweak_info(i, name, dims, type, offset) may
    return replacement fields for tensor i."""
    kvs = model_kvs() if kvs is None else kvs
    tensors = model_tensors() if tensors is None else tensors
    kv_bytes = b"".join(kv(*k) for k in kvs) + raw_kvs
    infos = b""
    data = b""
    for i, (name, dims) in enumerate(tensors):
        n = 1
        for d in dims:
            n *= d
        blob = struct.pack(f"<{n}f", *[((j * 7 + i) % 13 - 6) * 0.05 for j in range(n)])
        off = len(data)
        ttype = 0
        fields = (name, dims, ttype, off)
        if tweak_info:
            fields = tweak_info(i, *fields)
        name2, dims2, ttype2, off2 = fields
        infos += gstr(name2) + struct.pack("<I", len(dims2)) + b"".join(struct.pack("<Q", d) for d in dims2)
        infos += struct.pack("<IQ", ttype2, off2)
        data += blob
        data += b"\0" * ((-len(data)) % align)
    header = magic + struct.pack("<I", version)
    header += struct.pack("<QQ", len(tensors) if n_tensors is None else n_tensors,
                          (len(kvs) if n_kv is None else n_kv))
    head = header + kv_bytes + infos
    pad = b"\0" * ((-len(head)) % align)
    sections = {"kv": len(header), "info": len(header) + len(kv_bytes), "data": len(head) + len(pad)}
    return head + pad + data, sections


def write(name, data):
    path = os.path.join(OUT, name)
    with open(path, "wb") as f:
        f.write(data)


def gguf_cases():
    good, sec = build_gguf()
    write("good_tiny.gguf", good)  # the control: must load
    write("bad_magic.gguf", b"GGUX" + good[4:])
    write("version1.gguf", build_gguf(version=1)[0])
    write("version99.gguf", build_gguf(version=99)[0])
    write("empty.gguf", b"")
    write("truncated_header.gguf", good[:10])
    write("truncated_kv.gguf", good[: sec["kv"] + 40])
    write("truncated_tensor_info.gguf", good[: sec["info"] + 30])
    write("truncated_data.gguf", good[: sec["data"] + 100])
    write("n_kv_overflow.gguf", build_gguf(n_kv=(1 << 63) + 5)[0])
    write("n_tensors_overflow.gguf", build_gguf(n_tensors=(1 << 62))[0])
    write("key_len_overflow.gguf", build_gguf(kvs=[], n_kv=1, raw_kvs=struct.pack("<Q", (1 << 64) - 1) + b"abc")[0])
    write("non_utf8_key.gguf", build_gguf(kvs=model_kvs() + [(b"bad.\xff\xfe", STR, "x")])[0])
    write("bad_value_type.gguf", build_gguf(raw_kvs=gstr("x.bad") + struct.pack("<I", 99), n_kv=len(model_kvs()) + 1)[0])
    write("array_len_overflow.gguf", build_gguf(raw_kvs=gstr("x.arr") + struct.pack("<IIQ", ARR, I32, 1 << 61),
                                                n_kv=len(model_kvs()) + 1)[0])
    write("duplicate_key.gguf", build_gguf(kvs=model_kvs() + [("general.architecture", STR, "llama")])[0])
    al = [k if k[0] != "general.alignment" else ("general.alignment", U32, 24) for k in model_kvs()]
    write("alignment_not_pow2.gguf", build_gguf(kvs=al)[0])
    write("n_dims_absurd.gguf", build_gguf(tweak_info=lambda i, n, d, t, o: (n, d * 5 if i == 4 else d, t, o))[0])
    write("dim_absurd.gguf", build_gguf(tweak_info=lambda i, n, d, t, o: (n, [1 << 62, 4] if i == 4 else d, t, o))[0])
    write("dim_zero.gguf", build_gguf(tweak_info=lambda i, n, d, t, o: (n, [0, D] if i == 4 else d, t, o))[0])
    write("bad_tensor_type.gguf", build_gguf(tweak_info=lambda i, n, d, t, o: (n, d, 99 if i == 4 else t, o))[0])
    write("data_past_end.gguf", build_gguf(tweak_info=lambda i, n, d, t, o: (n, d, t, o + (1 << 40) if i == 4 else o))[0])
    write("offset_misaligned.gguf", build_gguf(tweak_info=lambda i, n, d, t, o: (n, d, t, o + 4 if i == 4 else o))[0])
    write("overlapping_tensors.gguf", build_gguf(tweak_info=lambda i, n, d, t, o: (n, d, t, 0 if i == 4 else o))[0])
    write("duplicate_tensor.gguf", build_gguf(tweak_info=lambda i, n, d, t, o: ("blk.0.attn_k.weight" if i == 4 else n, d, t, o))[0])
    arch = [k if k[0] != "general.architecture" else ("general.architecture", STR, "gpt5") for k in model_kvs()]
    write("unknown_arch.gguf", build_gguf(kvs=arch)[0])
    write("missing_tensor.gguf", build_gguf(tensors=[t for t in model_tensors() if t[0] != "blk.0.ffn_up.weight"])[0])
    write("wrong_shape.gguf", build_gguf(tensors=[(n, [D, F + 1] if n == "blk.0.ffn_up.weight" else d)
                                                   for n, d in model_tensors()])[0])
    write("missing_hparam.gguf", build_gguf(kvs=[k for k in model_kvs() if not k[0].endswith("head_count")])[0])
    heads = [k if not k[0].endswith("head_count_kv") else (k[0], U32, 3) for k in model_kvs()]
    write("bad_head_ratio.gguf", build_gguf(kvs=heads)[0])


def safetensors_bytes(tensors, header_extra=None, header_len=None, header_override=None):
    header = {}
    data = b""
    for name, shape in tensors:
        n = 1
        for s in shape:
            n *= s
        blob = struct.pack(f"<{n}f", *[((j * 3) % 11 - 5) * 0.1 for j in range(n)])
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + len(blob)]}
        data += blob
    if header_extra:
        header_extra(header)
    hb = header_override if header_override is not None else json.dumps(header).encode()
    hb += b" " * ((-len(hb)) % 8)
    return struct.pack("<Q", len(hb) if header_len is None else header_len) + hb + data


def hf_config(**over):
    c = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": D,
         "intermediate_size": F, "num_hidden_layers": 1, "num_attention_heads": H,
         "num_key_value_heads": HKV, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
         "max_position_embeddings": CTX, "vocab_size": V, "tie_word_embeddings": False}
    for k, v in over.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return c


def hf_tensors():
    kvd = HKV * DH
    t = [("model.embed_tokens.weight", [V, D]), ("model.norm.weight", [D]), ("lm_head.weight", [V, D]),
         ("model.layers.0.input_layernorm.weight", [D]), ("model.layers.0.post_attention_layernorm.weight", [D]),
         ("model.layers.0.self_attn.q_proj.weight", [D, D]), ("model.layers.0.self_attn.k_proj.weight", [kvd, D]),
         ("model.layers.0.self_attn.v_proj.weight", [kvd, D]), ("model.layers.0.self_attn.o_proj.weight", [D, D]),
         ("model.layers.0.mlp.gate_proj.weight", [F, D]), ("model.layers.0.mlp.up_proj.weight", [F, D]),
         ("model.layers.0.mlp.down_proj.weight", [D, F])]
    return t


def hf_dir(name, config=None, st=None, config_text=None):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        f.write(config_text if config_text is not None else json.dumps(hf_config() if config is None else config, indent=1))
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(safetensors_bytes(hf_tensors()) if st is None else st)


def hf_cases():
    hf_dir("hf_good_tiny")  # the control: must load
    good_cfg = json.dumps(hf_config(), indent=1)
    hf_dir("hf_config_truncated_json", config_text=good_cfg[: len(good_cfg) // 2])
    hf_dir("hf_config_not_object", config_text="[1, 2, 3]")
    hf_dir("hf_config_missing_hidden_size", config=hf_config(hidden_size=None))
    hf_dir("hf_config_wrong_type", config=hf_config(hidden_size="big"))
    hf_dir("hf_config_unknown_arch", config=hf_config(architectures=["GPTNeoXForCausalLM"], model_type="gpt_neox"))
    hf_dir("hf_config_negative_layers", config=hf_config(num_hidden_layers=-3))
    hf_dir("hf_st_header_too_long", st=safetensors_bytes(hf_tensors(), header_len=1 << 40))
    hf_dir("hf_st_header_len_overflow", st=safetensors_bytes(hf_tensors(), header_len=(1 << 64) - 8))
    hf_dir("hf_st_truncated", st=safetensors_bytes(hf_tensors())[:200])
    hf_dir("hf_st_tiny_file", st=b"\x01\x02\x03")
    hf_dir("hf_st_bad_json", st=safetensors_bytes(hf_tensors(), header_override=b'{"a": [1, 2'))
    def past_end(h):
        h["model.norm.weight"]["data_offsets"] = [0, 1 << 40]
    hf_dir("hf_st_offsets_past_end", st=safetensors_bytes(hf_tensors(), header_extra=past_end))
    def reversed_offsets(h):
        h["model.norm.weight"]["data_offsets"] = [32, 0]
    hf_dir("hf_st_offsets_reversed", st=safetensors_bytes(hf_tensors(), header_extra=reversed_offsets))
    def overlap(h):
        a = h["model.layers.0.self_attn.q_proj.weight"]["data_offsets"]
        b = h["model.layers.0.self_attn.o_proj.weight"]
        b["data_offsets"] = list(a)
    hf_dir("hf_st_overlapping", st=safetensors_bytes(hf_tensors(), header_extra=overlap))
    def bad_dtype(h):
        h["model.norm.weight"]["dtype"] = "I64"
        h["model.norm.weight"]["shape"] = [D // 2]
    hf_dir("hf_st_unsupported_dtype", st=safetensors_bytes(hf_tensors(), header_extra=bad_dtype))
    def size_mismatch(h):
        h["model.norm.weight"]["shape"] = [D + 1]
    hf_dir("hf_st_size_mismatch", st=safetensors_bytes(hf_tensors(), header_extra=size_mismatch))
    hf_dir("hf_st_missing_tensor", st=safetensors_bytes([t for t in hf_tensors() if "up_proj" not in t[0]]))
    hf_dir("hf_st_wrong_shape", st=safetensors_bytes([(n, [F + 1, D] if "up_proj" in n else s) for n, s in hf_tensors()]))


def main():
    if os.path.isdir(OUT):
        for e in os.listdir(OUT):
            p = os.path.join(OUT, e)
            if e.endswith(".gguf"):
                os.remove(p)
            elif e.startswith("hf_") and os.path.isdir(p):
                shutil.rmtree(p)
    os.makedirs(OUT, exist_ok=True)
    gguf_cases()
    hf_cases()
    n = len([e for e in os.listdir(OUT) if e.endswith(".gguf") or e.startswith("hf_")])
    print(f"wrote {n} cases to {OUT}")


if __name__ == "__main__":
    main()
