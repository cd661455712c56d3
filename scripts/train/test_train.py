"""CI-sized tests of the training recipe (python3 -m unittest discover scripts/train)."""

import json
import os
import random
import sys
import tempfile
import unittest

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model as M  # noqa: E402
import train as T  # noqa: E402


def tiny_config(**kw):
    cfg = dict(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    cfg.update(kw)
    return M.Config(**cfg)


def write_toy_data(d, n=48, seed=0):
    """A learnable toy task: the response is the prompt's tokens reversed."""
    rng = random.Random(seed)
    for split, count in (("train", n), ("dev", 8)):
        with open(os.path.join(d, split + ".ids.jsonl"), "w") as f:
            for i in range(count):
                body = [rng.randrange(3, 20) for _ in range(rng.randrange(3, 7))]
                f.write(json.dumps({"ref": "x.%d" % i, "prompt": [1] + body + [20], "response": body[::-1]}) + "\n")


class ScheduleTest(unittest.TestCase):
    def test_design_examples(self):
        cases = [
            (32, 2, list(range(0, 30, 2)) + [31]),
            (32, 3, list(range(0, 25, 3)) + [31]),
            (30, 5, [0, 6, 12, 18, 24, 29]),
            (40, 5, [0, 5, 10, 15, 20, 25, 30, 39]),
            (8, 2, [0, 2, 4, 7]),
            (8, 1, list(range(8))),
        ]
        for layers, ratio, want in cases:
            with self.subTest(layers=layers, ratio=ratio):
                self.assertEqual(M.uls_schedule(layers, ratio), want)

    def test_bad_ratio(self):
        for layers, ratio in ((8, 5), (8, 0), (8, 2.5)):
            with self.subTest(layers=layers, ratio=ratio):
                with self.assertRaises(ValueError):
                    M.uls_schedule(layers, ratio)


class ModelTest(unittest.TestCase):
    def setUp(self):
        torch.manual_seed(0)

    def test_uls_pass_matches_cached_decoding(self):
        """The one-pass ULS forward equals full-depth prefill + kept-layer decoding with a KV cache."""
        for tie, kv in ((False, 2), (True, 4)):
            with self.subTest(tie=tie, kv=kv):
                model = M.LlamaForCausalLM(tiny_config(tie_word_embeddings=tie, num_key_value_heads=kv)).eval()
                kept = M.uls_schedule(4, 2)
                prompt, resp = [1, 5, 6, 7, 8], [9, 10, 11]
                ids = torch.tensor([prompt + resp])
                logits = model(ids, skip_from=torch.tensor([len(prompt)]), kept=kept)[0]
                # Reference: prefill, then one response token at a time through kept layers.
                with torch.no_grad():
                    n = len(prompt)
                    cos, sin = M.rope_cos_sin(torch.arange(n)[None], 8, 10000.0, torch.float32)
                    mask = torch.full((n, n), float("-inf")).triu(1)[None, None]
                    h = model.model.embed_tokens(torch.tensor([prompt]))
                    cache = []
                    for layer in model.model.layers:
                        h, kvc = layer(h, cos, sin, mask)
                        cache.append(kvc)
                    ref = [model.lm_head(model.model.norm(h[:, -1]))[0]]
                    for j, tok in enumerate(resp):
                        cos, sin = M.rope_cos_sin(torch.tensor([[n + j]]), 8, 10000.0, torch.float32)
                        h = model.model.embed_tokens(torch.tensor([[tok]]))
                        for i in kept:
                            h, cache[i] = model.model.layers[i](h, cos, sin, None, cache[i])
                        ref.append(model.lm_head(model.model.norm(h[:, -1]))[0])
                got = logits[n - 1 :]
                self.assertTrue(torch.allclose(got, torch.stack(ref), atol=1e-5))
                # A full-depth pass differs on response positions (layers really are skipped).
                full = model(ids)[0]
                self.assertTrue(torch.allclose(full[:n], logits[:n], atol=1e-6))
                self.assertFalse(torch.allclose(full[n:], logits[n:], atol=1e-3))

    def test_generate_matches_forward(self):
        model = M.LlamaForCausalLM(tiny_config()).eval()
        prompt = [1, 4, 5, 6]
        for kept in (None, [0, 3]):
            out = model.generate(prompt, 5, kept=kept)
            ids = prompt[:]
            for tok in out:
                skip = torch.tensor([len(prompt)])
                logits = model(torch.tensor([ids]), skip_from=skip, kept=kept) if kept else model(torch.tensor([ids]))
                self.assertEqual(int(logits[0, -1].argmax()), tok)
                ids.append(tok)

    def test_rope_matches_complex_rotation(self):
        """rotate_half RoPE equals rotating (x_i, x_{i+d/2}) pairs by pos·theta^(-2i/d)."""
        d, pos = 8, 5
        x = torch.randn(d)
        cos, sin = M.rope_cos_sin(torch.tensor([pos]), d, 10000.0, torch.float32)
        got = x * cos[0] + M.rotate_half(x) * sin[0]
        for i in range(d // 2):
            ang = pos * 10000.0 ** (-2 * i / d)
            a, b = float(x[i]), float(x[i + d // 2])
            c, s = torch.cos(torch.tensor(ang)), torch.sin(torch.tensor(ang))
            self.assertAlmostEqual(float(got[i]), float(a * c - b * s), places=5)
            self.assertAlmostEqual(float(got[i + d // 2]), float(b * c + a * s), places=5)

    def test_checkpoint_roundtrip(self):
        for tie in (False, True):
            with self.subTest(tie=tie), tempfile.TemporaryDirectory() as d:
                cfg = tiny_config(tie_word_embeddings=tie)
                cfg.uls_ratios = [2]
                model = M.LlamaForCausalLM(cfg)
                tok = os.path.join(d, "tok.json")
                with open(tok, "w") as f:
                    f.write("{}")
                M.save_checkpoint(model, os.path.join(d, "ck"), tok)
                with open(os.path.join(d, "ck", "config.json")) as f:
                    hf = json.load(f)
                self.assertEqual(hf["architectures"], ["LlamaForCausalLM"])
                self.assertEqual(hf["uls"], {"ratios": [2], "default_schedule": "uls:2"})
                self.assertEqual(hf["tie_word_embeddings"], tie)
                names = set(M.load_safetensors(os.path.join(d, "ck", "model.safetensors")))
                self.assertEqual("lm_head.weight" in names, not tie)
                self.assertIn("model.layers.3.mlp.down_proj.weight", names)
                back = M.load_checkpoint(os.path.join(d, "ck"))
                for name, p in model.state_dict().items():
                    q = back.state_dict()[name]
                    self.assertTrue(torch.allclose(p, q, atol=1e-3, rtol=1e-3), name)
                self.assertTrue(os.path.exists(os.path.join(d, "ck", "tokenizer.json")))

    def test_safetensors_layout(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "t.safetensors")
            M.save_safetensors(p, {"b": torch.tensor([1.0, -2.0]), "a": torch.zeros(2, 3)}, "F32")
            with open(p, "rb") as f:
                raw = f.read()
            n = int.from_bytes(raw[:8], "little")
            self.assertEqual(n % 8, 0)
            header = json.loads(raw[8 : 8 + n])
            self.assertEqual(header["a"], {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]})
            self.assertEqual(header["b"]["data_offsets"], [24, 32])
            self.assertEqual(len(raw), 8 + n + 32)
            self.assertEqual(M.load_safetensors(p)["b"].tolist(), [1.0, -2.0])


class TrainTest(unittest.TestCase):
    def test_both_stages_reduce_loss(self):
        with tempfile.TemporaryDirectory() as d:
            write_toy_data(d)
            base, uls = os.path.join(d, "base"), os.path.join(d, "uls2")
            common = ["--data", d, "--steps", "60", "--batch-size", "8", "--lr", "3e-3", "--log-every", "10", "--threads", "1", "--device", "cpu"]
            s1 = T.train(
                T.build_parser().parse_args(
                    common + ["--out", base, "--layers", "4", "--hidden", "32", "--heads", "4", "--kv-heads", "2", "--intermediate", "48", "--vocab", "32"]
                )
            )
            self.assertLess(s1["loss_history"][-1][1], s1["first_loss"] * 0.8)
            emb_before = M.load_safetensors(os.path.join(base, "model.safetensors"))["model.embed_tokens.weight"]
            s2 = T.train(T.build_parser().parse_args(common + ["--out", uls, "--init", base, "--uls-ratio", "2"]))
            self.assertLess(s2["loss_history"][-1][1], s2["first_loss"])
            self.assertIn("dev_loss_uls", s2)
            after = M.load_safetensors(os.path.join(uls, "model.safetensors"))
            # Word embeddings are frozen in stage 2; the rest moves.
            self.assertTrue(torch.equal(after["model.embed_tokens.weight"], emb_before))
            before_q = M.load_safetensors(os.path.join(base, "model.safetensors"))["model.layers.0.self_attn.q_proj.weight"]
            self.assertFalse(torch.equal(after["model.layers.0.self_attn.q_proj.weight"], before_q))
            with open(os.path.join(uls, "config.json")) as f:
                self.assertEqual(json.load(f)["uls"]["default_schedule"], "uls:2")

    def test_collate_targets(self):
        ex = [([1, 5, 6], [7, 8, 2]), ([1, 9], [3, 2])]
        inputs, targets, skip_from = T.collate(ex, [0, 1], pad_id=2)
        self.assertEqual(inputs.tolist(), [[1, 5, 6, 7, 8], [1, 9, 3, 2, 2]])
        self.assertEqual(targets.tolist(), [[-100, -100, 7, 8, 2], [-100, 3, 2, -100, -100]])
        self.assertEqual(skip_from.tolist(), [3, 2])


if __name__ == "__main__":
    unittest.main()
