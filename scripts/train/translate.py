"""Greedy translation of held-out verses with a trained checkpoint, for evaluation.

Reads prompts from an encode.mjs file (e.g. /tmp/ids/test.ids.jsonl), decodes
greedily with a KV cache at full depth or with a ULS schedule (prompt at full
depth, new tokens through the kept layers, exactly as the engine does), and writes
the hypotheses (one per line) plus the Spanish references from the verse-pair JSONL.
Score them with: go run ./scripts/bible/score -hyp HYP -ref REF

  /usr/bin/python3 scripts/train/translate.py --model models/default/uls2 \
      --ids /tmp/ids/test.ids.jsonl --pairs /tmp/bible/test.jsonl --schedule uls:2 \
      --hyp /tmp/uls2.hyp --ref /tmp/test.ref
"""

import argparse
import json
import logging
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import load_checkpoint, uls_schedule  # noqa: E402

log = logging.getLogger("translate")


class Detokenizer:
    """Decodes ids with a LLaMA-style tokenizer.json (▁ → space, <0xXX> byte
    fallback, one leading space stripped), skipping special tokens."""

    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            tok = json.load(f)
        self.pieces = {i: p for p, i in tok["model"]["vocab"].items()}
        self.special = {t["id"] for t in tok.get("added_tokens", []) if t.get("special")}

    def decode(self, ids):
        out = bytearray()
        for i in ids:
            if i in self.special:
                continue
            p = self.pieces.get(i, "")
            if len(p) == 6 and p.startswith("<0x") and p.endswith(">"):
                out.append(int(p[3:5], 16))
            else:
                out += p.replace("\u2581", " ").encode("utf-8")
        text = out.decode("utf-8", errors="replace")
        return text[1:] if text.startswith(" ") else text


def parse_schedule(spec, num_layers):
    if spec in ("full", ""):
        return None
    if spec.startswith("uls:"):
        return uls_schedule(num_layers, int(spec[4:]))
    raise ValueError("schedule must be full or uls:R, got %r" % spec)


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="checkpoint directory (with tokenizer.json)")
    ap.add_argument("--ids", required=True, help="prompts from encode.mjs ({split}.ids.jsonl)")
    ap.add_argument("--pairs", help="verse pairs JSONL with the Spanish references")
    ap.add_argument("--schedule", default="full", help="full or uls:R")
    ap.add_argument("--refs", help="comma-separated verse references to translate (default: all)")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--hyp", help="write hypotheses here, one per line")
    ap.add_argument("--ref", help="write references here, one per line")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--golden-out", help="write {schedule, kept, cases:[{ref,en,prompt_ids,ids}]} JSON (models/default testdata)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    model = load_checkpoint(args.model).eval()
    kept = parse_schedule(args.schedule, model.cfg.num_hidden_layers)
    detok = Detokenizer(os.path.join(args.model, "tokenizer.json"))
    refs_text = {}
    if args.pairs:
        with open(args.pairs, encoding="utf-8") as f:
            for line in f:
                r = json.loads(line)
                refs_text[r["ref"]] = r
    wanted = set(args.refs.split(",")) if args.refs else None
    hyps, refs, cases = [], [], []
    start, new_tokens = time.time(), 0
    with open(args.ids) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    for r in rows:
        if wanted and r["ref"] not in wanted:
            continue
        out = model.generate(r["prompt"], args.max_new_tokens, kept=kept)
        new_tokens += len(out)
        hyp = detok.decode(out)
        hyps.append(hyp)
        ref = refs_text.get(r["ref"], {})
        cases.append({"ref": r["ref"], "en": ref.get("en"), "prompt_ids": r["prompt"], "ids": out, "text": hyp})
        refs.append(ref.get("es", ""))
        if wanted or len(hyps) <= 3:
            print(json.dumps({"ref": r["ref"], "en": ref.get("en"), "es": ref.get("es"), "hyp": hyp, "prompt_ids": r["prompt"], "ids": out, "kept": kept}, ensure_ascii=False))
    el = time.time() - start
    log.info("%d verses, %d new tokens in %.1fs (%.1f tok/s), schedule %s kept %s", len(hyps), new_tokens, el, new_tokens / max(el, 1e-9), args.schedule, kept)
    if args.golden_out:
        with open(args.golden_out, "w", encoding="utf-8") as f:
            json.dump({"schedule": args.schedule, "kept": kept, "cases": cases}, f, ensure_ascii=False, indent=1)
            f.write("\n")
    for path, lines in ((args.hyp, hyps), (args.ref, refs)):
        if path:
            with open(path, "w", encoding="utf-8") as f:
                f.write("".join(line.replace("\n", " ") + "\n" for line in lines))


if __name__ == "__main__":
    main()
