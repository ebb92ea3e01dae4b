// Reference token ids for the parity tests: Hugging Face's own JavaScript tokenizers
// (@huggingface/tokenizers). Usage:
//   node hf_encode.mjs TOKENIZERS_DIR tokenizer.json tokenizer_config.json strings.json out.json
// writes one array of ids per string (encode(text, {add_special_tokens: false}).ids) and prints
// the encode time in seconds.
import fs from 'fs';
import path from 'path';
import { pathToFileURL } from 'url';

const [dir, tokenizerPath, configPath, stringsPath, outPath] = process.argv.slice(2);
const { Tokenizer } = await import(pathToFileURL(path.join(dir, 'dist', 'tokenizers.mjs')).href);
const tokenizer = new Tokenizer(JSON.parse(fs.readFileSync(tokenizerPath, 'utf8')),
                                JSON.parse(fs.readFileSync(configPath, 'utf8')));
const strings = JSON.parse(fs.readFileSync(stringsPath, 'utf8'));
const start = process.hrtime.bigint();
const ids = strings.map((s) => tokenizer.encode(s, { add_special_tokens: false }).ids);
const seconds = Number(process.hrtime.bigint() - start) / 1e9;
fs.writeFileSync(outPath, JSON.stringify(ids));
console.log(seconds.toFixed(6));
