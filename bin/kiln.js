#!/usr/bin/env node
'use strict';
// The one entry of Kiln: `kiln serve|api|worker|images`. The TypeScript build lives in dist/.
const path = require('node:path');
const fs = require('node:fs');
const entry = path.join(__dirname, '..', 'dist', 'src', 'main.js');
if (!fs.existsSync(entry)) {
  process.stderr.write('kiln: not built yet; run `npm run build` (or `npm run up`) first\n');
  process.exit(2);
}
require(entry).main(process.argv.slice(2)).catch((err) => {
  process.stderr.write(`kiln: ${err && err.message ? err.message : String(err)}\n`);
  process.exit(1);
});
