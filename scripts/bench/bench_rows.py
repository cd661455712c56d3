"""Prints one line per row of a `strata bench --json` result, for scripts/gpu-check.sh's summary."""
import json
import sys


def main(path):
    for r in json.load(open(path)):
        fused = "" if r.get("fused") is None else (" fused" if r["fused"] else " per-layer")
        print(f"batch {r['batch']} ratio {r['ratio']:g}{fused}: decode {r['decode_tps']:.1f} tok/s, "
              f"prefill {r['prefill_tps']:.1f} tok/s, TTFT {r['ttft_ms']:.1f} ms")


if __name__ == "__main__":
    main(sys.argv[1])
