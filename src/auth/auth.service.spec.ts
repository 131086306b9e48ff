import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadConfig } from '../config/config';
import { Database, openDatabase } from '../db/database';
import { QuotaExceededException } from '../common/quota';
import { AuthRepository } from './auth.repository';
import { AuthService } from './auth.service';
import type { User } from './auth.types';

let dir: string;
let db: Database;
let auth: AuthService;
let repo: AuthRepository;
let config: ReturnType<typeof loadConfig>;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-auth-spec-'));
  // SQLite in a temp folder, or the PostgreSQL of KILN_TEST_DATABASE_URL when given (names are unique per run).
  const pg = process.env.KILN_TEST_DATABASE_URL;
  config = loadConfig({ KILN_DATA_DIR: dir, KILN_QUOTA_TOKENS: '2', KILN_QUOTA_SECRETS: '2', ...(pg ? { DATABASE_URL: pg } : {}) });
  db = await openDatabase(config);
  repo = new AuthRepository(db);
  auth = new AuthService(config, repo);
});

after(async () => {
  await db.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const unique = (name: string) => `${name}-${Math.random().toString(36).slice(2, 8)}`;

const capped = (variable: string) => (e: unknown) =>
  e instanceof QuotaExceededException && e.getStatus() === 429 && String((e.getResponse() as { message: string }).message).includes(variable);

test('active tokens are capped per user; revoked and expired ones do not count', async () => {
  const u = await auth.createUser(unique('tokens'), false, {});
  const a = await auth.issueToken(u.id, 'a', undefined);
  await auth.issueToken(u.id, 'b', 30);
  await assert.rejects(auth.issueToken(u.id, 'c', undefined), capped('KILN_QUOTA_TOKENS'));
  await auth.revoke(a.info.id, { user: u, tokenId: a.info.id });
  const c = await auth.issueToken(u.id, 'c', undefined);
  // An expired token holds no place either.
  await db.run('UPDATE tokens SET expires_at = ? WHERE id = ?', ['2000-01-01T00:00:00.000Z', c.info.id]);
  await auth.issueToken(u.id, 'd', undefined);
  await assert.rejects(auth.issueToken(u.id, 'e', undefined), capped('KILN_QUOTA_TOKENS'));
});

test("a user's own quota.tokens overrides the default; another user's tokens are theirs", async () => {
  const roomy = await auth.createUser(unique('roomy'), false, { tokens: 3 });
  for (const n of ['a', 'b', 'c']) await auth.issueToken(roomy.id, n, undefined);
  await assert.rejects(auth.issueToken(roomy.id, 'd', undefined), capped('KILN_QUOTA_TOKENS'));
  const other = await auth.createUser(unique('other'), false, {});
  await auth.issueToken(other.id, 'a', undefined);
});

test('secrets are capped per user; replacing one is allowed, deleting one frees its place', async () => {
  const u: User = await auth.createUser(unique('secrets'), false, {});
  await auth.setSecret(u.id, 'A', '1');
  await auth.setSecret(u.id, 'B', '2');
  await assert.rejects(auth.setSecret(u.id, 'C', '3'), capped('KILN_QUOTA_SECRETS'));
  await auth.setSecret(u.id, 'A', 'replaced');
  assert.equal((await auth.secretsOf(u.id)).A, 'replaced');
  await auth.deleteSecret(u.id, 'B');
  await auth.setSecret(u.id, 'C', '3');
  assert.deepEqual(
    (await auth.secretNames(u.id)).map((s) => s.name),
    ['A', 'C'],
  );
});

test('storage is null until a meter is registered, then artifacts plus sources against the quota', async () => {
  const u = await auth.createUser(unique('storage'), false, { artifactBytes: 1000 });
  assert.equal(await auth.storage(u), null);
  auth.useStorageMeter({ usage: async () => ({ artifacts: 100, sources: 250 }) });
  assert.deepEqual(await auth.storage(u), { usedBytes: 350, artifactBytes: 100, sourceBytes: 250, quotaBytes: 1000 });
});

test('a token expires by the clock the service is given: accepted until its last millisecond, refused after', async () => {
  let now = Date.parse('2031-03-01T12:00:00.000Z');
  const clocked = new AuthService(config, repo, () => now);
  const u = await clocked.createUser(unique('clock'), false, {});
  const { token, info } = await clocked.issueToken(u.id, 'one-day', 1);
  assert.equal(info.expiresAt, '2031-03-02T12:00:00.000Z');
  assert.equal((await clocked.authenticate(token))?.user.id, u.id);
  now += 86_400_000 - 1;
  assert.equal((await clocked.authenticate(token))?.user.id, u.id);
  now += 1;
  assert.equal(await clocked.authenticate(token), null);
});
