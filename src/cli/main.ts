#!/usr/bin/env node
import { Command } from 'commander';
import { installationExportMaterial } from '../audit/range-verifier.ts';
import { DatabaseStartError } from '../db/errors.ts';
import { registerClients, registerKeys, registerMigrate, registerUsers, registerWebauthn } from './admin.ts';
import { registerAudit } from './audit.ts';
import { registerAuditOutputs } from './audit-outputs.ts';
import { CliError } from './context.ts';
import { registerRpps } from './rpps.ts';
import { serve } from './serve.ts';

const program = new Command('passerelle')
  .description('Passerelle: OpenID Connect identity provider for health establishments')
  .option('-c, --config <file>', 'configuration file (YAML or JSON); also PASSERELLE_CONFIG')
  .showHelpAfterError();

program
  .command('serve')
  .description('run the identity provider')
  .option('--demo', 'demo mode: demo account, demo client, public demo secrets')
  .option('--host <address>', 'address to listen on (http.host; default 0.0.0.0, or 127.0.0.1 in demo mode)')
  .action(async (opts, command: Command) => {
    await serve({ ...command.optsWithGlobals(), demo: opts.demo, host: opts.host });
  });
registerMigrate(program);
registerKeys(program);
registerClients(program);
registerUsers(program);
registerWebauthn(program);
registerRpps(program);
registerAudit(program);
// The export and the purge verify the chain with the audit trail's own keys (the first and those it endorsed).
registerAuditOutputs(program, {
  verifyChain: (services) => installationExportMaterial.verifyChain(services.database.db),
  publicKey: (services) => installationExportMaterial.publicKey(services.database.db, services.sealer),
  auditKeys: (services) => installationExportMaterial.auditKeys(services.database.db),
});

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CliError) {
    process.stderr.write(`${err.message}\n`);
    process.exit(err.exitCode);
  }
  if (err instanceof DatabaseStartError) {
    process.stderr.write(`passerelle: ${err.message}\n`);
    process.exit(err.exitCode);
  }
  process.stderr.write(`passerelle: ${(err as Error).message}\n`);
  process.exit(1);
}
