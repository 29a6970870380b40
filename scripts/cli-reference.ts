/**
 * Writes docs/cli.md, the CLI reference, from the commands themselves (`npm run docs:cli`): each
 * command's usage, description and options as `--help` prints them. test/cli-reference.test.ts
 * fails when the committed file differs from what this makes, so the reference cannot drift.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { buildProgram } from '../client/cli/program';

/** The reference as Markdown. A fixed width, so it does not depend on the terminal. */
export function cliReference(): string {
  const program = buildProgram();
  const wide = (c: Command) => c.configureOutput({ getOutHelpWidth: () => 100, getErrHelpWidth: () => 100 });
  const section = (c: Command, path: string) => `## \`${path}\`\n\n\`\`\`\n${wide(c).helpInformation().trimEnd()}\n\`\`\`\n`;
  const parts = [
    '# etcd-steward CLI reference',
    '',
    'Generated from the commands by `npm run docs:cli` (scripts/cli-reference.ts); a test fails when it is out of date. Run as `npx etcd-steward …` in a clone, `etcd-steward …` after `npm link`, or `npm run steward -- …`.',
    '',
    section(program, 'etcd-steward'),
  ];
  for (const c of program.commands) {
    parts.push(section(c, `etcd-steward ${c.name()}`));
    for (const sub of c.commands) parts.push(section(sub, `etcd-steward ${c.name()} ${sub.name()}`));
  }
  return `${parts.join('\n').trimEnd()}\n`;
}

if (require.main === module) {
  const file = join(__dirname, '..', 'docs', 'cli.md');
  writeFileSync(file, cliReference());
  console.log(`wrote ${file}`);
}
