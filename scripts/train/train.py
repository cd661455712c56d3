"""Training recipe of the default model (both stages of the ULS paper).

Stage 1 (full depth):   train.py --data IDS --tokenizer tokenizer.json --out base/
Stage 2 (ULS ratio r):  train.py --data IDS --tokenizer tokenizer.json --init base/ --uls-ratio 2 --out uls2/

IDS is the directory written by encode.mjs ({split}.ids.jsonl with prompt/response
ids). The loss is next-token cross-entropy on the response tokens (and the EOS that
ends them). In stage 2 the prompt runs through all layers and the response tokens
through the kept layers only (model.LlamaForCausalLM.forward), the word embeddings
are frozen, and config.json gets "uls": {"ratios": [r], "default_schedule": "uls:r"}.
Runs on CPU with Debian's PyTorch 1.13 (/usr/bin/python3) and on CUDA with current
PyTorch. Deterministic for a given --seed on one device and thread count.
"""

import argparse
import json
import logging
import math
import os
import random
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import Config, LlamaForCausalLM, load_checkpoint, save_checkpoint, uls_schedule  # noqa: E402

log = logging.getLogger("train")


def load_examples(path, max_len, eos_id):
    """(prompt, response+EOS) id lists whose total length is at most max_len."""
    out, dropped = [], 0
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            prompt, response = r["prompt"], r["response"] + [eos_id]
            if len(prompt) + len(response) > max_len:
                dropped += 1
                continue
            out.append((prompt, response))
    log.info("%s: %d examples (%d longer than %d tokens dropped)", path, len(out), dropped, max_len)
    return out


def make_batches(examples, batch_size, rng):
    """Shuffled batches of similar length (less padding): shuffle, sort chunks of
    50 batches by length, cut them into batches, shuffle the batches."""
    idx = list(range(len(examples)))
    rng.shuffle(idx)
    chunk = batch_size * 50
    batches = []
    for i in range(0, len(idx), chunk):
        part = sorted(idx[i : i + chunk], key=lambda j: len(examples[j][0]) + len(examples[j][1]))
        batches += [part[k : k + batch_size] for k in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(examples, batch, pad_id):
    """inputs [B,S], targets [B,S] (-100 where no loss), skip_from [B] (first
    response position in inputs, i.e. the prompt length)."""
    seqs = [examples[j][0] + examples[j][1] for j in batch]
    width = max(len(s) for s in seqs) - 1
    inputs = torch.full((len(batch), width), pad_id, dtype=torch.long)
    targets = torch.full((len(batch), width), -100, dtype=torch.long)
    skip_from = torch.zeros(len(batch), dtype=torch.long)
    for row, (j, s) in enumerate(zip(batch, seqs)):
        p = len(examples[j][0])
        inputs[row, : len(s) - 1] = torch.tensor(s[:-1])
        # Position p-1 (last prompt token) predicts the first response token.
        targets[row, p - 1 : len(s) - 1] = torch.tensor(s[p:])
        skip_from[row] = p
    return inputs, targets, skip_from


def loss_fn(model, inputs, targets, skip_from, kept):
    select = targets != -100
    logits = model(inputs, skip_from=skip_from, kept=kept, select=select)
    return F.cross_entropy(logits.float(), targets[select])


@torch.no_grad()
def evaluate(model, examples, batch_size, kept, device, pad_id):
    """Mean response-token loss over examples."""
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(examples), batch_size):
        batch = list(range(i, min(i + batch_size, len(examples))))
        inputs, targets, skip_from = (t.to(device) for t in collate(examples, batch, pad_id))
        n = int((targets != -100).sum())
        total += float(loss_fn(model, inputs, targets, skip_from, kept)) * n
        count += n
    model.train()
    return total / max(count, 1)


def lr_at(progress, peak, warmup, floor=0.1):
    """Linear warm-up over the first `warmup` fraction of training, then cosine
    decay to floor*peak; progress runs from 0 to 1."""
    if progress < warmup:
        return peak * max(progress, 1e-3) / warmup
    t = (progress - warmup) / max(1e-9, 1 - warmup)
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def build_parser():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="directory with train/dev .ids.jsonl from encode.mjs")
    ap.add_argument("--tokenizer", help="tokenizer.json copied into the checkpoint")
    ap.add_argument("--out", required=True, help="checkpoint directory to write")
    ap.add_argument("--init", help="checkpoint to start from (stage 2: the base model)")
    ap.add_argument("--uls-ratio", type=int, default=0, help="stage 2: ULS speedup ratio (0 = full depth)")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=float, default=0.03, help="warm-up fraction of the steps")
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--max-len", type=int, default=128, help="longest prompt+response kept, in tokens")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument(
        "--time-budget",
        type=float,
        default=0,
        help="minutes; when set, the schedule's progress is max(step/steps, elapsed/budget) and training "
        "ends when it reaches 1, so a slow shared machine still finishes the cosine decay (0 = steps only)",
    )
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    # Model shape (stage 1 only; stage 2 takes it from --init).
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--intermediate", type=int, default=704)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--tie", action="store_true", help="tie lm_head to the word embeddings")
    return ap


