#!/usr/bin/env node
'use strict';
// The one entry of Kiln: `kiln serve|api|worker|images`. The TypeScript build lives in dist/.
const path = require('node:path');
const fs = require('node:fs');
// Server roles load NestJS; every other command is the lightweight client (quick to start).
const SERVER = new Set(['serve', 'api', 'worker', 'images']);
const args = process.argv.slice(2);
const server = SERVER.has(args[0]);
const entry = path.join(__dirname, '..', '..', 'dist', 'src', server ? 'main.js' : path.join('cli', 'main.js'));
if (!fs.existsSync(entry)) {
  process.stderr.write('kiln: not built yet; run `npm run build` (or `npm run up`) first\n');
  process.exit(2);
}
const mod = require(entry);
const done = server ? mod.main(args).then(() => undefined) : mod.cli(args).then((code) => { process.exitCode = code; });
done.catch((err) => {
  process.stderr.write(`kiln: ${err && err.message ? err.message : String(err)}\n`);
  process.exit(server ? 1 : 2);
});
