#!/usr/bin/env node
// Entry point for `npx passerelle`: the sources are TypeScript run by Node 24's type stripping.
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(
    `passerelle needs Node.js 24 or later (this is ${process.version}); run it through npm ("npx passerelle" or "npm run passerelle --") so that the pinned Node 24 is used.\n`,
  );
  process.exit(1);
}
await import('../src/cli/main.ts');
