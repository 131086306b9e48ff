import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BadRequestException } from '@nestjs/common';
import { checkInputs, dispatchContext, parseInputsField } from './submissions';
import type { RunContext } from '../execution/job';

const push: RunContext = { sha: 'a'.repeat(40), ref: 'refs/heads/main', repository: 'o/r', event: 'push', runNumber: 0 };
const BOTH = 'on:\n  push:\n  workflow_dispatch:\n    inputs:\n      name: { required: true }\n      n: { type: number, default: 1 }\njobs: {}';
const ONLY = 'on:\n  workflow_dispatch:\n    inputs:\n      n: { type: number, default: 1 }\njobs: {}';

test('dispatchContext: given inputs make a workflow_dispatch with typed inputs and {inputs, ref, workflow} as github.event', () => {
  const d = dispatchContext(BOTH, '.kiln.yml', push, { name: 'x', n: '5' });
  assert.equal(d.context.event, 'workflow_dispatch');
  assert.deepEqual(d.context.inputs, { name: 'x', n: 5 });
  assert.deepEqual(d.context.eventPayload, { inputs: { name: 'x', n: '5' }, ref: 'refs/heads/main', workflow: '.kiln.yml' });
  assert.deepEqual(d.plan.inputs, { name: 'x', n: 5 });
  assert.equal(d.plan.github.event_name, 'workflow_dispatch');
  assert.equal(d.plan.github.ref_name, 'main');
  assert.equal(d.plan.github.repository_owner, 'o');
});

test('dispatchContext: without inputs a workflow that also runs on push stays a push (defaults filled, required not asked)', () => {
  const d = dispatchContext(BOTH, null, push, undefined);
  assert.equal(d.context.event, 'push');
  assert.deepEqual(d.context.inputs, { name: '', n: 1 });
  assert.equal(d.context.eventPayload, undefined);
});

test('dispatchContext: a workflow only on workflow_dispatch is a dispatch; a webhook run keeps its event and payload', () => {
  assert.equal(dispatchContext(ONLY, null, push, undefined).context.event, 'workflow_dispatch');
  const hook = dispatchContext(BOTH, null, { ...push, eventPayload: { after: 'x' } }, undefined);
  assert.equal(hook.context.event, 'push');
  assert.deepEqual(hook.plan.github.event, { after: 'x' });
});

test('dispatchContext: a bad input is a 400 with the problems', () => {
  assert.throws(
    () => dispatchContext(BOTH, '.kiln.yml', push, { n: 'x' }),
    (e: BadRequestException) => {
      const body = e.getResponse() as { message: string; problems: { path: string }[] };
      assert.match(body.message, /^the inputs do not fit the workflow \.kiln\.yml:\ninputs\.name: .*required/);
      assert.deepEqual(
        body.problems.map((p) => p.path),
        ['inputs.name', 'inputs.n'],
      );
      return true;
    },
  );
});

test('checkInputs: values as text; names, count and size checked; the multipart field is JSON', () => {
  assert.deepEqual(checkInputs({ a: 'x', b: 2, c: true }), { a: 'x', b: '2', c: 'true' });
  assert.equal(checkInputs(undefined), undefined);
  assert.throws(() => checkInputs(['a']), /inputs must be an object/);
  assert.throws(() => checkInputs({ '1a': 'x' }), /'1a' is not an input name/);
  assert.throws(() => checkInputs({ a: { b: 1 } }), /inputs\.a: give a string, number or boolean/);
  assert.throws(() => checkInputs({ a: 'x'.repeat(64 * 1024 + 1) }), /inputs\.a: at most 64 KiB/);
  assert.throws(() => checkInputs(Object.fromEntries(Array.from({ length: 26 }, (_, i) => [`i${i}`, '']))), /at most 25/);
  assert.deepEqual(parseInputsField('{"a":1}'), { a: '1' });
  // A `__proto__` key stays an own key: the workflow then names it as an unknown input.
  const proto = parseInputsField('{"__proto__":"x"}')!;
  assert.deepEqual(Object.keys(proto), ['__proto__']);
  assert.throws(() => dispatchContext(BOTH, null, push, { ...proto, name: 'n' }), /the workflow declares no input '__proto__'/);
  assert.throws(() => parseInputsField('a=1'), /a JSON object/);
});
