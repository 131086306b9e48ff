import { test } from 'node:test';
import assert from 'node:assert/strict';
import { demuxDockerStream, hardenedHostConfig, PROBE_LIMITS, RUNSC_THREAD_HEADROOM } from './hardening';

function frame(type: number, text: string): Buffer {
  const payload = Buffer.from(text);
  const h = Buffer.alloc(8);
  h[0] = type;
  h.writeUInt32BE(payload.length, 4);
  return Buffer.concat([h, payload]);
}

test('demux splits stdout and stderr frames and ignores a torn tail', () => {
  const buf = Buffer.concat([frame(1, 'out1 '), frame(2, 'err1'), frame(1, 'out2'), Buffer.from([1, 0, 0])]);
  const { stdout, stderr } = demuxDockerStream(buf);
  assert.equal(stdout.toString(), 'out1 out2');
  assert.equal(stderr.toString(), 'err1');
});

test('the hardened HostConfig has every default the security model promises', () => {
  const h = hardenedHostConfig(PROBE_LIMITS);
  assert.equal(h.NetworkMode, 'none');
  assert.deepEqual(h.CapDrop, ['ALL']);
  assert.deepEqual(h.SecurityOpt, ['no-new-privileges']);
  assert.equal(h.ReadonlyRootfs, true);
  assert.equal(h.Privileged, false);
  assert.equal(h.Init, true);
  assert.equal(h.Memory, h.MemorySwap);
  assert.ok((h.PidsLimit ?? 0) > 0);
  assert.ok((h.NanoCpus ?? 0) > 0);
  assert.deepEqual(h.Ulimits?.map((u) => u.Name).sort(), ['fsize', 'nofile']);
  assert.match(h.Tmpfs?.['/tmp'] ?? '', /size=\d+/);
  assert.match(h.Tmpfs?.['/tmp'] ?? '', /(^|,)nosuid(,|$)/);
  assert.match(h.Tmpfs?.['/tmp'] ?? '', /(^|,)exec(,|$)/, 'jobs run what they build');
});

test('the runtime is runc unless the operator chose runsc; nothing else changes with it', () => {
  const runc = hardenedHostConfig(PROBE_LIMITS);
  const runsc = hardenedHostConfig(PROBE_LIMITS, undefined, 'runsc');
  assert.equal(runc.Runtime, 'runc');
  assert.equal(runsc.Runtime, 'runsc');
  assert.equal(runsc.PidsLimit, PROBE_LIMITS.pids + RUNSC_THREAD_HEADROOM, "gVisor's own threads count on the host");
  assert.deepEqual({ ...runsc, Runtime: 'runc', PidsLimit: PROBE_LIMITS.pids }, runc);
});
