import type * as Expressions from '@actions/expressions' with { 'resolution-mode': 'import' };

export type ExpressionsLib = typeof Expressions;

let loading: Promise<ExpressionsLib> | undefined;

/** GitHub's own expression engine (@actions/expressions) is an ES module: loaded once, on first use. */
export function expressionsLib(): Promise<ExpressionsLib> {
  loading ??= import('@actions/expressions');
  return loading;
}
