import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allowsUnsecureCommands, Annotation, deprecatedMessage, disabledMessage, WorkflowCommands } from './workflow-commands';

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

test('debug only with debug logging', () => {
  assert.deepEqual(make(false).cmds.line('::debug::details'), { kind: 'drop' });
  assert.deepEqual(make(true).cmds.line('::debug::details'), { kind: 'notice', text: '[debug] details' });
});

test("set-output and save-state work, each with GitHub's deprecation warning (annotation and log line)", () => {
  const { cmds, annotations } = make();
  assert.deepEqual(cmds.line('::set-output name=answer::4%252'), { kind: 'text', text: `Warning: ${deprecatedMessage('set-output')}` });
  cmds.line('::save-state name=pid::123');
  assert.deepEqual(cmds.effects, { outputs: { answer: '4%2' }, state: { pid: '123' }, env: {}, path: [], failed: false });
  assert.deepEqual(
    annotations.map((a) => [a.level, a.message]),
    [
      ['warning', deprecatedMessage('set-output')],
      ['warning', deprecatedMessage('save-state')],
    ],
  );
  assert.match(
    deprecatedMessage('set-output'),
    /^The `set-output` command is deprecated and will be disabled soon\. Please upgrade to using Environment Files\./,
  );
});

test('set-output without a name: the warning, then two errors, and the step fails', () => {
  const { cmds, annotations } = make();
  const r = cmds.line('::set-output::42') as { text: string };
  assert.equal(cmds.effects.failed, true);
  assert.deepEqual(
    annotations.map((a) => a.level),
    ['warning', 'error', 'error'],
  );
  assert.equal(annotations[2].message, "Required field 'name' is missing in ##[set-output] command.");
  assert.match(r.text, /^Warning: .*\nError: Unable to process command '::set-output::42' successfully\.\nError: Required field/);
});

test("set-env and add-path without ACTIONS_ALLOW_UNSECURE_COMMANDS: refused with GitHub's errors; the step fails", () => {
  const { cmds, annotations } = make();
  const r = cmds.line('::set-env name=FOO::bar') as { kind: string; text: string };
  cmds.line('::add-path::/opt/bin');
  assert.deepEqual(cmds.effects, { outputs: {}, state: {}, env: {}, path: [], failed: true });
  assert.deepEqual(
    annotations.map((a) => [a.level, a.message]),
    [
      ['error', "Unable to process command '::set-env name=FOO::bar' successfully."],
      ['error', disabledMessage('set-env')],
      ['error', "Unable to process command '::add-path::/opt/bin' successfully."],
      ['error', disabledMessage('add-path')],
    ],
  );
  assert.equal(r.text, `Error: Unable to process command '::set-env name=FOO::bar' successfully.\nError: ${disabledMessage('set-env')}`);
  assert.match(disabledMessage('add-path'), /^The `add-path` command is disabled\. .*`ACTIONS_ALLOW_UNSECURE_COMMANDS` environment variable to `true`/);
});

test('set-env and add-path with ACTIONS_ALLOW_UNSECURE_COMMANDS: they work, silently, as on GitHub; NODE_OPTIONS is refused', () => {
  const annotations: Annotation[] = [];
  const cmds = new WorkflowCommands({ annotate: (a) => annotations.push(a), addMask: () => {} }, false, true);
  assert.deepEqual(cmds.line('::set-env name=FOO::bar baz'), { kind: 'drop' });
  cmds.line('::add-path::/opt/a');
  cmds.line('::add-path::/opt/b');
  cmds.line('::add-path::/opt/a');
  cmds.line('::set-env name=NODE_OPTIONS::--inspect');
  assert.deepEqual(cmds.effects, { outputs: {}, state: {}, env: { FOO: 'bar baz' }, path: ['/opt/b', '/opt/a'], failed: false });
  assert.deepEqual(
    annotations.map((a) => [a.level, a.message]),
    [['error', "Can't update NODE_OPTIONS environment variable using ::set-env:: command."]],
  );
});

test('ACTIONS_ALLOW_UNSECURE_COMMANDS is read as .NET reads a boolean', () => {
  assert.equal(allowsUnsecureCommands({ ACTIONS_ALLOW_UNSECURE_COMMANDS: 'true' }), true);
  assert.equal(allowsUnsecureCommands({ ACTIONS_ALLOW_UNSECURE_COMMANDS: ' True ' }), true);
  assert.equal(allowsUnsecureCommands({ ACTIONS_ALLOW_UNSECURE_COMMANDS: '1' }), false);
  assert.equal(allowsUnsecureCommands({}), false);
});
