"""CI-sized tests of finetune.py: ULS fine-tuning of synthetic HF checkpoints
(export/synth's LLaMA/Qwen2/Mistral shapes and a BLOOM written here), the written
checkpoint through strata export/verify/generate/eval, bit-exact load-then-save,
resuming after a kill, and the ULS schedule shared with the Go engine."""

import contextlib
import io
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import unittest

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import finetune as FT  # noqa: E402
import model as M  # noqa: E402

REPO = FT.REPO
_TMP = None
_BIN = {}


def setUpModule():
    """Builds the Go tools the tests call (strata, the tokenizer command, the
    synthetic checkpoint writer) once."""
    global _TMP
    _TMP = tempfile.mkdtemp(prefix="strata-finetune-test-")
    for name, pkg in (("strata", "./cmd/strata"), ("encode", "./scripts/train/encode"), ("synth", "./scripts/train/synth")):
        out = os.path.join(_TMP, name)
        subprocess.run(["go", "build", "-o", out, pkg], cwd=REPO, check=True)
        _BIN[name] = out
    os.environ["STRATA_ENCODE"] = _BIN["encode"]


def tearDownModule():
    shutil.rmtree(_TMP, ignore_errors=True)


def strata(*args, check=True):
    p = subprocess.run([_BIN["strata"]] + list(args), capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError("strata %s: exit %d: %s" % (" ".join(args), p.returncode, p.stderr))
    return p


def synth_checkpoint(d, preset="llama2", tokenizer=False, layers=0):
    args = [_BIN["synth"], "-preset", preset, "-out", d, "-layers", str(layers)]
    if tokenizer:
        args.append("-tokenizer")
    subprocess.run(args, check=True)
    return d


def write_reverse_task(path, n, seed):
    """A learnable toy task in text: "rev abc =" -> "cba" (character tokens)."""
    rng = random.Random(seed)
    with open(path, "w") as f:
        for _ in range(n):
            body = "".join(rng.choice("abcdefgh") for _ in range(rng.randrange(3, 6)))
            f.write(json.dumps({"prompt": "rev " + body + " =", "response": body[::-1]}) + "\n")
    return path


def write_ids_task(path, n, seed, lo=3, hi=12, sep=13, bos=1):
    """The same task as token ids: prompt [BOS] body [sep], response body reversed."""
    rng = random.Random(seed)
    with open(path, "w") as f:
        for _ in range(n):
            body = [rng.randrange(lo, hi) for _ in range(rng.randrange(3, 6))]
            f.write(json.dumps({"prompt_ids": [bos] + body + [sep], "response_ids": body[::-1]}) + "\n")
    return path


def run_finetune(argv):
    return FT.finetune(FT.build_parser().parse_args(argv + ["--threads", "1", "--device", "cpu"]))


def safetensors_raw(path):
    """{name: (dtype, shape, bytes)} of a safetensors file."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    out = {}
    for name, info in header.items():
        if name != "__metadata__":
            a, b = info["data_offsets"]
            out[name] = (info["dtype"], info["shape"], data[8 + n + a : 8 + n + b])
    return out


def load_dir_raw(d):
    out = {}
    for f in sorted(os.listdir(d)):
        if f.endswith(".safetensors"):
            out.update(safetensors_raw(os.path.join(d, f)))
    return out


def write_bloom(d, layers=4, hidden=64, heads=4, vocab=64, prefixed=False, seed=0, dtype="F16"):
    """A synthetic BLOOM checkpoint in Hugging Face's layout (tied head, tensors
    without the "transformer." prefix unless prefixed, as bigscience's files)."""
    torch.manual_seed(seed)
    cfg = M.BloomConfig(vocab_size=vocab, hidden_size=hidden, n_layer=layers, n_head=heads)
    model = M.BloomForCausalLM(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "layernorm" in name or "ln_f" in name:
                p.add_(torch.randn_like(p) * 0.05)
        # Unit-norm word embeddings, as trained models have: the frozen tied head then separates tokens.
        model.transformer.word_embeddings.weight.normal_(std=hidden**-0.5)
    os.makedirs(d, exist_ok=True)
    state = {k: v for k, v in model.state_dict().items() if k != "lm_head.weight"}
    if not prefixed:
        state = {k[len("transformer.") :]: v for k, v in state.items()}
    M.save_safetensors(os.path.join(d, "model.safetensors"), state, dtype)
    config = {
        "architectures": ["BloomForCausalLM"],
        "model_type": "bloom",
        "vocab_size": vocab,
        "hidden_size": hidden,
        "n_layer": layers,
        "n_head": heads,
        "layer_norm_epsilon": 1e-5,
        "apply_residual_connection_post_layernorm": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
    }
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    return model


class ScheduleTableTest(unittest.TestCase):
    def test_same_table_as_engine(self):
        """engine/schedule_test.go checks the Go rule against the same file."""
        with open(os.path.join(REPO, "engine", "testdata", "uls_schedules.json")) as f:
            rows = json.load(f)
        self.assertGreater(len(rows), 100)
        for r in rows:
            with self.subTest(layers=r["layers"], ratio=r["ratio"]):
                if r["kept"] is None:
                    with self.assertRaises(ValueError):
                        M.uls_schedule(r["layers"], r["ratio"])
                else:
                    self.assertEqual(M.uls_schedule(r["layers"], r["ratio"]), r["kept"])

    def test_ratio_draw(self):
        draws = [FT.ratio_at([1, 2, 3], 7, s) for s in range(300)]
        self.assertEqual(draws, [FT.ratio_at([1, 2, 3], 7, s) for s in range(300)])
        for r in (1, 2, 3):
            self.assertGreater(draws.count(r), 60)


class FinetuneLlamaTest(unittest.TestCase):
    def test_uls_finetune_export_verify_generate(self):
        d = tempfile.mkdtemp(dir=_TMP)
        base = synth_checkpoint(os.path.join(d, "base"), "llama2", tokenizer=True)
        train = write_reverse_task(os.path.join(d, "train.jsonl"), 400, 1)
        dev = write_reverse_task(os.path.join(d, "dev.jsonl"), 32, 2)
        common = ["--in", base, "--data", train, "--dev", dev, "--steps", "150", "--batch-size", "16", "--lr", "3e-3", "--log-every", "50"]
        uls = os.path.join(d, "uls2")
        s2 = run_finetune(common + ["--ratio", "2", "--out", uls])
        # The same training at full depth: what a schedule that skipped nothing in training would give.
        s1 = run_finetune(common + ["--ratio", "1", "--out", os.path.join(d, "full")])
        ck1 = FT.HFCheckpoint(os.path.join(d, "full"))
        ex = FT.load_examples(dev, ck1, 512)
        full_trained_at_2 = FT.dev_loss(ck1.model, ex, 2)
        before, after = s2["dev_before"]["2"], s2["dev_after"]["2"]
        # Un-fine-tuned: ~ln(vocab). Fine-tuned at 2x: far below, and clearly below
        # the model trained at full depth and decoded at 2x.
        self.assertGreater(before, 4.0)
        self.assertLess(after, 0.25 * before)
        self.assertLess(after, 0.7 * full_trained_at_2, "ULS-trained %.3f vs full-depth-trained %.3f at 2x" % (after, full_trained_at_2))
        self.assertLess(s1["dev_after"]["1"], 0.25 * s1["dev_before"]["1"])

        with open(os.path.join(uls, "config.json")) as f:
            cfg = json.load(f)
        self.assertEqual(cfg["uls"], {"ratios": [2], "default_schedule": "uls:2"})
        with open(os.path.join(base, "config.json")) as f:
            base_cfg = json.load(f)
        self.assertEqual({k: v for k, v in cfg.items() if k != "uls"}, base_cfg)
        self.assertFalse(os.path.exists(os.path.join(uls, FT.STATE_DIR)))
        raw_base, raw_uls = load_dir_raw(base), load_dir_raw(uls)
        self.assertEqual(sorted(raw_base), sorted(raw_uls))
        self.assertEqual(raw_base["model.embed_tokens.weight"], raw_uls["model.embed_tokens.weight"])  # frozen
        self.assertNotEqual(raw_base["model.layers.0.self_attn.q_proj.weight"], raw_uls["model.layers.0.self_attn.q_proj.weight"])
        self.assertEqual({k: v[0] for k, v in raw_base.items()}, {k: v[0] for k, v in raw_uls.items()})

        pkg = os.path.join(d, "pkg")
        strata("export", "--in", uls, "--out", pkg)
        with open(os.path.join(pkg, "manifest.json")) as f:
            manifest = json.load(f)
        self.assertEqual(manifest["uls"]["default_schedule"], "uls:2")
        strata("verify", "--model", pkg, "--checkpoint", uls)
        # strata decodes with the trained schedule by default, token for token as PyTorch does.
        ck = FT.HFCheckpoint(uls)
        kept = M.uls_schedule(4, 2)
        agree = 0
        for rec in ex[:4]:
            prompt = rec[0]
            want = ck.model.eval().generate(prompt, 8, kept=kept)
            out = json.loads(strata("generate", "--model", pkg, "--prompt-ids", ",".join(map(str, prompt)), "--max-tokens", "8", "--json").stdout)
            self.assertEqual(out["kept_layers"], kept)
            got = [t for t in out["token_ids"] if t != 2]
            agree += got == want
        self.assertGreaterEqual(agree, 3)
        # strata eval on the user's own prompt/reference file.
        test = os.path.join(d, "test.jsonl")
        with open(dev) as f, open(test, "w") as g:
            for line in f:
                r = json.loads(line)
                g.write(json.dumps({"prompt": r["prompt"], "reference": r["response"]}) + "\n")
        res = os.path.join(d, "eval.json")
        strata("eval", "--model", pkg, "--data", test, "--ratios", "1,2", "--schedules", "uls,top", "--max-tokens", "8", "--json", res)
        with open(res) as f:
            rows = {(r["schedule"], r["ratio"]): r for r in json.load(f)}
        self.assertEqual(set(rows), {("full", 1), ("uls", 2), ("top", 2)})
        self.assertGreater(rows[("uls", 2)]["chrf"], rows[("full", 1)]["chrf"])
        self.assertGreater(rows[("uls", 2)]["exact_match"], rows[("top", 2)]["exact_match"])

    def test_load_save_roundtrip_bit_exact(self):
        for preset in ("llama2", "qwen2", "mistral"):
            with self.subTest(preset=preset):
                d = tempfile.mkdtemp(dir=_TMP)
                src = synth_checkpoint(os.path.join(d, "in"), preset)
                out = os.path.join(d, "out")
                FT.HFCheckpoint(src).save(out)
                self.assertEqual(load_dir_raw(src), load_dir_raw(out))
                for f in ("config.json", "generation_config.json"):
                    with open(os.path.join(src, f)) as a, open(os.path.join(out, f)) as b:
                        self.assertEqual(json.load(a), json.load(b), f)

    def test_model_code_decodes_as_strata(self):
        """The PyTorch model code and strata decode the same tokens (q/k/v biases, tied
        head, GQA and rope_theta of Qwen2; GQA of Mistral), at full depth and at 2x."""
        for preset in ("qwen2", "mistral"):
            with self.subTest(preset=preset):
                d = tempfile.mkdtemp(dir=_TMP)
                src = synth_checkpoint(os.path.join(d, "in"), preset, layers=4)
                pkg = os.path.join(d, "pkg")
                with open(os.path.join(src, "config.json")) as f:
                    eos = json.load(f)["eos_token_id"]
                eos = set(eos if isinstance(eos, list) else [eos])
                strata("export", "--in", src, "--out", pkg)
                model = FT.HFCheckpoint(src).model.eval()
                prompt = [1, 17, 42, 99, 7, 64]
                for ratio in (1, 2):
                    kept = FT.kept_layers(model.cfg.num_hidden_layers, ratio)
                    want = model.generate(prompt, 6, kept=kept)
                    want = want[: next((i for i, t in enumerate(want) if t in eos), len(want))]
                    self.assertGreaterEqual(len(want), 3)
                    out = json.loads(
                        strata("generate", "--model", pkg, "--prompt-ids", ",".join(map(str, prompt)), "--max-tokens", "6", "--speedup", str(ratio), "--json").stdout
                    )
                    self.assertEqual([t for t in out["token_ids"] if t not in eos][: len(want)], want, "ratio %d" % ratio)

    def test_resume_after_kill(self):
        d = tempfile.mkdtemp(dir=_TMP)
        base = synth_checkpoint(os.path.join(d, "base"), "llama2")
        train = write_ids_task(os.path.join(d, "train.jsonl"), 200, 3)
        args = ["--in", base, "--data", train, "--ratios", "1,2", "--steps", "60", "--batch-size", "8", "--lr", "2e-3", "--save-every", "5", "--log-every", "5", "--distill", "1"]
        ref = os.path.join(d, "ref")
        s = run_finetune(args + ["--out", ref])
        self.assertEqual(s["steps_per_ratio"], {str(r): sum(FT.ratio_at([1, 2], 1234, i) == r for i in range(60)) for r in (1, 2)})
        out = os.path.join(d, "out")
        cmd = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "finetune.py")] + args + ["--out", out, "--threads", "1", "--device", "cpu"]
        state = os.path.join(out, FT.STATE_DIR, "state.pt")
        with open(os.path.join(d, "log1"), "w") as log1:
            p = subprocess.Popen(cmd, stderr=log1, stdout=subprocess.DEVNULL)
            deadline = time.time() + 300
            while not os.path.exists(state) and p.poll() is None and time.time() < deadline:
                time.sleep(0.05)
            p.send_signal(signal.SIGKILL)
            p.wait()
        self.assertTrue(os.path.exists(state), "no state saved before the kill")
        killed_at = torch.load(state)["step"]
        self.assertLess(killed_at, 60)
        self.assertFalse(os.path.exists(os.path.join(out, "model.safetensors")))
        # A run with other arguments does not continue this state.
        other = [a if a != "2e-3" else "1e-3" for a in cmd]
        p = subprocess.run(other, capture_output=True, text=True)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("other arguments", p.stderr)
        p = subprocess.run(cmd, capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("resuming from step %d" % killed_at, p.stderr)
        resumed = json.loads(p.stdout)
        self.assertEqual(resumed["run_steps"], 60 - killed_at)
        self.assertEqual(resumed["steps_per_ratio"], s["steps_per_ratio"])  # counts the steps before the kill too
        self.assertEqual(load_dir_raw(ref), load_dir_raw(out))

    def test_bad_input(self):
        d = tempfile.mkdtemp(dir=_TMP)
        base = synth_checkpoint(os.path.join(d, "base"), "llama2")
        good = write_ids_task(os.path.join(d, "train.jsonl"), 20, 3)
        bad_ids = os.path.join(d, "bad.jsonl")
        with open(bad_ids, "w") as f:
            f.write(json.dumps({"prompt_ids": [1, 999999], "response_ids": [5]}) + "\n")
        text_no_tok = os.path.join(d, "text.jsonl")
        with open(text_no_tok, "w") as f:
            f.write(json.dumps({"prompt": "a", "response": "b"}) + "\n")

        def data(name, bad):
            """Five good records and a blank line, then bad as line 7."""
            path = os.path.join(d, name)
            with open(path, "w") as f:
                f.write("".join(json.dumps({"prompt_ids": [1, 5], "response_ids": [6]}) + "\n" for _ in range(5)) + "\n" + bad + "\n")
            return path

        half = data("half.jsonl", json.dumps({"prompt_ids": [1, 1.5], "response_ids": [5]}))
        true = data("true.jsonl", json.dumps({"prompt_ids": [1, True], "response_ids": [5]}))
        resp_str = data("str.jsonl", json.dumps({"prompt_ids": [1, 2], "response_ids": ["5"]}))
        broken = data("broken.jsonl", '{"prompt_ids": [1, 2], "response_ids": [5')
        not_obj = data("list.jsonl", "[1, 2]")
        latin1 = os.path.join(d, "latin1.jsonl")
        with open(latin1, "wb") as f:
            f.write(b'{"prompt_ids": [1], "response_ids": [5]}\n{"prompt": "caf\xe9", "response": "x"}\n')
        afile = os.path.join(d, "afile")
        with open(afile, "w") as f:
            f.write("x")
        cases = [
            (["--in", os.path.join(d, "nope"), "--data", good, "--ratio", "2"], "config.json"),
            (["--in", base, "--data", os.path.join(d, "nope.jsonl"), "--ratio", "2"], "nope.jsonl"),
            (["--in", base, "--data", good, "--ratio", "3"], "fewer than 2"),
            (["--in", base, "--data", good, "--ratios", "1,x"], "integers"),
            (["--in", base, "--data", good], "--ratio"),
            (["--in", base, "--data", bad_ids, "--ratio", "2"], "vocabulary"),
            (["--in", base, "--data", text_no_tok, "--ratio", "2"], "tokenizer.json"),
            (["--in", base, "--data", good, "--ratios", "1,2", "--default-ratio", "4"], "default-ratio"),
            (["--in", base, "--data", half, "--ratio", "2"], "half.jsonl: line 7: prompt_ids holds 1.5, not an integer"),
            (["--in", base, "--data", true, "--ratio", "2"], "true.jsonl: line 7: prompt_ids holds true, not an integer"),
            (["--in", base, "--data", resp_str, "--ratio", "2"], 'line 7: response_ids holds "5"'),
            (["--in", base, "--data", broken, "--ratio", "2"], "broken.jsonl: line 7 column 42: Expecting"),
            (["--in", base, "--data", not_obj, "--ratio", "2"], "list.jsonl: line 7: want a JSON object"),
            (["--in", base, "--data", latin1, "--ratio", "2"], "latin1.jsonl: line 2: not UTF-8"),
            (["--in", base, "--data", good, "--dev", half, "--ratio", "2"], "half.jsonl: line 7"),
            (["--in", base, "--data", good, "--ratio", "2", "--distill", "-1"], "--distill"),
            (["--in", base, "--data", good, "--ratio", "2", "--log-every", "0"], "--log-every"),
            (["--in", base, "--data", good, "--ratio", "2", "--lr", "-1"], "--lr"),
            (["--in", base, "--data", good, "--ratio", "2", "--device", "nonsense"], "--device"),
            (["--in", base, "--data", good, "--ratio", "2", "--out", afile], "is not a directory"),
            (["--in", base, "--data", good, "--ratio", "2", "--out", os.path.join(afile, "sub")], "is not a directory"),
            # Writing under /proc fails even for root.
            (["--in", base, "--data", good, "--ratio", "2", "--out", "/proc/self/finetune-out"], "cannot write in /proc/"),
        ]
        for i, (args, want) in enumerate(cases):
            with self.subTest(args=args):
                out = os.path.join(d, "out%d" % i)
                if "--out" in args:
                    out = args[args.index("--out") + 1]
                    args = args[: args.index("--out")] + args[args.index("--out") + 2 :]
                err = io.StringIO()
                with contextlib.redirect_stderr(err):
                    code = FT.main(args + ["--out", out, "--steps", "2", "--threads", "1"] + ([] if "--device" in args else ["--device", "cpu"]))
                self.assertEqual(code, 2, err.getvalue())
                last = err.getvalue().strip().splitlines()[-1]
                self.assertTrue(last.startswith("finetune: ") and want in last, last)
                self.assertFalse(os.path.exists(os.path.join(out, "model.safetensors")))
                if out != afile:
                    self.assertFalse(os.path.exists(out))
        with open(afile) as f:
            self.assertEqual(f.read(), "x")
        # The script itself: one line, exit status 2, no traceback.
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "finetune.py")
        p = subprocess.run([sys.executable, script] + cases[2][0] + ["--out", os.path.join(d, "o")], capture_output=True, text=True)
        self.assertEqual(p.returncode, 2)
        self.assertEqual(p.stderr.strip().count("\n"), 0, p.stderr)
        self.assertIn("fewer than 2", p.stderr)


