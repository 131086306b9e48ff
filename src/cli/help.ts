/** The help texts of the kiln CLI: `kiln --help` and `kiln <command> --help`. */

export const HELP: Record<string, string> = {
  main: `kiln: run code in Kiln's published environments

usage: kiln <command> [options]

  run [DIR]                 pack DIR (default .), submit it, follow the logs
  exec [--env NAME] [DIR] -- CMD...   run one command (no workflow file)
  runs                      your recent runs
  status RUN [--egress]     a run's jobs and steps (--egress: each job's network)
  logs RUN [--job J] [--follow]
  artifacts RUN [--download NAME] [-o DIR]
  cancel RUN
  envs                      the environment catalogue
  env show NAME[@VERSION] [--packages]
  env diff NAME A B
  env which PACKAGE
  login [--url URL] [--token TOKEN]
  serve | api | worker | images   run the Kiln server itself (see kiln serve --help)

Configuration: KILN_URL (default http://127.0.0.1:3000) and KILN_TOKEN, or kiln login.
Exit codes: 0 success, 1 the run failed or was cancelled, 2 usage or input error, 3 server unreachable.
\`kiln <command> --help\` for a command's options.`,
  run: `usage: kiln run [DIR] [options]

Packs DIR (default .) respecting .gitignore and .kilnignore, never following links out of DIR,
uploads it, and follows the logs live. The workflow is .kiln.yml or .github/workflows/*.yml.

  -W, --workflow FILE        a workflow file to run (from anywhere)
  -j, --job ID               run only this job (and the jobs it needs)
  -P, --platform LABEL=ENV   map a runs-on label to an environment (repeatable)
      --strict               refuse the workflow if any job cannot run here (default: such jobs
                             are shown skipped as not runnable, with why, and the others run)
  -i, --input NAME=VALUE     a workflow_dispatch input (repeatable; NAME= is empty): the run is a
                             workflow_dispatch; inputs not given take their declared defaults
      --repo URL --ref REF   run a git repository instead of DIR
  -d, --detach               submit and print the run id; do not follow
      --json                 print a final JSON summary on stdout (logs go to stderr)
      --cancel-on-interrupt  Ctrl-C cancels the run without asking
  -h, --help`,
  exec: `usage: kiln exec [--env NAME] [--shell bash|sh|python] [DIR] -- CMD [ARGS...]

Runs one command in an environment (default: the server's default), with DIR packed into the
workspace if given. Streams its output and exits with its exit code.`,
  status: `usage: kiln status RUN [--egress] [--json]

Prints the run's jobs and their steps.

      --egress   then, per job, its network: "no network" (the default: the job had none), or the hosts
                 it may reach, each host:port it asked for (allowed or refused, requests, bytes in and
                 out) and the bytes through its gateway against the cap
      --json     print the run as JSON (with --egress, each job gets "egress": the report, or null)
  -h, --help`,
  logs: 'usage: kiln logs RUN [--job JOB_ID] [-f|--follow]',
  artifacts: 'usage: kiln artifacts RUN [--download NAME] [-o DIR]   (download extracts into DIR/NAME, default ./NAME)',
  env: 'usage: kiln env show NAME[@VERSION] [--packages] | kiln env diff NAME A B | kiln env which PACKAGE',
  login: 'usage: kiln login [--url URL] [--token TOKEN]   (without --token, reads it from standard input)',
};
