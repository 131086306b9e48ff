/**
 * What a line of a step's output becomes before the log store writes it: kept as is, replaced,
 * turned into a group marker, or dropped. Decided by the runner's workflow-command reader, written
 * by the log store: the type lives here, with the writer, so the store needs nothing from above.
 */
export type LineResult =
  { kind: 'text'; text: string } | { kind: 'group'; title: string } | { kind: 'endgroup' } | { kind: 'notice'; text: string } | { kind: 'drop' };
