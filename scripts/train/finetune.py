"""ULS fine-tuning of a Hugging Face checkpoint (LLaMA, Mistral, Qwen2 or BLOOM).

    finetune.py --in HF_DIR --data train.jsonl [--dev dev.jsonl] --ratio 2 --out OUT_DIR
    finetune.py --in HF_DIR --data train.jsonl --ratios 1,2,3 --out OUT_DIR

The paper's recipe (arXiv 2404.06954): the prompt runs through all layers, every
response token through the layers the ULS schedule keeps at the batch's ratio (the
same rule as strata's `uls:R` schedule), the loss is next-token cross-entropy on the
response tokens and the EOS that ends them, and the word embeddings are frozen
(--no-freeze-embeddings trains them). With --ratios the ratio is drawn per batch, so
one checkpoint serves each of them (include 1 to keep full depth good). With
--distill W, a batch at a ratio above 1 also runs at full depth without gradients,
and W x KL(full depth || kept layers) is added to its loss (self-distillation: the
skipped-layer draft learns to agree with the full depth that verifies it).

Data: JSONL records {"prompt": text, "response": text}, tokenized with the
checkpoint's tokenizer.json by strata's Go tokenizer (scripts/train/encode; the
prompt gets the tokenizer's special tokens such as BOS, the response none), or
records {"prompt_ids": [...], "response_ids": [...]} used as they are.

OUT_DIR is an HF checkpoint in the input's layout (same tensor names and dtypes,
config.json unchanged except for "uls": {"ratios": [...], "default_schedule":
"uls:R"}, tokenizer and generation files copied) that `strata export` reads, so the
exported package decodes with the trained schedule by default. Progress goes to
stderr. The run saves its state under OUT_DIR/.finetune every --save-every steps
and continues from there when started again with the same arguments; the state is
removed once the checkpoint is written. For a given --seed, an interrupted and
resumed run ends with the same weights as an uninterrupted one (same device and
thread count, no --time-budget).
"""

import argparse
import glob
import json
import logging
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import model as M  # noqa: E402
from train import collate, lr_at, make_batches  # noqa: E402

log = logging.getLogger("finetune")

REPO = os.path.dirname(os.path.dirname(HERE))
STATE_DIR = ".finetune"
# Files of an HF checkpoint copied into the output unchanged (weights and config.json are written).
COPY_FILES = (
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
)


class UsageError(Exception):
    """Bad input: reported as one line, exit status 2."""


# ---- checkpoints