class OutputTest(unittest.TestCase):
    def test_out_never_overwrites_in(self):
        """--out that is --in through a symbolic link, or a directory inside --in, is
        refused before training and the input stays as it was."""
        d = tempfile.mkdtemp(dir=_TMP)
        base = synth_checkpoint(os.path.join(d, "base"), "llama2")
        good = write_ids_task(os.path.join(d, "train.jsonl"), 20, 3)
        before = read_dir(base)
        link = os.path.join(d, "link")
        os.symlink(base, link)
        rel = os.path.relpath(base)
        cases = [
            (link, base, "is the --in checkpoint"),
            (base, link, "is the --in checkpoint"),
            (base + "/", rel, "is the --in checkpoint"),
            (os.path.join(base, "uls"), base, "inside the --in checkpoint"),
            (os.path.join(link, "uls"), base, "inside the --in checkpoint"),
        ]
        for out, inp, want in cases:
            with self.subTest(out=out, inp=inp):
                err = io.StringIO()
                with contextlib.redirect_stderr(err):
                    code = FT.main(["--in", inp, "--data", good, "--ratio", "2", "--out", out, "--steps", "2", "--threads", "1", "--device", "cpu"])
                self.assertEqual(code, 2, err.getvalue())
                last = err.getvalue().strip().splitlines()[-1]
                self.assertTrue(last.startswith("finetune: ") and want in last, last)
                self.assertEqual(read_dir(base), before)


