import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load.ts';
import { embeddedCli, forCommands, REPO_ROOT } from './helpers/cli.ts';
import { createIgcSantePki, type IgcSantePki } from './helpers/igc-sante-pki.ts';

let pki: IgcSantePki;
beforeAll(async () => {
  pki = await createIgcSantePki();
});
afterAll(() => pki?.remove());

describe('smartcard section of deploy/passerelle.example.yaml', () => {
  it('is a valid configuration (mode b, both card families, CRL files and URLs)', () => {
    const { config } = loadConfig({
      env: {
        PASSERELLE_KEYS__ENCRYPTION_KEY: randomBytes(32).toString('base64'),
        PASSERELLE_PSC_LOGIN__CLIENT_SECRET: 'sample',
      },
      file: join(REPO_ROOT, 'deploy/passerelle.example.yaml'),
    });
    expect(config.smartcard?.acceptedIssuers).toEqual(['FORT PERSONNES', 'STANDARD PERSONNES']);
    expect(config.smartcard?.trustedProxies).toEqual(['127.0.0.1']);
    expect(config.smartcard?.listener).toBeUndefined();
    expect(config.smartcard?.crl.whenUnavailable).toBe('refuse');
    expect(new RegExp(config.smartcard?.identifier.pattern ?? '', 'u').test('899700075064')).toBe(true);
  });
});

describe('passerelle users add-card / cards / remove-card (PGlite)', forCommands(7), () => {
  const { cli, remove } = embeddedCli('passerelle-cli-card-');
  afterAll(remove);

  it('registers a card certificate, lists it, refuses it for another account, removes it', async () => {
    const cardFile = join(pki.dir, 'cps.pem');
    writeFileSync(cardFile, pki.cards.cps.pem);
    for (const user of ['cecile', 'other']) {
      const added = await cli(['users', 'add', user, '--password-stdin'], 'a long enough password 123\n');
      expect(added.code, added.stderr).toBe(0);
    }
    const add = await cli(['users', 'add-card', 'cecile', cardFile]);
    expect(add.code, add.stderr).toBe(0);
    expect(add.stdout).toBe(`card registered for cecile: ${pki.cards.cps.fingerprint}\n`);
    const again = await cli(['users', 'add-card', 'cecile', cardFile]);
    expect(again.stdout).toBe(`card already registered for cecile: ${pki.cards.cps.fingerprint}\n`);
    const taken = await cli(['users', 'add-card', 'other', cardFile]);
    expect(taken.code).not.toBe(0);
    expect(taken.stderr).toContain('already registered for another account');

    const listed = await cli(['users', 'cards', 'cecile']);
    const [fingerprint, notAfter, subject] = listed.stdout.trimEnd().split('\t');
    expect(fingerprint).toBe(pki.cards.cps.fingerprint);
    expect(new Date(notAfter ?? '').getTime()).toBeGreaterThan(Date.now());
    expect(subject).toContain('CN=899700075064');

    const removed = await cli(['users', 'remove-card', 'cecile', pki.cards.cps.fingerprint]);
    expect(removed.code, removed.stderr).toBe(0);
    expect((await cli(['users', 'cards', 'cecile'])).stdout).toBe('');
  });

  it('refuses a signature certificate and a CA certificate', async () => {
    const signature = join(pki.dir, 'signature.pem');
    writeFileSync(signature, pki.cards.signature.pem);
    const refused = await cli(['users', 'add-card', 'cecile', signature]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('not an authentication certificate');
    const ca = await cli(['users', 'add-card', 'cecile', pki.files.fort]);
    expect(ca.stderr).toContain('a CA certificate');
  });
});
