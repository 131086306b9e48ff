import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addressOf, backendUnreachable } from './unreachable';

test('errors that say PostgreSQL or Redis is unreachable are named (answered 503), others are not', () => {
  assert.equal(backendUnreachable(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' })), 'the database is unreachable');
  assert.equal(
    backendUnreachable(Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' })),
    'the database is unreachable',
  );
  assert.equal(backendUnreachable(Object.assign(new Error('connection failure'), { code: '08006' })), 'the database is unreachable');
  assert.equal(backendUnreachable(new Error('Connection terminated unexpectedly')), 'the database is unreachable');
  assert.equal(backendUnreachable(new Error('Connection is closed.')), 'Redis is unreachable');
  assert.equal(backendUnreachable(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), { code: 'ECONNREFUSED' })), 'Redis is unreachable');
  assert.equal(backendUnreachable(new Error('Cannot read properties of undefined')), null);
  assert.equal(backendUnreachable(Object.assign(new Error('duplicate key'), { code: '23505' })), null, 'a constraint violation is not an outage');
  assert.equal(backendUnreachable(undefined), null);
  // Any port: the configured addresses name the store a refused connection was to.
  const addresses = { database: addressOf('postgres://kiln@localhost:34959/kiln', 5432), redis: addressOf('redis://127.0.0.1:40001', 6379) };
  assert.equal(
    backendUnreachable(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:34959'), { code: 'ECONNREFUSED' }), addresses),
    'the database is unreachable',
  );
  assert.equal(
    backendUnreachable(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:40001'), { code: 'ECONNREFUSED' }), addresses),
    'Redis is unreachable',
  );
  assert.equal(
    backendUnreachable(Object.assign(new Error('connect ECONNREFUSED 10.0.0.9:80'), { code: 'ECONNREFUSED' }), addresses),
    'a backing service is unreachable',
  );
});
