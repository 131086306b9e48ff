import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Conclusion } from '../execution/job';
import { RunEvents } from '../runs/run-events';
import type { Run } from '../runs/runs.types';
import { RunStatusListener } from './run-status-listener';
import type { CommitState, StatusReporter } from './status-reporter';

function listening() {
  const reports: [string, CommitState, string][] = [];
  const statuses = {
    report: (run: Run, state: CommitState, description: string) => {
      reports.push([run.id, state, description]);
    },
  } as unknown as StatusReporter;
  const events = new RunEvents();
  new RunStatusListener(events, statuses).onModuleInit();
  return { events, reports };
}
const run = (id: string, repositoryId: string | null) => ({ id, repositoryId, workflowName: 'ci', context: { sha: 'a'.repeat(40) } }) as unknown as Run;

test('a run-concluded event of a repository run reaches the status reporter as the final commit status', () => {
  const { events, reports } = listening();
  const cases: [Conclusion, CommitState, string][] = [
    ['success', 'success', 'Kiln: success'],
    ['failure', 'failure', 'Kiln: failure'],
    ['cancelled', 'error', 'cancelled'],
  ];
  for (const [conclusion] of cases) events.emit('run-concluded', { run: run(`run-${conclusion}`, 'repo1'), conclusion });
  assert.deepEqual(
    reports,
    cases.map(([c, state, description]) => [`run-${c}`, state, description]),
  );
});

test('a run from another channel (no repository) sends no status', () => {
  const { events, reports } = listening();
  events.emit('run-concluded', { run: run('run-cli', null), conclusion: 'success' });
  assert.deepEqual(reports, []);
});
