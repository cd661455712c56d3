// Tokenizes the verse pairs for training with Hugging Face's `tokenizers` (npm),
// the same library and tokenizer.json the engine's tokenizer is checked against.
// For every {"ref","en","es"} line of DATA/{train,dev,test}.jsonl it writes
// {"ref","prompt":[ids],"response":[ids]} to OUT/{split}.ids.jsonl, where prompt is
// the encoding of "English: {en}\nSpanish:" with the post-processor's <s>, and
// response the encoding of "{es}" without special tokens (the "▁" the normalizer
// prepends is the space after "Spanish:"); train.py appends </s>.
// Usage: NODE_PATH=/tmp/tok/node_modules node scripts/train/encode.mjs tokenizer.json DATA OUT
import { createRequire } from "node:module";
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";

const require = createRequire(import.meta.url);
const { Tokenizer } = require(require.resolve("tokenizers", { paths: (process.env.NODE_PATH || "").split(":") }));

export const promptTemplate = (en) => `English: ${en}\nSpanish:`;

const [tokPath, dataDir, outDir] = process.argv.slice(2);
if (!outDir) {
  console.error("usage: encode.mjs tokenizer.json DATA_DIR OUT_DIR");
  process.exit(2);
}
const tok = Tokenizer.fromFile(tokPath);
mkdirSync(outDir, { recursive: true });
for (const split of ["train", "dev", "test"]) {
  const rows = readFileSync(join(dataDir, `${split}.jsonl`), "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
  const out = [];
  for (const r of rows) {
    const prompt = (await tok.encode(promptTemplate(r.en))).getIds();
    const response = (await tok.encode(r.es, null, { addSpecialTokens: false })).getIds();
    out.push(JSON.stringify({ ref: r.ref, prompt, response }));
  }
  writeFileSync(join(outDir, `${split}.ids.jsonl`), out.join("\n") + "\n");
  console.error(`${split}: ${rows.length} pairs`);
}
