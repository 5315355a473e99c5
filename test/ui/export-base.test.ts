// Loading a merged export back: its note names the base; the base resolves to a prepared model or a Hub repo.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { exportNote, parseExportNote } from '../../src/export/note';
import { baseLocationFor } from '../../src/ui/exportBase';

const enc = (v: unknown) => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v));

describe('blora-export.json and the base of an export', () => {
  test('the note round-trips; a folder without the mark is not an export; bad JSON names the file', () => {
    const n = exportNote({ method: 'blora', r: 4, alpha: 8, dropout: 0, baseModel: 'openai/whisper-small', modules: [] }, 'transformersjs');
    assert.deepEqual(parseExportNote(enc(n), 'dir'), n);
    assert.match(n.merge, /posterior means/);
    assert.equal(parseExportNote(enc({ exported_by: 'someone else' }), 'dir'), null);
    assert.throws(() => parseExportNote(enc('{'), 'my-export'), /my-export\/blora-export\.json: not JSON/);
    assert.equal(
      parseExportNote(enc('<!doctype html><html></html>'), 'http://127.0.0.1:5173/models/whisper-base'),
      null,
      "a dev server's fallback page",
    );
    assert.throws(() => parseExportNote(enc({ exported_by: 'blora-studio' }), 'my-export'), /base_model is missing/);
  });

  test('a prepared base loads locally, a table model from its ONNX repo on the Hub, an unknown id not at all', () => {
    assert.deepEqual(baseLocationFor('openai/whisper-base')?.location, {
      kind: 'url',
      baseUrl: '/models/whisper-base/',
      label: 'default model (Whisper base, prepared locally)',
    });
    assert.equal(baseLocationFor('OpenAI/Whisper-Tiny.en')?.where, 'prepared');
    const small = baseLocationFor('openai/whisper-small');
    assert.equal(small?.where, 'hub');
    assert.equal(small?.location.kind === 'hub' && small.location.repoId, 'onnx-community/whisper-small');
    assert.equal(baseLocationFor('me/my-whisper')?.label, 'Hub: me/my-whisper');
    assert.equal(baseLocationFor('not a repo'), null);
  });
});
