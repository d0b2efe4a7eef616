#!/usr/bin/env python3
"""Golden token ids for SmolLM2's tokenizer from two independent references.

  llama.cpp  : llama_cpp.Llama(gguf, vocab_only=True).tokenize(bytes, add_bos, special)
  HF         : tokenizers, built from the GGUF's own metadata by transformers'
               GGUF converter (transformers.integrations.gguf.gguf_tokenizer_mapping;
               the metadata is read here with the `gguf` package because
               transformers' own GGUF reader imports torch). transformers has no
               entry for pre-tokenizer "smollm" and falls back to plain GPT-2
               ByteLevel, which differs from SmolLM2's real tokenizer.json
               (Digits(individual_digits) + ByteLevel): " 1990" and "  1" give
               other ids. We therefore set SmolLM2's tokenizer.json
               pre-tokenizer on the converted tokenizer; everything else
               (vocab, merges, added tokens) is transformers' conversion.
               parse_special=False maps to encode_special_tokens=True.

Every id list written was produced identically by both references; the
script stops if they disagree on anything but invalid UTF-8 (which HF cannot
take as input: Python strings are decoded with errors="replace" first and
that case is compared with llama.cpp only, and flagged in the file).

Outputs (tests/golden/):
  tok_smollm2_cases.tsv            hard cases: hex(input) add_special parse_special refs ids
  tok_smollm2_wikitext_doc.u16.gz  ids of all of wiki.test.raw as one text (uint16 LE)
  tok_smollm2_wikitext_lines.tsv.gz  per line (keepends): n_ids fnv1a64(ids as int32 LE)
  tok_hf_bytelevel/, tok_hf_spm/   small tokenizer.json files trained by HF tokenizers + golden.tsv

Usage: python3 tools/make_tokenizer_golden.py [--model GGUF] [--data DIR] [--out DIR]
"""
import argparse
import gzip
import os
import struct
import sys


def fnv1a64_ids(ids):
    h = 0xCBF29CE484222325
    for b in struct.pack("<%di" % len(ids), *ids):
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def write_gz(path, data):
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as f:
        f.write(data)


def load_hf(path):
    import gguf
    from tokenizers import pre_tokenizers
    from transformers.integrations.gguf import gguf_tokenizer_mapping as M

    r = gguf.GGUFReader(path)
    md = {}
    for k, f in r.fields.items():
        if k.startswith("tokenizer.") or k == "general.architecture":
            try:
                md[k] = f.contents()
            except Exception:
                pass
    grouped = {g: {n: md[f"tokenizer.{k}"] for k, n in ren.items() if f"tokenizer.{k}" in md}
               for g, ren in M.GGUF_TOKENIZER_MAPPING.items()}
    tok = M.convert_gguf_tokenizer(md["general.architecture"], grouped["tokenizer"])[0]
    if md.get("tokenizer.ggml.pre") == "smollm":
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    add_bos = md.get("tokenizer.ggml.add_bos_token", False)
    bos = md.get("tokenizer.ggml.bos_token_id")
    return tok, add_bos, bos


