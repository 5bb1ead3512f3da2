#!/usr/bin/env node
// Entry point for `npm run demo` (docs/demo.md): the sources are TypeScript run by Node 24's type stripping.
import { requireNode24 } from './node-version.js';

requireNode24('the Passerelle demo', '"npm run demo"');
await import('../demo/main.ts');
