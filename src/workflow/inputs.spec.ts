import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dispatchInputs, resolveInputs } from './inputs';

const WORKFLOW = `
on:
  push:
  workflow_dispatch:
    inputs:
      name:
        description: who
        default: world
      flag:
        type: boolean
        default: true
      count:
        type: number
        default: 3
      level:
        type: choice
        options: [low, high]
        default: low
      target:
        type: environment
      token:
        required: true
jobs: {}
`;

test('inputs: each type read with its default, required and description', () => {
  const d = dispatchInputs(WORKFLOW);
  assert.equal(d.dispatch, true);
  assert.equal(d.push, true);
  assert.deepEqual(d.problems, []);
  assert.deepEqual(
    d.inputs.map((i) => [i.name, i.type, i.default, i.required]),
    [
      ['name', 'string', 'world', false],
      ['flag', 'boolean', 'true', false],
      ['count', 'number', '3', false],
      ['level', 'choice', 'low', false],
      ['target', 'environment', null, false],
      ['token', 'string', null, true],
    ],
  );
  assert.equal(d.inputs[0].description, 'who');
  assert.deepEqual(d.inputs[3].options, ['low', 'high']);
});

test('inputs: defaults apply, given values win, typed as the inputs context and as text in event.inputs', () => {
  const r = resolveInputs(dispatchInputs(WORKFLOW), { token: 't', flag: 'false', count: '2.5' });
  assert.deepEqual(r.problems, []);
  assert.deepEqual(r.inputs, { name: 'world', flag: false, count: 2.5, level: 'low', target: '', token: 't' });
  assert.deepEqual(r.eventInputs, { name: 'world', flag: 'false', count: '2.5', level: 'low', target: '', token: 't' });
});

test('inputs: an empty given value is a value', () => {
  const r = resolveInputs(dispatchInputs(WORKFLOW), { token: '', name: '' });
  assert.deepEqual(r.problems, []);
  assert.equal(r.inputs.token, '');
  assert.equal(r.inputs.name, '');
});

test('inputs: unknown name, missing required, values not of their type are problems naming the input', () => {
  const r = resolveInputs(dispatchInputs(WORKFLOW), { nope: '1', flag: 'yes', count: 'many', level: 'mid' });
  const messages = r.problems.map((p) => `${p.path}: ${p.message}`);
  assert.equal(messages.length, 5, messages.join('\n'));
  assert.match(messages[0], /^inputs\.nope: the workflow declares no input 'nope' \(its inputs: name, flag, count, level, target, token\)/);
  assert.match(messages.join('\n'), /inputs\.flag: the input 'flag' is a boolean: give true or false, not 'yes'/);
  assert.match(messages.join('\n'), /inputs\.count: the input 'count' is a number/);
  assert.match(messages.join('\n'), /inputs\.level: the input 'level' is a choice: give one of 'low', 'high', not 'mid'/);
  assert.match(messages.join('\n'), /inputs\.token: the input 'token' is required and has no default/);
});

test('inputs: a run that is not dispatched needs no required input', () => {
  const r = resolveInputs(dispatchInputs(WORKFLOW), {}, false);
  assert.deepEqual(r.problems, []);
  assert.equal(r.inputs.token, '');
  assert.equal(r.inputs.name, 'world');
});

test('inputs: every form of on; a workflow without workflow_dispatch takes no inputs', () => {
  assert.equal(dispatchInputs('on: workflow_dispatch\njobs: {}').dispatch, true);
  assert.equal(dispatchInputs('on: [push, workflow_dispatch]\njobs: {}').dispatch, true);
  assert.equal(dispatchInputs('on:\n  workflow_dispatch:\njobs: {}').dispatch, true);
  const push = dispatchInputs('on: push\njobs: {}');
  assert.equal(push.dispatch, false);
  assert.deepEqual(resolveInputs(push, {}), { inputs: {}, eventInputs: {}, problems: [] });
  assert.match(resolveInputs(push, { x: '1' }).problems[0].message, /not triggered by workflow_dispatch/);
  assert.equal(dispatchInputs(': not yaml [').dispatch, false);
});

test('inputs: an unset boolean is false; a bad declaration is a problem with its line', () => {
  const d = dispatchInputs(
    'on:\n  workflow_dispatch:\n    inputs:\n      b:\n        type: boolean\n      c:\n        type: choice\n        options: [a]\n        default: z\n      t:\n        type: file\njobs: {}',
  );
  const r = resolveInputs(d, {});
  assert.equal(r.inputs.b, false);
  assert.deepEqual(
    r.problems.map((p) => [p.path, p.line]),
    [
      ['on.workflow_dispatch.inputs.c.default', 9],
      ['on.workflow_dispatch.inputs.t.type', 11],
    ],
  );
});

test('inputs: more than 25 declared is a problem', () => {
  const many = Array.from({ length: 26 }, (_, i) => `      i${i}: {}`).join('\n');
  assert.match(dispatchInputs(`on:\n  workflow_dispatch:\n    inputs:\n${many}\njobs: {}`).problems[0].message, /at most 25 inputs/);
});
