/**
 * The CLI under bad input (issue 16, the CLI class): every argument is checked before the model
 * loads (exit 2, the flag and value or the file named, no output folder created), a corrupt tensor
 * entry in model.safetensors names the file and the tensor, numbers are strict, and `eval` skips and
 * counts a bad clip or an unknown language (naming row and file) instead of aborting, and warns (file and
 * duration) for a clip over 30 s. Light: the usage cases read config files only; the one eval run transcribes two clips.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { SafetensorsError, SafetensorsFile, writeSafetensors } from '../../src/model/safetensors';
import { DEMO_DIR, MODEL_DIR, REPO, requireModel } from '../support/env';

const tmp = mkdtempSync(join(tmpdir(), 'blora-bad-input-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const env = { ...process.env, BLORA_WEBGPU_BACKEND: process.env.BLORA_WEBGPU_BACKEND ?? 'gl-compat' };
const cli = (...args: string[]) =>
  spawnSync(process.execPath, [join(REPO, 'bin/blora-studio.mjs'), ...args], { encoding: 'utf8', cwd: REPO, env });

/** A safetensors file whose one header entry is replaced by `entry`. */
function corrupt(entry: unknown, extraData = 0): Uint8Array {
  const header = JSON.stringify({ w: entry });
  const head = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + head.length + 16 + extraData);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  return out;
}

/** A 16-kHz mono 16-bit PCM WAV of silence. */
function silentWav(seconds: number): Buffer {
  const n = seconds * 16000;
  const b = Buffer.alloc(44 + 2 * n);
  b.write('RIFF', 0, 'latin1');
  b.writeUInt32LE(36 + 2 * n, 4);
  b.write('WAVEfmt ', 8, 'latin1');
  b.writeUInt32LE(16, 16);
  b.writeUInt16LE(1, 20);
  b.writeUInt16LE(1, 22);
  b.writeUInt32LE(16000, 24);
  b.writeUInt32LE(32000, 28);
  b.writeUInt16LE(2, 32);
  b.writeUInt16LE(16, 34);
  b.write('data', 36, 'latin1');
  b.writeUInt32LE(2 * n, 40);
  return b;
}

describe('safetensors header validation', () => {
  test('each corrupt entry is a SafetensorsError naming the file and the tensor', () => {
    const cases: [unknown, RegExp][] = [
      [{ dtype: 'F32', shape: 'abc', data_offsets: [0, 16] }, /shape "abc" is not a list of non-negative integers/],
      [{ dtype: 'F32', shape: [2, -2], data_offsets: [0, 16] }, /shape \[2,-2\]/],
      [{ dtype: 'F32', shape: [2, 2.5], data_offsets: [0, 16] }, /shape \[2,2\.5\]/],
      [{ dtype: 'Q4', shape: [2, 2], data_offsets: [0, 16] }, /unknown dtype "Q4"/],
      [{ dtype: 'toString', shape: [2, 2], data_offsets: [0, 16] }, /unknown dtype "toString"/],
      [{ dtype: 'F32', shape: [2, 2], data_offsets: [0] }, /data_offsets \[0\] is not \[begin, end\]/],
      [{ dtype: 'F32', shape: [2, 2], data_offsets: ['0', 16] }, /data_offsets/],
      [{ dtype: 'F32', shape: [2, 2], data_offsets: [16, 0] }, /needs 16 bytes but data_offsets \[16, 0\)/],
      [{ dtype: 'F32', shape: [2, 3], data_offsets: [0, 16] }, /F32\[2,3\] needs 24 bytes/],
      [{ dtype: 'F32', shape: [2, 4], data_offsets: [0, 32] }, /past the end of the file/],
      [null, /header entry is not an object/],
      [[1, 2], /header entry is not an object/],
    ];
    for (const [entry, re] of cases) {
      assert.throws(
        () => new SafetensorsFile(corrupt(entry), 'bad.safetensors'),
        (e: Error) => {
          assert.ok(e instanceof SafetensorsError, `${JSON.stringify(entry)}: ${e}`);
          assert.match(e.message, /^bad\.safetensors: tensor "w": /, JSON.stringify(entry));
          assert.match(e.message, re, JSON.stringify(entry));
          return true;
        },
      );
    }
    // a good file still parses
    const ok = new SafetensorsFile(writeSafetensors({ w: { shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) } }));
    assert.deepEqual([...ok.float32('w')], [1, 2, 3, 4]);
  });
});