class HFCheckpoint:
    """A loaded HF checkpoint: the model plus what is needed to write it back in
    the same layout (config dictionary, per-tensor dtypes, tensor names)."""

    def __init__(self, in_dir):
        self.dir = in_dir
        path = os.path.join(in_dir, "config.json")
        try:
            with open(path) as f:
                self.config = json.load(f)
        except (OSError, ValueError) as e:
            raise UsageError("%s: %s" % (path, e)) from None
        arch = " ".join(self.config.get("architectures") or []) + " " + str(self.config.get("model_type", ""))
        self.family = "bloom" if "bloom" in arch.lower() else "llama"
        if self.family == "llama" and not any(a in arch.lower() for a in ("llama", "mistral", "qwen2")):
            raise UsageError("%s: unsupported architecture (%s); want LLaMA, Mistral, Qwen2 or BLOOM" % (path, arch.strip()))
        tensors, self.dtypes = self._read_weights()
        try:
            if self.family == "bloom":
                self.model = M.BloomForCausalLM(M.BloomConfig.from_hf(self.config))
            else:
                self.model = M.LlamaForCausalLM(M.Config.from_hf(self.config))
        except (KeyError, TypeError, ValueError) as e:
            raise UsageError("%s: %s" % (path, e)) from None
        # BLOOM checkpoints store their tensors with or without the "transformer." prefix.
        self.prefix = ""
        if self.family == "bloom" and not any(n.startswith("transformer.") for n in tensors):
            self.prefix = "transformer."
        state = {self.prefix + n if n != "lm_head.weight" else n: t for n, t in tensors.items()}
        want = self.model.state_dict()
        tied = self.family == "bloom" or self.model.cfg.tie_word_embeddings
        if tied:
            emb = "transformer.word_embeddings.weight" if self.family == "bloom" else "model.embed_tokens.weight"
            if emb in state:
                state.setdefault("lm_head.weight", state[emb])
        missing = sorted(set(want) - set(state))
        if missing:
            raise UsageError("%s: weights lack %s" % (in_dir, ", ".join(missing[:5])))
        for name, t in want.items():
            if tuple(state[name].shape) != tuple(t.shape):
                raise UsageError("%s: %s has shape %s, config.json implies %s" % (in_dir, name, list(state[name].shape), list(t.shape)))
        # Tensors the model does not hold (e.g. rotary buffers) are written back unchanged.
        self.extra = {n: t for n, t in state.items() if n not in want}
        self.model.load_state_dict({n: state[n] for n in want})
        self.names = sorted(tensors)

    def _read_weights(self):
        files = sorted(glob.glob(os.path.join(self.dir, "*.safetensors")))
        if not files:
            raise UsageError("%s: no .safetensors weights" % self.dir)
        tensors, dtypes = {}, {}
        for f in files:
            try:
                t, d, _ = M.read_safetensors(f)
            except (OSError, ValueError) as e:
                raise UsageError("%s: %s" % (f, e)) from None
            tensors.update(t)
            dtypes.update(d)
        return tensors, dtypes

    @property
    def eos_id(self):
        gen = os.path.join(self.dir, "generation_config.json")
        eos = None
        if os.path.exists(gen):
            with open(gen) as f:
                eos = M._first_id(json.load(f).get("eos_token_id"), None)
        if eos is None:
            eos = M._first_id(self.config.get("eos_token_id"), None)
        if eos is None:
            raise UsageError("%s: neither generation_config.json nor config.json gives eos_token_id" % self.dir)
        return eos

    def save(self, out_dir, ratios=None, default_ratio=None):
        """Writes the checkpoint to out_dir in the input's layout, atomically per file.
        With ratios, config.json records {"uls": {"ratios", "default_schedule"}}."""
        os.makedirs(out_dir, exist_ok=True)
        state = {k: v for k, v in self.model.state_dict().items()}
        state.update(self.extra)
        out = {}
        for name in self.names:
            src = name if name == "lm_head.weight" else self.prefix + name
            out[name] = state[src]
        cfg = dict(self.config)
        if ratios:
            cfg["uls"] = {"ratios": list(ratios)}
            if default_ratio > 1:
                cfg["uls"]["default_schedule"] = "uls:%d" % default_ratio
        for old in glob.glob(os.path.join(out_dir, "*.safetensors")) + glob.glob(os.path.join(out_dir, "*.safetensors.index.json")):
            os.remove(old)
        M.save_safetensors(os.path.join(out_dir, "model.safetensors"), out, self.dtypes)
        _write_json(os.path.join(out_dir, "config.json"), cfg)
        for f in COPY_FILES:
            src = os.path.join(self.dir, f)
            if os.path.isfile(src) and os.path.abspath(src) != os.path.abspath(os.path.join(out_dir, f)):
                shutil.copyfile(src, os.path.join(out_dir, f + ".tmp"))
                os.replace(os.path.join(out_dir, f + ".tmp"), os.path.join(out_dir, f))


def _write_json(path, obj):
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")
    os.replace(path + ".tmp", path)


# ---- data


def encoder_command(tokenizer):
    """The command that tokenizes JSONL records: $STRATA_ENCODE if set (a built
    scripts/train/encode binary), else `go run ./scripts/train/encode`."""
    exe = os.environ.get("STRATA_ENCODE")
    if exe:
        return [exe, "-tokenizer", tokenizer], None
    return ["go", "run", "./scripts/train/encode", "-tokenizer", tokenizer], REPO


