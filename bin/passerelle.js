#!/usr/bin/env node
// Entry point for `npx passerelle`: the sources are TypeScript run by Node 24's type stripping.
import { requireNode24 } from './node-version.js';

requireNode24('passerelle', '"npx passerelle" or "npm run passerelle --"');
await import('../src/cli/main.ts');
