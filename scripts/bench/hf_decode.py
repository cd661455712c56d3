"""Decode speed of Hugging Face transformers on a checkpoint's shape, for comparison with `strata bench`.

Builds the model of a config.json with random weights in float16 on the GPU (eager attention, KV cache), then for each
batch size times greedy generation of --gen tokens after a --prompt-len prompt and of one token, and reports decode
tokens/s as batch × (gen − 1) / (t_gen − t_1), prefill tokens/s and time to first token, one line per batch size:

    python3 scripts/bench/hf_decode.py --config /tmp/pkg/hf/config.json --batch 1,8 --prompt-len 128 --gen 64

Needs torch and transformers (present on the GPU machines scripts/gpu-check.sh runs on); on a machine without CUDA it
runs on the CPU in float32, for trying the script.
"""
import argparse
import contextlib
import statistics
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True, help="config.json of the checkpoint whose shape to run")
    ap.add_argument("--batch", default="1,8", help="batch sizes, comma-separated")
    ap.add_argument("--prompt-len", type=int, default=128)
    ap.add_argument("--gen", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    try:
        batches = [int(b) for b in args.batch.split(",")]
    except ValueError:
        sys.exit(f"hf_decode: --batch {args.batch!r}: want sizes such as 1,8")
    if args.prompt_len < 1 or args.gen < 2 or args.reps < 1 or min(batches) < 1:
        sys.exit("hf_decode: --prompt-len ≥ 1, --gen ≥ 2, --reps ≥ 1 and batch sizes ≥ 1")
    try:
        import torch
        import transformers
    except ImportError as e:
        sys.exit(f"hf_decode: {e}: install torch and transformers")
    cfg = transformers.AutoConfig.from_pretrained(args.config)
    cfg._attn_implementation = "eager"
    cuda = torch.cuda.is_available()
    dev = "cuda" if cuda else "cpu"
    dtype = torch.float16 if cuda else torch.float32
    torch.manual_seed(0)
    # Random initialisation on the GPU takes seconds where the CPU takes a minute for 1B parameters
    # (torch.device is a context manager from PyTorch 2.0 on).
    where = torch.device(dev)
    with where if hasattr(where, "__enter__") else contextlib.nullcontext():
        model = transformers.AutoModelForCausalLM.from_config(cfg)
    model = model.to(dtype=dtype).eval()
    name = torch.cuda.get_device_name(0) if cuda else "cpu"

    def run(batch, new):
        ids = torch.randint(3, cfg.vocab_size, (batch, args.prompt_len), device=dev)
        if cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        with torch.no_grad():
            model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new, min_new_tokens=new,
                           do_sample=False, use_cache=True, pad_token_id=0)
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - t

    for batch in batches:
        run(batch, 2)  # warm-up
        firsts = [run(batch, 1) for _ in range(args.reps)]
        fulls = [run(batch, args.gen) for _ in range(args.reps)]
        t1, tn = statistics.median(firsts), statistics.median(fulls)
        decode = batch * (args.gen - 1) / max(tn - t1, 1e-9)
        print(f"transformers {transformers.__version__} {str(dtype).removeprefix('torch.')} eager on {name}, "
              f"batch {batch}: decode {decode:.1f} tok/s, prefill {batch * args.prompt_len / t1:.1f} tok/s, "
              f"TTFT {t1 * 1000:.1f} ms")


if __name__ == "__main__":
    main()