class DistillTest(unittest.TestCase):
    def test_distill_raises_agreement(self):
        """--distill trains the 2x path toward full depth: at the same steps per ratio its
        greedy tokens agree with full depth's more often than without."""
        d = tempfile.mkdtemp(dir=_TMP)
        base = synth_checkpoint(os.path.join(d, "base"), "llama2", layers=4)
        train = write_ids_task(os.path.join(d, "train.jsonl"), 300, 3)
        dev = write_ids_task(os.path.join(d, "dev.jsonl"), 48, 4)
        common = ["--in", base, "--data", train, "--dev", dev, "--ratios", "1,2", "--steps", "150", "--batch-size", "16", "--lr", "3e-3", "--log-every", "50"]
        runs = {w: run_finetune(common + ["--out", os.path.join(d, "w" + w), "--distill", w]) for w in ("0", "3")}
        plain, distilled = runs["0"], runs["3"]
        self.assertEqual(plain["steps_per_ratio"], distilled["steps_per_ratio"])
        self.assertEqual(sum(plain["steps_per_ratio"].values()), 150)
        self.assertEqual(plain["dev_agreement_before"], distilled["dev_agreement_before"])
        self.assertEqual((plain["distill"], distilled["distill"]), (0.0, 3.0))
        self.assertGreater(distilled["dev_agreement_after"]["2"], plain["dev_agreement_after"]["2"] + 0.03, runs)
        # Both still learn the task at 2x (the unigram loss of the task is about 2.2).
        self.assertLess(distilled["dev_after"]["2"], 0.6 * distilled["dev_before"]["2"])
        # The summary's agreement is what the written checkpoint gives.
        ck = FT.HFCheckpoint(os.path.join(d, "w3"))
        got = FT.agreement(ck.model, FT.load_examples(dev, ck, 512), 2)
        self.assertAlmostEqual(got, distilled["dev_agreement_after"]["2"], delta=0.03)

    def test_agreement(self):
        """agreement compares greedy tokens of the kept layers and of full depth on the
        response positions only."""
        torch.manual_seed(0)
        model = M.LlamaForCausalLM(M.Config(vocab_size=32, hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2))
        ex = [([1, 5, 6, 7], [8, 9, 2]), ([1, 4], [3, 3, 3, 2])]
        self.assertEqual(FT.agreement(model, ex, 1), 1.0)
        inputs, targets, skip_from = collate_rows(ex)
        select = targets != -100
        full = model(inputs, select=select).argmax(-1)
        draft = model(inputs, skip_from=skip_from, kept=[0, 3], select=select).argmax(-1)
        self.assertEqual(int(select.sum()), 7)
        self.assertAlmostEqual(FT.agreement(model, ex, 2), float((full == draft).float().mean()))
        # Training the 2x path of a model toward its own full depth ends in full agreement.
        opt = torch.optim.Adam([p for n, p in model.named_parameters() if "embed" not in n], lr=3e-3)
        for _ in range(300):
            loss, _, kl, _, _ = FT.batch_loss(model, ex, [0, 1], [0, 3], "cpu", distill=1000.0)
            opt.zero_grad()
            loss.backward()
            opt.step()
        self.assertLess(float(kl), 0.01)
        self.assertEqual(FT.agreement(model, ex, 2), 1.0)


