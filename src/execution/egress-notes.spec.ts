import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { EgressRequest } from '../common/egress-rules';
import { egressNetworkNote, refusedNotes } from './egress-notes';

const req = (host: string, port: number, refused: boolean, userAgent = ''): EgressRequest => ({
  time: 0,
  method: 'GET',
  host,
  port,
  status: refused ? 403 : 200,
  refused,
  bytesIn: 0,
  bytesOut: 0,
  userAgent,
});

test('one warning per refused host:port, naming the tool, what the server allows and how to vendor wheels', () => {
  const notes = refusedNotes(
    [
      req('files.example.org', 443, true, 'pip/23.0.1 {"ci":null}'),
      req('files.example.org', 443, true, 'pip/23.0.1'),
      req('pypi.org', 443, false),
      req('evil.test', 80, true),
    ],
    ['pypi.org:443', '*.pythonhosted.org:443'],
  );
  assert.equal(notes.length, 2);
  assert.equal(notes[0].level, 'warning');
  assert.equal(notes[0].title, 'Egress refused');
  assert.match(
    notes[0].message,
    /^pip tried files\.example\.org:443: not on this server's egress list \(it allows pypi\.org:443, \*\.pythonhosted\.org:443\)\./,
  );
  assert.match(notes[0].message, /--no-index --find-links/);
  assert.match(notes[1].message, /^a request tried evil\.test:80/);
});

test('a listed host that was refused is one whose address jobs may not reach', () => {
  const [note] = refusedNotes([req('x.pythonhosted.org', 443, true, 'curl/7.88')], ['*.pythonhosted.org:443']);
  assert.match(note.message, /^curl tried x\.pythonhosted\.org:443: it is on this server's egress list, but its address is one jobs may not reach/);
  assert.match(egressNetworkNote(['pypi.org:443']), /no DNS and no route out; it reaches pypi\.org:443 only through the proxy/);
});
