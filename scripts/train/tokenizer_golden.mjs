// Writes golden encodings of the default model's tokenizer, produced by Hugging
// Face's `tokenizers` (npm), for models/default's cross-check of strata's Go
// tokenizer: [{"text","ids","tokens","decoded"}] with the post-processor applied.
// Usage: NODE_PATH=/tmp/tok/node_modules node scripts/train/tokenizer_golden.mjs \
//          models/default/uls2/tokenizer.json models/default/testdata/tokenizer_golden.json
import { createRequire } from "node:module";
import { writeFileSync } from "node:fs";

const require = createRequire(import.meta.url);
const { Tokenizer } = require(require.resolve("tokenizers", { paths: (process.env.NODE_PATH || "").split(":") }));

const texts = [
  "English: In the beginning God created the heaven and the earth.\nSpanish:",
  "En el principio crió Dios los cielos y la tierra.",
  "English: Jesus wept.\nSpanish:",
  "¿Quién es éste? ¡Oh Jehová! Señor, niño, pingüino, acción.",
  "And the LORD said unto Moses, 1234 and 5,000 — “quoted” ‘text’.",
  "  leading and  double  spaces ",
  "tabs\tand\nnewlines\n",
  "日本語 and emoji 🙂 fall back to bytes",
  "",
  "<s> and </s> are special",
];
const tok = Tokenizer.fromFile(process.argv[2]);
const out = [];
for (const text of texts) {
  const enc = await tok.encode(text);
  out.push({ text, ids: enc.getIds(), tokens: enc.getTokens(), decoded: await tok.decode(enc.getIds(), true) });
}
writeFileSync(process.argv[3], JSON.stringify(out, null, 1) + "\n");