describe('blora-studio: arguments checked before the model loads', () => {
  test('strict numbers: hex, exponent for a count, trailing junk, negative, empty → exit 2 naming flag and value', () => {
    const cases: [string, string, RegExp][] = [
      ['--steps', '0x10', /--steps must be a positive integer \(decimal digits\), got "0x10"/],
      ['--steps', '1e3', /--steps must be a positive integer .*"1e3"/],
      ['--steps', '12abc', /--steps .*"12abc"/],
      ['--steps', '-3', /--steps .*"-3"/],
      ['--steps', '0', /--steps must be a positive integer .*"0"/],
      ['--batch', '', /--batch .*""/],
      ['--seed', ' 1', /--seed must be a non-negative integer .*" 1"/],
      ['--lr', '0x1', /--lr must be a number, got "0x1"/],
      ['--lr', '-1e-3', /--lr must be a number ≥ 0, got "-1e-3"/],
      ['--layers', '1,x', /--layers .*"x"/],
    ];
    for (const [flag, v, re] of cases) {
      const r = cli('train', '--train', DEMO_DIR, `${flag}=${v}`);
      assert.equal(r.status, 2, `${flag} ${v}: exit ${r.status}\n${r.stderr}`);
      assert.match(r.stderr, re, `${flag} ${v}`);
    }
    for (const v of ['0x10', '1e3', '-1']) {
      const r = cli('eval', '--data', DEMO_DIR, '--limit', v);
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, new RegExp(`--limit must be a positive integer, got "${v}"`));
    }
    // a real value with an exponent is fine where a real value is meant (fails later on --out, not on --lr)
    const f = join(tmp, 'a-file');
    writeFileSync(f, 'x');
    const r = cli('train', '--train', DEMO_DIR, '--lr', '1e-3', '--out', f);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--out .*a-file: exists and is not a folder/);
  });

  test('a bad --out, a file as --data / --train, --layers 99, an unknown --language, a corrupt model.safetensors: exit 2, nothing created', () => {
    const model = requireModel();
    const aFile = join(tmp, 'plain.txt');
    writeFileSync(aFile, 'not a dataset');
    const out = join(tmp, 'out-never');
    const cases: [string[], RegExp][] = [
      [['train', '--train', DEMO_DIR, '--out', aFile], /--out .*plain\.txt: exists and is not a folder/],
      [['train', '--train', join(DEMO_DIR, 'en_01.wav'), '--out', out], /--train .*en_01\.wav: a file that is not a manifest/],
      [['train', '--train', DEMO_DIR, '--eval-new', aFile, '--out', out], /--eval-new .*plain\.txt: a file that is not a manifest/],
      [
        ['train', '--train', DEMO_DIR, '--layers', '99', '--model', model, '--out', out],
        /--layers 99: this model has 6 decoder layers \(0…5\)/,
      ],
      [
        ['train', '--train', DEMO_DIR, '--language', 'zz', '--model', model, '--out', out],
        /--language zz: Language "zz" is not one this model knows/,
      ],
      [
        ['eval', '--data', DEMO_DIR, '--out', join(tmp, 'missing-dir', 'x.jsonl')],
        /--out .*x\.jsonl: the folder .*missing-dir does not exist/,
      ],
      [['eval', '--data', DEMO_DIR, '--out', tmp], /--out .*: is a folder/],
      [['eval', '--data', aFile], /--data .*plain\.txt: a file that is not a manifest/],
      [['eval', '--data', DEMO_DIR, '--language', 'zz', '--model', model], /--language zz: Language "zz" is not one this model knows/],
    ];
    // A model folder whose model.safetensors has one corrupt entry (the rest linked to the real model).
    const badModel = join(tmp, 'bad-model');
    mkdirSync(badModel);
    for (const f of readdirSync(MODEL_DIR)) if (f !== 'model.safetensors') symlinkSync(join(MODEL_DIR, f), join(badModel, f));
    writeFileSync(join(badModel, 'model.safetensors'), corrupt({ dtype: 'F16', shape: 'abc', data_offsets: [0, 16] }));
    cases.push([
      ['train', '--train', DEMO_DIR, '--model', badModel, '--out', out],
      /--model .*bad-model: .*model\.safetensors: tensor "w": shape "abc" is not a list of non-negative integers/,
    ]);
    for (const [args, re] of cases) {
      const t0 = performance.now();
      const r = cli(...args);
      assert.equal(r.status, 2, `${args.join(' ')}: exit ${r.status}\n${r.stderr}`);
      assert.match(r.stderr, re, args.join(' '));
      assert.doesNotMatch(r.stderr, /loading .*onnxruntime|WebGPU adapter|prepare /, `${args.join(' ')}: reported after the model loaded`);
      assert.equal(existsSync(out), false, `${args.join(' ')}: left ${out}`);
      console.log(`${((performance.now() - t0) / 1000).toFixed(1)} s  ${r.stderr.trim().split('\n').at(-1)}`);
    }
  });
});

