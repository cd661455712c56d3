// Checks that Hugging Face's `tokenizers` (npm) loads a tokenizer.json written by
// tokenizer.py and encodes exactly like SentencePiece did (reference ids from
// tokenizer.py --check-out), that it adds <s> by default and that decoding
// round-trips. Usage (with the package installed under /tmp/tok):
//   NODE_PATH=/tmp/tok/node_modules node scripts/train/check_tokenizer.mjs tokenizer.json check.jsonl
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";

const require = createRequire(import.meta.url);
const { Tokenizer } = require(require.resolve("tokenizers", { paths: (process.env.NODE_PATH || "").split(":") }));

const [tokPath, checkPath] = process.argv.slice(2);
const tok = Tokenizer.fromFile(tokPath);
const rows = readFileSync(checkPath, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
let bad = 0;
for (const { text, ids } of rows) {
  const enc = await tok.encode(text, null, { addSpecialTokens: false });
  const got = enc.getIds();
  if (JSON.stringify(got) !== JSON.stringify(ids)) {
    if (bad++ < 5) console.error("mismatch:", text, "\n  hf ", got.join(","), "\n  spm", ids.join(","));
  }
  const back = await tok.decode(got, true);
  if (back !== text) {
    if (bad++ < 5) console.error("decode mismatch:", JSON.stringify(text), "->", JSON.stringify(back));
  }
}
const withBos = (await tok.encode("English: In the beginning\nSpanish:")).getTokens();
console.log("tokens:", withBos.join(" "));
if (withBos[0] !== "<s>" || !withBos.includes("<0x0A>")) {
  console.error("expected <s> first and <0x0A> for the newline");
  bad++;
}
console.log(`${rows.length} rows checked, ${bad} problems`);
process.exit(bad ? 1 : 0);
