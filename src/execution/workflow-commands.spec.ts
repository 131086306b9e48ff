import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Annotation, WorkflowCommands } from './workflow-commands';

function make(debug = false) {
  const annotations: Annotation[] = [];
  const masks: string[] = [];
  const cmds = new WorkflowCommands({ annotate: (a) => annotations.push(a), addMask: (m) => masks.push(m) }, debug);
  return { cmds, annotations, masks };
}

test('plain lines pass through; groups become markers', () => {
  const { cmds } = make();
  assert.deepEqual(cmds.line('hello'), { kind: 'text', text: 'hello' });
  assert.deepEqual(cmds.line('::group::Build it'), { kind: 'group', title: 'Build it' });
  assert.deepEqual(cmds.line('::endgroup::'), { kind: 'endgroup' });
});

test('annotations keep file, line, col, title; escapes are decoded', () => {
  const { cmds, annotations } = make();
  const r = cmds.line('::error file=src/a%2Cb.py,line=3,col=5,endLine=4,title=Type%3A error::bad%0Anews 100%25');
  assert.deepEqual(annotations, [
    { level: 'error', message: 'bad\nnews 100%', title: 'Type: error', file: 'src/a,b.py', line: 3, endLine: 4, col: 5, endColumn: null },
  ]);
  assert.deepEqual(r, { kind: 'text', text: 'Error: Type: error: bad\nnews 100% (src/a,b.py:3:5)' });
});

test('add-mask masks and is not logged; stop-commands pauses until its token', () => {
  const { cmds, masks, annotations } = make();
  assert.deepEqual(cmds.line('::add-mask::s3cret'), { kind: 'drop' });
  assert.deepEqual(masks, ['s3cret']);
  assert.deepEqual(cmds.line('::stop-commands::tok123'), { kind: 'drop' });
  assert.deepEqual(cmds.line('::error::ignored'), { kind: 'text', text: '::error::ignored' });
  assert.deepEqual(cmds.line('::tok123::'), { kind: 'drop' });
  cmds.line('::warning::counted');
  assert.deepEqual(
    annotations.map((a) => a.message),
    ['counted'],
  );
});

test('debug only with debug logging; legacy commands refused with a warning', () => {
  assert.deepEqual(make(false).cmds.line('::debug::details'), { kind: 'drop' });
  assert.deepEqual(make(true).cmds.line('::debug::details'), { kind: 'notice', text: '[debug] details' });
  const r = make().cmds.line('::set-output name=x::1');
  assert.equal(r.kind, 'notice');
  assert.match((r as { text: string }).text, /set-output.*disabled.*GITHUB_OUTPUT/);
});
