import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { AddressInUseError, portOpen, samePortAgain, startDaemon } from './net.ts';
import { makePki, type TestPki } from './slapd.ts';

const SAMBA = '/usr/sbin/samba';
const SAMBA_TOOL = '/usr/bin/samba-tool';

export const AD_REALM = 'PASSERELLE.TEST';
export const AD_BASE_DN = 'DC=passerelle,DC=test';
export const AD_ADMIN_DN = `CN=Administrator,CN=Users,${AD_BASE_DN}`;

/**
 * Samba AD DC listens on the fixed ports 389 and 636 (no option moves them): root is needed and only one
 * instance runs at a time on a machine (a second one waits). With CI=true, a missing samba fails the suite.
 */
export function sambaAvailable(): boolean {
  let problem: string | undefined;
  if (!existsSync(SAMBA) || !existsSync(SAMBA_TOOL))
    problem = `${SAMBA} not installed (Debian package samba)`;
  else if (process.getuid?.() !== 0) problem = 'Samba AD DC needs root (ports 389 and 636)';
  if (problem && process.env.CI === 'true') throw new Error(`CI=true but ${problem}`);
  if (problem) console.warn(`skipping Active Directory tests: ${problem}`);
  return !problem;
}

export interface SambaDc {
  ldapsUrl: string;
  ldapUrl: string;
  pki: TestPki;
  adminPassword: string;
  /** Seconds taken by `samba-tool domain provision` and by the start until LDAPS answered. */
  provisionSeconds: number;
  startSeconds: number;
  close(): Promise<void>;
}

export async function startSambaDc(): Promise<SambaDc> {
  const dir = mkdtempSync(join(tmpdir(), 'passerelle-samba-'));
  const pki = makePki(dir, 'dc');
  const adminPassword = 'Adm1n-Passw0rd!';
  const t0 = Date.now();
  await promisify(execFile)(
    SAMBA_TOOL,
    [
      'domain',
      'provision',
      `--realm=${AD_REALM}`,
      '--domain=PASSERELLE',
      '--server-role=dc',
      '--dns-backend=NONE',
      '--use-rfc2307',
      `--targetdir=${join(dir, 'dc')}`,
      `--adminpass=${adminPassword}`,
      '--option=interfaces=lo',
      '--option=bind interfaces only=yes',
    ],
    { timeout: 120_000 },
  );
  const provisionSeconds = (Date.now() - t0) / 1000;
  const confFile = join(dir, 'dc', 'etc', 'smb.conf');
  const conf = readFileSync(confFile, 'utf8')
    .replace(/server services = .*/, 'server services = ldap')
    .replace(/log file = .*/, `log file = ${join(dir, 'log.%m')}`)
    .replace(
      '[global]',
      `[global]\n\ttls enabled = yes\n\ttls keyfile = ${pki.keyFile}\n\ttls certfile = ${pki.certFile}\n\ttls cafile = ${pki.caFile}`,
    );
  writeFileSync(confFile, conf);
  const t1 = Date.now();
  // Its ports cannot move (and its `interfaces` must be the machine's own addresses): while another
  // domain controller holds them (another test run on this machine), wait for them.
  const dc = await samePortAgain(async () => {
    if ((await portOpen(389)) || (await portOpen(636)))
      throw new AddressInUseError('ports 389/636 are in use: another directory (or Samba) runs here');
    return startDaemon({
      name: 'samba',
      command: SAMBA,
      args: ['-i', '-s', confFile, '--debug-stdout', '-d', '1'],
      ports: [389, 636],
    });
  }, 600_000).catch((err: unknown) => {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  });
  return {
    ldapsUrl: 'ldaps://127.0.0.1',
    ldapUrl: 'ldap://127.0.0.1',
    pki,
    adminPassword,
    provisionSeconds,
    startSeconds: (Date.now() - t1) / 1000,
    async close() {
      await dc.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
