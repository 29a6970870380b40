#!/usr/bin/env node
// The `etcd-steward` command (package.json "bin"): `npx etcd-steward …` in a clone after set-up,
// or on PATH after `npm link` / `npm install -g .`. It runs the CLI's TypeScript (client/cli/main.ts)
// through tsx, a runtime dependency, so there is no separate build step to forget.
'use strict';
// etcd's certificates name IP addresses; Node warns (DEP0123) about TLS servernames that are IPs.
process.removeAllListeners('warning');
process.on('warning', (w) => {
  if (w.code !== 'DEP0123') console.error(`${w.name}: ${w.message}`);
});
require('tsx/cjs');
require('../client/cli/main.ts');
