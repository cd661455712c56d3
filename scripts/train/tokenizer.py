"""Train the shared English/Spanish tokenizer of the default model.

SentencePiece (Debian's spm_train) learns a BPE model with byte fallback on the
English and Spanish sides of train.jsonl; this script then converts it into a
LLaMA-style Hugging Face tokenizer.json (Prepend+Replace "▁" normalizer, BPE with
byte_fallback, merges derived from the vocabulary, Replace/ByteFallback/Fuse/Strip
decoder, TemplateProcessing post-processor adding <s>).

Usage:
  /usr/bin/python3 scripts/train/tokenizer.py --data /tmp/bible --out /tmp/tok.json \
      [--vocab-size 4096] [--check-out /tmp/tok-check.jsonl]

--check-out writes {"text","ids"} lines encoded by spm_encode for dev/test verses so
scripts/train/check_tokenizer.mjs can confirm Hugging Face `tokenizers` gives the same ids.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

SPECIALS = ["<unk>", "<s>", "</s>"]  # ids 0, 1, 2
UNDERLINE = "\u2581"


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def train_spm(texts, prefix, vocab_size):
    """Runs spm_train on texts (one sentence per line) and returns the model path."""
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".txt", delete=False) as f:
        for t in texts:
            f.write(t + "\n")
        corpus = f.name
    try:
        subprocess.run(
            [
                "spm_train",
                "--input=" + corpus,
                "--model_prefix=" + prefix,
                "--model_type=bpe",
                "--vocab_size=%d" % vocab_size,
                "--character_coverage=1.0",
                "--byte_fallback=true",
                "--normalization_rule_name=identity",
                "--remove_extra_whitespaces=false",
                "--add_dummy_prefix=true",
                "--split_digits=true",
                "--unk_id=0",
                "--bos_id=1",
                "--eos_id=2",
                "--pad_id=-1",
                "--num_threads=2",
                "--seed_sentencepiece_size=200000",
                "--minloglevel=1",
            ],
            check=True,
        )
    finally:
        os.unlink(corpus)
    return prefix + ".model"


def export_vocab(model):
    out = subprocess.run(
        ["spm_export_vocab", "--model=" + model], check=True, capture_output=True, text=True
    ).stdout
    pieces = []
    for line in out.split("\n"):
        if not line:
            continue
        piece, score = line.rsplit("\t", 1)
        pieces.append((piece, float(score)))
    return pieces


def derive_merges(vocab):
    """Every way to build a vocabulary piece from two vocabulary pieces, ranked by
    the id of the result (SentencePiece BPE ids follow merge order), then by the
    ids of the parts — the usual SentencePiece→BPE conversion."""
    merges = []
    for piece, pid in vocab.items():
        if piece in SPECIALS or (piece.startswith("<0x") and piece.endswith(">")):
            continue
        for k in range(1, len(piece)):
            left, right = piece[:k], piece[k:]
            if left in vocab and right in vocab:
                merges.append((pid, vocab[left], vocab[right], left, right))
    merges.sort()
    return ["%s %s" % (m[3], m[4]) for m in merges]


def build_tokenizer_json(pieces):
    vocab = {p: i for i, (p, _) in enumerate(pieces)}
    for i, s in enumerate(SPECIALS):
        if vocab.get(s) != i:
            raise ValueError("special token %s is not id %d" % (s, i))
    added = [
        {
            "id": i,
            "content": s,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for i, s in enumerate(SPECIALS)
    ]
    bos = {"SpecialToken": {"id": "<s>", "type_id": 0}}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {
            "type": "Sequence",
            "normalizers": [
                {"type": "Prepend", "prepend": UNDERLINE},
                {"type": "Replace", "pattern": {"String": " "}, "content": UNDERLINE},
            ],
        },
        "pre_tokenizer": None,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [bos, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [
                bos,
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": "<s>", "type_id": 1}},
                {"Sequence": {"id": "B", "type_id": 1}},
            ],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}},
        },
        "decoder": {
            "type": "Sequence",
            "decoders": [
                {"type": "Replace", "pattern": {"String": UNDERLINE}, "content": " "},
                {"type": "ByteFallback"},
                {"type": "Fuse"},
                {"type": "Strip", "content": " ", "start": 1, "stop": 0},
            ],
        },
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": "<unk>",
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": True,
            "byte_fallback": True,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": derive_merges(vocab),
        },
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="directory with train.jsonl (and dev/test.jsonl for --check-out)")
    ap.add_argument("--out", required=True, help="tokenizer.json to write")
    ap.add_argument("--vocab-size", type=int, default=4096)
    ap.add_argument("--check-out", help="write spm_encode reference ids for dev/test verses here")
    args = ap.parse_args(argv)

    train = read_jsonl(os.path.join(args.data, "train.jsonl"))
    texts = [r["en"] for r in train] + [r["es"] for r in train]
    with tempfile.TemporaryDirectory() as tmp:
        model = train_spm(texts, os.path.join(tmp, "spm"), args.vocab_size)
        tok = build_tokenizer_json(export_vocab(model))
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(tok, f, ensure_ascii=False, indent=1)
        print("wrote %s: %d tokens, %d merges" % (args.out, len(tok["model"]["vocab"]), len(tok["model"]["merges"])), file=sys.stderr)
        if args.check_out:
            rows = []
            for split in ("dev", "test"):
                for r in read_jsonl(os.path.join(args.data, split + ".jsonl")):
                    # spm_encode reads one sentence per line, so no newline here;
                    # check_tokenizer.mjs checks "\n" (byte fallback <0x0A>) itself.
                    rows += [r["en"], r["es"], "English: %s Spanish: %s" % (r["en"], r["es"])]
            ids = subprocess.run(
                ["spm_encode", "--model=" + model, "--output_format=id"],
                input="\n".join(rows) + "\n",
                check=True,
                capture_output=True,
                text=True,
            ).stdout.split("\n")
            with open(args.check_out, "w", encoding="utf-8") as f:
                for text, line in zip(rows, ids):
                    f.write(json.dumps({"text": text, "ids": [int(x) for x in line.split()]}, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