def read_dir(d):
    out = {}
    for f in sorted(os.listdir(d)):
        with open(os.path.join(d, f), "rb") as fh:
            out[f] = fh.read()
    return out


def collate_rows(ex):
    from train import collate

    return collate(ex, list(range(len(ex))), pad_id=0)


class BuiltinCheckpointTest(unittest.TestCase):
    def test_multi_ratio_checkpoint(self):
        """models/default/uls123 (and uls123d, trained with --distill) are base fine-tuned
        by finetune.py at ratios 1,2,3: same layout and frozen word embeddings, every
        other matrix moved."""
        root = os.path.join(REPO, "models", "default")
        base = load_dir_raw(os.path.join(root, "base"))
        for name in ("uls123", "uls123d"):
            with self.subTest(name=name):
                multi = load_dir_raw(os.path.join(root, name))
                self.assertEqual({k: v[:2] for k, v in base.items()}, {k: v[:2] for k, v in multi.items()})
                self.assertEqual(base["model.embed_tokens.weight"], multi["model.embed_tokens.weight"])
                self.assertNotEqual(base["lm_head.weight"], multi["lm_head.weight"])
                with open(os.path.join(root, name, "config.json")) as f:
                    self.assertEqual(json.load(f)["uls"], {"ratios": [1, 2, 3], "default_schedule": "uls:2"})