def train(args):
    """Runs one stage and saves the checkpoint; returns a summary dictionary."""
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    if args.init:
        model = load_checkpoint(args.init)
    else:
        model = LlamaForCausalLM(
            Config(
                vocab_size=args.vocab,
                hidden_size=args.hidden,
                intermediate_size=args.intermediate,
                num_hidden_layers=args.layers,
                num_attention_heads=args.heads,
                num_key_value_heads=args.kv_heads,
                max_position_embeddings=max(256, args.max_len),
                tie_word_embeddings=args.tie,
            )
        )
    cfg = model.cfg
    kept = None
    if args.uls_ratio:
        kept = uls_schedule(cfg.num_hidden_layers, args.uls_ratio)
        cfg.uls_ratios = [args.uls_ratio]
        # The paper freezes the word embeddings. With a tied head this freezes the
        # head as well (our default model is untied, so its head is trained).
        model.model.embed_tokens.weight.requires_grad_(False)
        log.info("ULS ratio %d: kept layers %s; word embeddings frozen", args.uls_ratio, kept)
    model.to(args.device)
    pad_id = cfg.eos_token_id
    train_ex = load_examples(os.path.join(args.data, "train.ids.jsonl"), args.max_len, cfg.eos_token_id)
    dev_path = os.path.join(args.data, "dev.ids.jsonl")
    dev_ex = load_examples(dev_path, args.max_len, cfg.eos_token_id) if os.path.exists(dev_path) else []
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
        betas=(0.9, 0.95),
    )
    n_params = sum(p.numel() for p in model.parameters())
    n_train = sum(p.numel() for p in params)
    log.info("model: %d parameters (%d trained); %d train examples; up to %d steps of %d", n_params, n_train, len(train_ex), args.steps, args.batch_size)
    rng = random.Random(args.seed)
    batches, epoch = [], 0
    start = time.time()
    losses, tokens = [], 0
    history = []
    model.train()
    step, progress = 0, 0.0
    while progress < 1.0:
        if not batches:
            batches = make_batches(train_ex, args.batch_size, rng)
            epoch += 1
        inputs, targets, skip_from = (t.to(args.device) for t in collate(train_ex, batches.pop(), pad_id))
        lr = lr_at(progress, args.lr, args.warmup)
        for g in opt.param_groups:
            g["lr"] = lr
        loss = loss_fn(model, inputs, targets, skip_from, kept)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(float(loss))
        tokens += int(inputs.numel())
        step += 1
        el = time.time() - start
        progress = step / args.steps
        if args.time_budget:
            progress = max(progress, el / (args.time_budget * 60))
        if step % args.log_every == 0 or step == 1 or progress >= 1:
            avg = sum(losses[-args.log_every :]) / len(losses[-args.log_every :])
            history.append((step, round(avg, 4)))
            log.info("step %d progress %.3f epoch %d loss %.4f lr %.2e %.2f steps/s %.0f tok/s", step, progress, epoch, avg, lr, step / el, tokens / el)
    elapsed = time.time() - start
    summary = {
        "steps": step,
        "tokens": tokens,
        "epochs_started": epoch,
        "seconds": round(elapsed, 1),
        "final_train_loss": round(sum(losses[-args.log_every :]) / len(losses[-args.log_every :]), 4),
        "first_loss": round(losses[0], 4),
        "loss_history": history,
    }
    if dev_ex:
        summary["dev_loss_full"] = round(evaluate(model, dev_ex, args.batch_size, None, args.device, pad_id), 4)
        if kept is not None:
            summary["dev_loss_uls"] = round(evaluate(model, dev_ex, args.batch_size, kept, args.device, pad_id), 4)
    log.info("done: %s", json.dumps({k: v for k, v in summary.items() if k != "loss_history"}))
    model.to("cpu")
    save_checkpoint(model, args.out, args.tokenizer)
    return summary


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    summary = train(args)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