HARD_CASES = [
    "Hello world", " Hello world", "Hello World!", "hello   world", "  leading and trailing  ",
    "", " ", "  ", "   ", "\t", "\n", "\n\n", "\n\n\n", "\t\n", " \n ", "a\r\nb", "\r\r\n\n",
    " " * 50 + "x", "\t\t\tindented\n\t\tcode", "x" + " " * 33 + "\n" + "\t" * 9,
    "It's, they're, we've, I'm, you'll, he'd, 'tis 's 't 're 've 'm 'll 'd",
    "IT'S THEY'RE WE'VE I'M YOU'LL HE'D", "don't can't won't", "'''quoted'''",
    "1", "12", "123", "1234567890", "3.14159265358979", "1,000,000", "-42 +17 = -25", "0x1F 0b1010 1e-9",
    "2024-11-23 04:48:00", "Version 1.2.3-rc4", "٣٤٥ ١٢٣", "²³ ½ ¾ Ⅻ ⅷ",
    "😀", "😀😃😄 emoji 👍🏽 family 👨‍👩‍👧‍👦 flag 🇺🇸", "🤖🦙",
    "中文测试：你好，世界！", "日本語のテキスト、カタカナとひらがな。", "한국어 텍스트입니다",
    "مرحبا بالعالم", "שלום עולם", "Привет, мир! Ёлка", "Ελληνικά κείμενο", "हिन्दी पाठ", "ไทย ภาษา",
    "e\u0301 a\u0300 n\u0303 o\u0308 combining", "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334",
    "ﬁ ﬂ ligatures Ⅸ ㎏ full-width ＡＢＣ１２３", "\u00a0nbsp\u2009thin\u3000ideographic\u200bzw\u2028ls\u0085nel",
    "def f(x):\n    return x ** 2  # square\n", "int main(void) { printf(\"%d\\n\", 42); return 0; }",
    "<html><body class=\"x\">&amp;&lt;</body></html>", "SELECT * FROM t WHERE a >= 10 AND b != 'x';",
    "https://example.com/path?q=1&r=two#frag", "user@example.org ftp://host:21/file.tar.gz",
    "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n", "<|endoftext|>", "text<|endoftext|>more",
    "<|im_start|><|im_end|>", "< |im_start| >", "<|im_start", "<repo_name>x<file_sep>y",
    "!!!???...,,,;;;:::", "--- === *** ### @@@", "«quotes» “curly” ‘single’ „low“", "…—–·•",
    "Mixed123Numbers456and789", "CamelCaseIdentifier snake_case_name kebab-case-name",
    " = Valkyria Chronicles III = \n", " @-@ @,@ @.@ ",
]
INVALID_CASES = [b"\xff", b"\x80abc", b"ab\xfe\xffcd", b"\xc3", b"caf\xc3", b"\xe2\x82", b"\xf0\x9f\x98",
                 b"\xc0\x80", b"\xed\xa0\x80", b"ok \xc3\xa9 \xe9 mixed"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.expanduser("~/.cache/slimlm/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "../../shared/data"))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "../tests/golden"))
    a = ap.parse_args()
    import llama_cpp

    llm = llama_cpp.Llama(a.model, vocab_only=True, verbose=False)
    hf, hf_add_bos, bos = load_hf(a.model)

    def ref_llama(b, add_special, parse_special):
        return llm.tokenize(b, add_bos=add_special, special=parse_special)

    def ref_hf(s, add_special, parse_special):
        hf.encode_special_tokens = not parse_special
        ids = hf.encode(s, add_special_tokens=False).ids
        return ([bos] if add_special and hf_add_bos else []) + ids

    rows = []
    for s in HARD_CASES:
        b = s.encode("utf-8")
        for add_special, parse_special in ((False, False), (True, False), (False, True)):
            x = ref_llama(b, add_special, parse_special)
            y = ref_hf(s, add_special, parse_special)
            if x != y:
                sys.exit(f"references disagree on {s!r} add={add_special} special={parse_special}:\n"
                         f"  llama.cpp {x}\n  HF        {y}")
            rows.append((b, add_special, parse_special, "both", x))
    for b in INVALID_CASES:
        x = ref_llama(b, False, False)
        y = ref_hf(b.decode("utf-8", "replace"), False, False)
        rows.append((b, False, False, "both" if x == y else "llama.cpp", x))
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "tok_smollm2_cases.tsv"), "w") as f:
        f.write("# hex(input)\tadd_special\tparse_special\treferences agreeing\tids (tools/make_tokenizer_golden.py)\n")
        for b, add_special, parse_special, refs, ids in rows:
            f.write(f"{b.hex() or '-'}\t{int(add_special)}\t{int(parse_special)}\t{refs}\t{' '.join(map(str, ids))}\n")
    print(f"{len(rows)} hard cases, {sum(r[3] == 'both' for r in rows)} agreed by both references")

    raw = open(os.path.join(a.data, "wikitext-2-raw/wiki.test.raw"), "rb").read()
    doc = ref_llama(raw, False, False)
    doc_hf = ref_hf(raw.decode("utf-8"), False, False)
    if doc != doc_hf:
        i = next(i for i in range(min(len(doc), len(doc_hf))) if doc[i] != doc_hf[i])
        sys.exit(f"references disagree on the wikitext document at token {i}")
    assert max(doc) < 65536
    write_gz(os.path.join(a.out, "tok_smollm2_wikitext_doc.u16.gz"), struct.pack("<%dH" % len(doc), *doc))
    print(f"wikitext as one document: {len(doc)} ids, identical in both references")

    lines = raw.decode("utf-8").splitlines(keepends=True)
    out = []
    for ln in lines:
        x = ref_llama(ln.encode("utf-8"), False, False)
        y = ref_hf(ln, False, False)
        if x != y:
            sys.exit(f"references disagree on line {ln!r}")
        out.append(f"{len(x)} {fnv1a64_ids(x):016x}\n")
    write_gz(os.path.join(a.out, "tok_smollm2_wikitext_lines.tsv.gz"), "".join(out).encode())
    print(f"wikitext line by line: {len(lines)} lines, identical in both references")
    make_hf_dirs(a.out, a.data)


HF_TEXTS = ["Hello world 1990 and  12345", "It's the tokenizer's test:\n\tindented   spaces  ",
            "naïve café 😀 中文 <s>special</s> <|endoftext|>", "", " ", "Digits 3.14159 and ²½",
            "the quick brown fox jumps over the lazy dog " * 3]


def make_hf_dirs(out, data):
    """Two small tokenizer.json files trained by HF tokenizers itself on
    wikitext lines: byte-level (Digits + ByteLevel, SmolLM2's layout, merges
    written as pairs by tokenizers >= 0.20) and SentencePiece-style
    (Prepend/Replace normalizer, byte_fallback). Golden ids from that same
    HF tokenizer, with and without special-token parsing."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers, processors
    lines = open(os.path.join(data, "wikitext-2-raw/wiki.test.raw"), encoding="utf-8").read().splitlines()[:600]
    # byte-level
    bl = Tokenizer(models.BPE())
    bl.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    bl.train_from_iterator(lines, trainers.BpeTrainer(vocab_size=700, special_tokens=["<|endoftext|>", "<s>", "</s>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    # SentencePiece-style
    sp = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>"))
    sp.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    sp.train_from_iterator(lines, trainers.BpeTrainer(vocab_size=600, special_tokens=["<unk>", "<s>", "</s>"] +
                                                       ["<0x%02X>" % b for b in range(256)]))
    sp.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    for name, tok in (("tok_hf_bytelevel", bl), ("tok_hf_spm", sp)):
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        tok.save(os.path.join(d, "tokenizer.json"))
        with open(os.path.join(d, "golden.tsv"), "w") as f:
            f.write("# hex(input)\tadd_special\tparse_special\tids from HF tokenizers (tools/make_tokenizer_golden.py)\n")
            for s in HF_TEXTS:
                for add, special in ((False, False), (False, True), (True, True)):
                    tok.encode_special_tokens = not special
                    ids = tok.encode(s, add_special_tokens=add).ids
                    f.write(f"{s.encode().hex() or '-'}\t{int(add)}\t{int(special)}\t{' '.join(map(str, ids))}\n")
        print(f"{name}: {tok.get_vocab_size()} tokens, {len(HF_TEXTS) * 3} golden cases")


if __name__ == "__main__":
    main()