describe('blora-studio eval: a bad clip is skipped and counted', () => {
  test('a corrupt WAV and an unknown language are skipped, naming row and file; the good clip is evaluated', () => {
    const model = requireModel();
    const ds = join(tmp, 'mixed');
    mkdirSync(ds);
    copyFileSync(join(DEMO_DIR, 'en_01.wav'), join(ds, 'good.wav'));
    writeFileSync(join(ds, 'broken.wav'), Buffer.from('RIFF\x24\x00\x00\x00WAVEjunkjunkjunk', 'latin1'));
    copyFileSync(join(DEMO_DIR, 'en_02.wav'), join(ds, 'klingon.wav'));
    writeFileSync(join(ds, 'long.wav'), silentWav(31));
    writeFileSync(
      join(ds, 'manifest.jsonl'),
      [
        { audio_filepath: 'good.wav', text: 'I forgot my umbrella at the coffee shop again.', language: 'en' },
        { audio_filepath: 'broken.wav', text: 'nothing here', language: 'en' },
        { audio_filepath: 'klingon.wav', text: 'tlhIngan Hol', language: 'tlh' },
        { audio_filepath: 'long.wav', text: 'silence', language: 'en', duration: 31 },
      ]
        .map((r) => JSON.stringify(r))
        .join('\n') + '\n',
    );
    const out = join(tmp, 'mixed.jsonl');
    const r = cli('eval', '--model', model, '--data', ds, '--out', out, '--max-new-tokens', '8');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /manifest\.jsonl: row "[^"]+" \(.*broken\.wav\) skipped: audio: .*broken\.wav/);
    assert.match(r.stderr, /manifest\.jsonl: row "[^"]+" \(.*klingon\.wav\) skipped: Language "tlh" is not one this model knows/);
    // the reader's warning (manifest duration) and the decoded length, each naming the file
    assert.match(r.stderr, /manifest\.jsonl:4: .*long\.wav.*31\.0 s, longer than Whisper's 30-s window/);
    assert.match(r.stderr, /long\.wav: 31\.0 s of audio, longer than Whisper's 30-s window: only the first 30 s are transcribed/);
    assert.match(r.stdout, /2 of 4 utterances evaluated, 2 clips skipped/);
    assert.match(r.stdout, /en: WER \d+\.\d % over 2 utterances/);
    assert.match(r.stdout, /2 clip\(s\) skipped/);
    const lines = readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.equal(lines.filter((l) => 'hypothesis' in l).length, 2);
    assert.deepEqual(
      lines
        .filter((l) => l.skipped)
        .map((l) => l.audio.split('/').at(-1))
        .sort(),
      ['broken.wav', 'klingon.wav'],
    );
  });
});
