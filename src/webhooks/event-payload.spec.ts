import { test } from 'node:test';
import assert from 'node:assert/strict';
import { eventPayload } from './event-payload';

test('event payload: kept as received under the cap', () => {
  const p = { ref: 'refs/heads/main', after: 'a'.repeat(40), commits: [{ id: '1' }], repository: { full_name: 'o/r' } };
  assert.deepEqual(eventPayload(p, 1024), p);
});

test('event payload: over the cap, the top-level scalars with repository and head_commit', () => {
  const p = {
    ref: 'refs/heads/main',
    forced: false,
    commits: Array.from({ length: 50 }, (_, i) => ({ id: String(i), message: 'x'.repeat(100) })),
    repository: { full_name: 'o/r' },
    head_commit: { id: '49' },
    pusher: { name: 'me' },
  };
  assert.deepEqual(eventPayload(p, 1024), { ref: 'refs/heads/main', forced: false, repository: { full_name: 'o/r' }, head_commit: { id: '49' } });
  assert.deepEqual(eventPayload({ ...p, head_commit: { message: 'y'.repeat(2000) } }, 1024), { ref: 'refs/heads/main', forced: false });
  assert.deepEqual(eventPayload('not an object', 1024), {});
});