def load_examples(path, ckpt, max_len):
    """(prompt_ids, response_ids + [EOS]) pairs of a JSONL file, tokenizing text
    records with the checkpoint's tokenizer.json."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise UsageError("%s: %s" % (path, e)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError("%s: line %d: not UTF-8 (byte 0x%02x)" % (path, raw.count(b"\n", 0, e.start) + 1, raw[e.start])) from None
    # The file's own line number of every record (blank lines are skipped), for error messages.
    numbered = [(n, ln) for n, ln in enumerate(text.split("\n"), 1) if ln.strip()]
    if not numbered:
        raise UsageError("%s: no records" % path)
    linenos, recs = [], []
    for n, ln in numbered:
        try:
            rec = json.loads(ln)
        except json.JSONDecodeError as e:
            raise UsageError("%s: line %d column %d: %s" % (path, n, e.colno, e.msg)) from None
        except ValueError as e:
            raise UsageError("%s: line %d: %s" % (path, n, e)) from None
        if not isinstance(rec, dict):
            raise UsageError("%s: line %d: want a JSON object, got %s" % (path, n, type(rec).__name__))
        linenos.append(n)
        recs.append(rec)
    if not all("prompt_ids" in r and "response_ids" in r for r in recs):
        tok = os.path.join(ckpt.dir, "tokenizer.json")
        if not os.path.exists(tok):
            raise UsageError("%s has text records but %s has no tokenizer.json; give prompt_ids/response_ids" % (path, ckpt.dir))
        cmd, cwd = encoder_command(tok)
        try:
            p = subprocess.run(cmd, input=raw, capture_output=True, cwd=cwd, check=False)
        except OSError as e:
            raise UsageError("tokenize %s: %s" % (path, e)) from None
        if p.returncode != 0:
            err = p.stderr.decode("utf-8", "replace").strip().splitlines()
            raise UsageError("tokenize %s: %s" % (path, err[-1] if err else "exit status %d" % p.returncode))
        try:
            recs = [json.loads(ln) for ln in p.stdout.decode("utf-8").splitlines() if ln.strip()]
        except ValueError as e:
            raise UsageError("tokenize %s: unreadable output: %s" % (path, e)) from None
        if len(recs) != len(linenos):
            raise UsageError("tokenize %s: %d records in, %d out" % (path, len(linenos), len(recs)))
    eos = ckpt.eos_id
    vocab = ckpt.model.cfg.vocab_size
    out, dropped = [], 0
    for n, r in zip(linenos, recs):
        p, resp = r.get("prompt_ids"), r.get("response_ids")
        if not isinstance(p, list) or not isinstance(resp, list) or not p:
            raise UsageError("%s: line %d needs a non-empty prompt_ids list and a response_ids list" % (path, n))
        for key, ids in (("prompt_ids", p), ("response_ids", resp)):
            # bool is an int in Python; 1.5 and true are not token ids.
            bad = next((t for t in ids if type(t) is not int), None)
            if bad is not None:
                raise UsageError("%s: line %d: %s holds %s, not an integer token id" % (path, n, key, json.dumps(bad)))
            bad = next((t for t in ids if t < 0 or t >= vocab), None)
            if bad is not None:
                raise UsageError("%s: line %d: %s holds %d, outside the vocabulary (0..%d)" % (path, n, key, bad, vocab - 1))
        resp = resp + [eos]
        if len(p) + len(resp) > max_len:
            dropped += 1
            continue
        out.append((p, resp))
    if not out:
        raise UsageError("%s: every record is longer than --max-len %d tokens" % (path, max_len))
    log.info("%s: %d examples (%d longer than %d tokens dropped)", path, len(out), dropped, max_len)
    return out


class BatchOrder:
    """The batch of every step, a pure function of (seed, step): epoch e's order is
    make_batches with random.Random(seed + e), so a resumed run sees the same data."""

    def __init__(self, examples, batch_size, seed):
        self.examples, self.batch_size, self.seed = examples, batch_size, seed
        self.epoch, self.first, self.batches = -1, 0, []

    def at(self, step):
        while step >= self.first + len(self.batches) or step < self.first:
            if step < self.first:
                self.epoch, self.first, self.batches = -1, 0, []
            self.first += len(self.batches)
            self.epoch += 1
            self.batches = make_batches(self.examples, self.batch_size, random.Random(self.seed + self.epoch))
        return self.batches[step - self.first], self.epoch


def ratio_at(ratios, seed, step):
    """The ULS ratio of a step, drawn uniformly from ratios, a function of (seed, step)."""
    return random.Random("%d:%d" % (seed, step)).choice(ratios)


def kept_layers(num_layers, ratio):
    """Kept layers at ratio, or None (all layers, the plain forward) at ratio 1."""
    return None if ratio == 1 else M.uls_schedule(num_layers, ratio)


def batch_loss(model, examples, batch, kept, device, distill=0.0):
    """The loss of one batch with the response through kept (None: all layers):
    (loss, cross-entropy, KL, response tokens, input tokens).

    With distill > 0 and kept layers, the loss is the cross-entropy plus distill
    times KL(full depth || kept layers) per response token: the same batch runs at
    full depth without gradients (a detached teacher), and the skipped-layer path is
    trained toward that next-token distribution, the one lossless decoding verifies
    its drafts against (docs/design.md, "Lossless decoding"). Full depth itself is
    trained only by its own cross-entropy (the batches at ratio 1)."""
    inputs, targets, skip_from = (t.to(device) for t in collate(examples, batch, pad_id=0))
    select = targets != -100
    logits = model(inputs, skip_from=skip_from, kept=kept, select=select).float()
    ce = F.cross_entropy(logits, targets[select])
    loss, kl = ce, None
    if distill and kept is not None:
        with torch.no_grad():
            teacher = F.log_softmax(model(inputs, select=select).float(), dim=-1)
        kl = F.kl_div(F.log_softmax(logits, dim=-1), teacher, log_target=True, reduction="batchmean")
        loss = ce + distill * kl
    return loss, ce, kl, int(select.sum()), int(inputs.numel())


@torch.no_grad()
def dev_loss(model, examples, ratio, batch_size=16, device="cpu"):
    """Mean response-token loss with the response decoded at ratio (ULS pass)."""
    was = model.training
    model.eval()
    kept = kept_layers(model.cfg.num_hidden_layers, ratio)
    total, count = 0.0, 0
    for i in range(0, len(examples), batch_size):
        loss, _, _, n, _ = batch_loss(model, examples, list(range(i, min(i + batch_size, len(examples)))), kept, device)
        total += float(loss) * n
        count += n
    model.train(was)
    return total / max(count, 1)


@torch.no_grad()
def agreement(model, examples, ratio, batch_size=16, device="cpu"):
    """The fraction of response positions (teacher-forced on examples) where the
    greedy token of the ratio's kept layers equals that of full depth: how often a
    draft token at that ratio would survive lossless verification."""
    was = model.training
    model.eval()
    kept = kept_layers(model.cfg.num_hidden_layers, ratio)
    same, count = 0, 0
    for i in range(0, len(examples), batch_size):
        batch = list(range(i, min(i + batch_size, len(examples))))
        inputs, targets, skip_from = (t.to(device) for t in collate(examples, batch, pad_id=0))
        select = targets != -100
        full = model(inputs, select=select).argmax(-1)
        draft = full if kept is None else model(inputs, skip_from=skip_from, kept=kept, select=select).argmax(-1)
        same += int((full == draft).sum())
        count += int(select.sum())
    model.train(was)
    return same / max(count, 1)


# ---- training


def parse_ratios(args, num_layers):
    if args.ratio and args.ratios:
        raise UsageError("give --ratio or --ratios, not both")
    text = args.ratios or str(args.ratio or "")
    if not text:
        raise UsageError("give --ratio R or --ratios R1,R2,...")
    try:
        ratios = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError("ratios must be integers, got %r" % text) from None
    if not ratios or len(set(ratios)) != len(ratios):
        raise UsageError("ratios must be distinct integers, got %r" % text)
    for r in ratios:
        try:
            M.uls_schedule(num_layers, r)
        except ValueError as e:
            raise UsageError("%s (the model has %d layers)" % (e, num_layers)) from None
    default = args.default_ratio
    if default is None:
        above = [r for r in ratios if r > 1]
        default = min(above) if above else 1
    if default not in ratios:
        raise UsageError("--default-ratio %d is not one of the trained ratios %s" % (default, ratios))
    return ratios, default


def build_parser():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--in", dest="inp", required=True, help="HF checkpoint directory (config.json + safetensors)")
    ap.add_argument("--data", required=True, help="training JSONL (prompt/response text or prompt_ids/response_ids)")
    ap.add_argument("--dev", help="dev JSONL: the loss at each trained ratio is reported before and after")
    ap.add_argument("--out", required=True, help="checkpoint directory to write")
    ap.add_argument("--ratio", type=int, help="ULS speedup ratio")
    ap.add_argument("--ratios", help="comma-separated ratios, one drawn per batch (e.g. 1,2,3)")
    ap.add_argument("--default-ratio", type=int, help="ratio of the manifest's default schedule (default: the smallest above 1)")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--warmup", type=float, default=0.03, help="warm-up fraction of the steps")
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--max-len", type=int, default=512, help="longest prompt+response kept, in tokens")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument(
        "--freeze-embeddings",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="freeze the word embeddings as the paper does (with a tied head this freezes the head too)",
    )
    ap.add_argument(
        "--distill",
        type=float,
        default=0.0,
        metavar="WEIGHT",
        help="self-distillation: at ratios above 1 add WEIGHT x KL(full depth || kept layers) on the same batch (0: off)",
    )
    ap.add_argument("--save-every", type=int, default=100, help="steps between saved states (0: never)")
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--time-budget", type=float, default=0, help="minutes; progress is max(step/steps, elapsed/budget)")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return ap


def check_args(args):
    """Refuses flag values that would fail later with a Python error."""
    if args.steps < 1 or args.batch_size < 1:
        raise UsageError("--steps and --batch-size must be at least 1")
    if args.distill < 0:
        raise UsageError("--distill must be at least 0")
    if args.lr <= 0 or args.weight_decay < 0:
        raise UsageError("--lr must be above 0 and --weight-decay at least 0")
    if not 0 <= args.warmup < 1:
        raise UsageError("--warmup must be in [0, 1)")
    if args.log_every < 1 or args.save_every < 0 or args.threads < 1 or args.time_budget < 0:
        raise UsageError("--log-every and --threads must be at least 1, --save-every and --time-budget at least 0")
    if args.max_len < 2:
        raise UsageError("--max-len must be at least 2")
    try:
        dev = torch.device(args.device)
    except RuntimeError as e:
        raise UsageError("--device %s: %s" % (args.device, e)) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device %s: CUDA is not available" % args.device)


def check_out(out, inp):
    """Refuses, before any training, an --out that is the --in checkpoint (also through
    a symbolic link) or inside it, that is not a directory, or that cannot be written."""
    real_out, real_in = os.path.realpath(out), os.path.realpath(inp)
    same = real_out == real_in or (os.path.exists(out) and os.path.exists(inp) and os.path.samefile(out, inp))
    if same:
        raise UsageError("--out %s is the --in checkpoint; write the fine-tuned one elsewhere" % out)
    if real_out.startswith(real_in.rstrip(os.sep) + os.sep):
        raise UsageError("--out %s is inside the --in checkpoint %s" % (out, inp))
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError("--out %s exists and is not a directory" % out)
    parent = real_out
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise UsageError("--out %s: %s is not a directory" % (out, parent))
    # Create and remove a file where the first missing directory (or the checkpoint) will go.
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=".finetune-probe-")
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        raise UsageError("--out %s: cannot write in %s: %s" % (out, parent, e.strerror or e)) from None


def fingerprint(args):
    """The arguments a resumed run must share with the saved state."""
    keys = ("inp", "data", "ratio", "ratios", "steps", "batch_size", "lr", "warmup", "weight_decay", "max_len", "seed", "freeze_embeddings", "time_budget", "distill")
    return {k: getattr(args, k) for k in keys}


def finetune(args):
    """Runs the fine-tuning and writes the checkpoint; returns a summary dictionary."""
    check_args(args)
    check_out(args.out, args.inp)
    torch.manual_seed(args.seed)
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    ckpt = HFCheckpoint(args.inp)
    model = ckpt.model
    n_layers = model.cfg.num_hidden_layers
    ratios, default_ratio = parse_ratios(args, n_layers)
    train_ex = load_examples(args.data, ckpt, args.max_len)
    dev_ex = load_examples(args.dev, ckpt, args.max_len) if args.dev else []
    if args.freeze_embeddings:
        model.word_embeddings.weight.requires_grad_(False)
    model.to(args.device)
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95)
    )
    for r in ratios:
        log.info("ratio %d: kept layers %s", r, M.uls_schedule(n_layers, r))
    log.info(
        "%s, %d layers, %d parameters (%d trained); %d train examples; %d steps of %d",
        ckpt.family, n_layers, sum(p.numel() for p in model.parameters()), sum(p.numel() for p in params), len(train_ex), args.steps, args.batch_size,
    )
    summary = {"ratios": ratios, "default_ratio": default_ratio, "distill": args.distill}
    if dev_ex:
        summary["dev_before"] = {str(r): round(dev_loss(model, dev_ex, r, device=args.device), 4) for r in ratios}
        log.info("dev loss before: %s", summary["dev_before"])
        summary["dev_agreement_before"] = {str(r): round(agreement(model, dev_ex, r, device=args.device), 4) for r in ratios if r > 1}
        log.info("dev agreement with full depth before: %s", summary["dev_agreement_before"])

    state_dir = os.path.join(args.out, STATE_DIR)
    state_path = os.path.join(state_dir, "state.pt")
    step, elapsed_before, progress = 0, 0.0, 0.0
    if os.path.exists(state_path):
        try:
            st = torch.load(state_path, map_location=args.device)
            saved_args = st["args"]
        except Exception as e:  # a truncated or foreign file: torch raises many kinds
            raise UsageError("%s: unreadable saved state (%s); remove it to start over" % (state_path, e)) from None
        if saved_args != fingerprint(args):
            raise UsageError("%s was saved by a run with other arguments; remove it to start over" % state_dir)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        step, elapsed_before = st["step"], st["elapsed"]
        log.info("resuming from step %d (%s)", step, state_path)
    summary["resumed_from"] = step

    def save_state():
        os.makedirs(state_dir, exist_ok=True)
        tmp = state_path + ".tmp"
        torch.save(
            {"args": fingerprint(args), "step": step, "elapsed": elapsed_before + time.time() - start, "model": model.state_dict(), "optimizer": opt.state_dict()},
            tmp,
        )
        os.replace(tmp, state_path)

    order = BatchOrder(train_ex, args.batch_size, args.seed)
    start = time.time()
    losses, tokens, run_steps = [], 0, 0
    history, kls = [], []
    # Steps per ratio, including those of a run this one resumes (the draw is a function of seed and step).
    per_ratio = {r: 0 for r in ratios}
    for i in range(step):
        per_ratio[ratio_at(ratios, args.seed, i)] += 1
    model.train()
    progress = step / args.steps
    while progress < 1.0:
        batch, epoch = order.at(step)
        ratio = ratio_at(ratios, args.seed, step)
        lr = lr_at(progress, args.lr, args.warmup)
        for g in opt.param_groups:
            g["lr"] = lr
        loss, _, kl, _, ntok = batch_loss(model, train_ex, batch, kept_layers(n_layers, ratio), args.device, args.distill)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(float(loss))
        if kl is not None:
            kls.append(float(kl))
        per_ratio[ratio] += 1
        tokens += ntok
        step += 1
        run_steps += 1
        el = time.time() - start
        progress = step / args.steps
        if args.time_budget:
            progress = max(progress, (elapsed_before + el) / (args.time_budget * 60))
        if step % args.log_every == 0 or run_steps == 1 or progress >= 1:
            recent = losses[-args.log_every :]
            avg = sum(recent) / len(recent)
            history.append((step, round(avg, 4)))
            rate = run_steps / max(el, 1e-9)
            eta = (1 - progress) * (el / max(progress - summary["resumed_from"] / args.steps, 1e-9)) if not args.time_budget else max(0.0, args.time_budget * 60 - elapsed_before - el)
            kl_text = " kl %.4f" % (sum(kls[-args.log_every :]) / len(kls[-args.log_every :])) if kls else ""
            log.info(
                "step %d/%d epoch %d ratio %d loss %.4f%s lr %.2e %.0f tok/s %.2f steps/s ETA %s steps per ratio %s",
                step, args.steps, epoch, ratio, avg, kl_text, lr, tokens / max(el, 1e-9), rate, _hms(eta),
                " ".join("%d:%d" % (r, n) for r, n in per_ratio.items()),
            )
        if args.save_every and step % args.save_every == 0 and progress < 1.0:
            save_state()
    summary.update(
        {
            "steps": step,
            "steps_per_ratio": {str(r): n for r, n in per_ratio.items()},
            "run_steps": run_steps,
            "tokens": tokens,
            "seconds": round(elapsed_before + time.time() - start, 1),
            "loss_history": history,
        }
    )
    if losses:
        summary["first_loss"] = round(losses[0], 4)
        summary["final_train_loss"] = history[-1][1]
    if dev_ex:
        summary["dev_after"] = {str(r): round(dev_loss(model, dev_ex, r, device=args.device), 4) for r in ratios}
        log.info("dev loss after: %s", summary["dev_after"])
        summary["dev_agreement_after"] = {str(r): round(agreement(model, dev_ex, r, device=args.device), 4) for r in ratios if r > 1}
        log.info("dev agreement with full depth after: %s", summary["dev_agreement_after"])
    model.to("cpu")
    ckpt.save(args.out, ratios, default_ratio)
    shutil.rmtree(state_dir, ignore_errors=True)
    log.info("wrote %s (default schedule %s)", args.out, "uls:%d" % default_ratio if default_ratio > 1 else "full depth")
    return summary


def _hms(sec):
    sec = int(sec)
    return "%d:%02d:%02d" % (sec // 3600, sec % 3600 // 60, sec % 60)


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    try:
        summary = finetune(args)
    except UsageError as e:
        print("finetune: %s" % e, file=sys.stderr)
        return 2
    except OSError as e:  # e.g. the disk filling up while the state or checkpoint is written
        print("finetune: %s" % e, file=sys.stderr)
        return 1
    print(json.dumps({k: v for k, v in summary.items() if k != "loss_history"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