class BloomTest(unittest.TestCase):
    def test_alibi_slopes(self):
        self.assertEqual(M.alibi_slopes(8).tolist(), [2.0**-i for i in range(1, 9)])
        want12 = [2.0**-i for i in range(1, 9)] + [2.0 ** -(i / 2) for i in (1, 3, 5, 7)]
        self.assertTrue(torch.allclose(M.alibi_slopes(12), torch.tensor(want12)))

    def test_uls_pass_matches_cached_decoding(self):
        torch.manual_seed(0)
        model = M.BloomForCausalLM(M.BloomConfig(vocab_size=40, hidden_size=32, n_layer=4, n_head=4)).eval()
        prompt, resp = [1, 5, 6, 7, 8], [9, 10, 11]
        for kept in (None, [0, 3]):
            with self.subTest(kept=kept):
                ids = prompt[:]
                out = model.generate(prompt, 4, kept=kept)
                for tok in out:
                    logits = model(torch.tensor([ids]), skip_from=torch.tensor([len(prompt)]), kept=kept)
                    self.assertEqual(int(logits[0, -1].argmax()), tok)
                    ids.append(tok)
        full = model(torch.tensor([prompt + resp]))[0]
        uls = model(torch.tensor([prompt + resp]), skip_from=torch.tensor([len(prompt)]), kept=[0, 3])[0]
        self.assertTrue(torch.allclose(full[: len(prompt)], uls[: len(prompt)], atol=1e-6))
        self.assertFalse(torch.allclose(full[len(prompt) :], uls[len(prompt) :], atol=1e-3))

    def test_finetune_and_roundtrip(self):
        for prefixed in (False, True):
            with self.subTest(prefixed=prefixed):
                d = tempfile.mkdtemp(dir=_TMP)
                base = os.path.join(d, "base")
                write_bloom(base, prefixed=prefixed)
                # Load then save without training: bit-exact, same tensor names.
                FT.HFCheckpoint(base).save(os.path.join(d, "copy"))
                self.assertEqual(load_dir_raw(base), load_dir_raw(os.path.join(d, "copy")))
                train = write_ids_task(os.path.join(d, "train.jsonl"), 300, 4, lo=3, hi=11, sep=12)
                dev = write_ids_task(os.path.join(d, "dev.jsonl"), 24, 5, lo=3, hi=11, sep=12)
                out = os.path.join(d, "uls")
                s = run_finetune(["--in", base, "--data", train, "--dev", dev, "--ratio", "2", "--out", out, "--steps", "200", "--batch-size", "16", "--lr", "5e-3"])
                # Below the unigram loss of the task (about 2.2): the reversal itself is being learned.
                self.assertLess(s["dev_after"]["2"], 2.0)
                self.assertLess(s["dev_after"]["2"], 0.3 * s["dev_before"]["2"])
                raw_in, raw_out = load_dir_raw(base), load_dir_raw(out)
                self.assertEqual(sorted(raw_in), sorted(raw_out))
                emb = "transformer.word_embeddings.weight" if prefixed else "word_embeddings.weight"
                self.assertEqual(raw_in[emb], raw_out[emb])  # frozen (and with it the tied head)
                self.assertNotIn("lm_head.weight", raw_out)
                back = FT.HFCheckpoint(out)
                self.assertAlmostEqual(FT.dev_loss(back.model, FT.load_examples(dev, back, 512), 2), s["dev_after"]["2"], delta=0.02)
                with open(os.path.join(out, "config.json")) as f:
                    self.assertEqual(json.load(f)["uls"], {"ratios": [2], "default_schedule": "uls:2"})


    def test_decodes_as_strata(self):
        """A fine-tuned BLOOM checkpoint exports, verifies, and strata decodes the
        same tokens as the PyTorch code at full depth and at 2x (ALiBi, fused
        query_key_value, embedding LayerNorm, tied head)."""
        d = tempfile.mkdtemp(dir=_TMP)
        base = os.path.join(d, "base")
        write_bloom(base)
        train = write_ids_task(os.path.join(d, "train.jsonl"), 300, 4, lo=3, hi=11, sep=12)
        dev = write_ids_task(os.path.join(d, "dev.jsonl"), 8, 5, lo=3, hi=11, sep=12)
        with open(dev) as f:
            prompts = [json.loads(line)["prompt_ids"] for line in f]
        out = os.path.join(d, "uls")
        run_finetune(["--in", base, "--data", train, "--ratios", "1,2", "--out", out, "--steps", "150", "--batch-size", "16", "--lr", "5e-3"])
        pkg = os.path.join(d, "pkg")
        strata("export", "--in", out, "--out", pkg)
        strata("verify", "--model", pkg, "--checkpoint", out)
        model = FT.HFCheckpoint(out).model.eval()
        seqs = set()
        for ratio in (1, 2):
            for prompt in prompts:
                want = model.generate(prompt, 6, kept=FT.kept_layers(4, ratio))
                got = json.loads(strata("generate", "--model", pkg, "--prompt-ids", ",".join(map(str, prompt)), "--max-tokens", "6", "--speedup", str(ratio), "--json").stdout)
                self.assertEqual([t for t in got["token_ids"] if t != 2], want, "ratio %d prompt %s" % (ratio, prompt))
                seqs.add(tuple(want))
        self.assertGreater(len(seqs), 2)  # not one degenerate output


if __name__ == "__main__":
    unittest.main()
