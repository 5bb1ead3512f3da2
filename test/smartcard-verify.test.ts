import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load.ts';
import { certificateFacts } from '../src/methods/smartcard/asn1.ts';
import { cardIdentity, DEFAULT_IDNAT_PATTERN, upnIdentifier } from '../src/methods/smartcard/identity.ts';
import { createSmartcard, type SmartcardRuntime } from '../src/methods/smartcard/setup.ts';
import type { VerificationResult } from '../src/methods/smartcard/verify.ts';
import { type Card, createIgcSantePki, crlOf, IDNAT, type IgcSantePki } from './helpers/igc-sante-pki.ts';

const silent = pino({ level: 'silent' });
let pki: IgcSantePki;

beforeAll(async () => {
  pki = await createIgcSantePki();
});
afterAll(() => pki?.remove());

/** A smartcard section over the test PKI (both families, both CRLs) with `overrides` merged. */
function section(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    trustAnchors: [pki.files.rootFort, pki.files.rootStandard],
    intermediates: [pki.files.intermediates],
    crl: { files: [pki.files.crlFort, pki.files.crlStandard] },
    trustedProxies: ['127.0.0.1'],
    ...overrides,
  };
}

async function runtime(overrides: Record<string, unknown> = {}, now?: () => Date): Promise<SmartcardRuntime> {
  const { config } = loadConfig({
    env: {},
    overrides: { demo: true, http: { clientCertHeader: 'x-ssl-client-cert' }, smartcard: section(overrides) },
  });
  if (!config.smartcard) throw new Error('no smartcard section');
  return createSmartcard(config.smartcard, silent, now);
}

function reason(result: VerificationResult): string {
  return result.ok ? 'accepted' : result.reason;
}

describe('CPS card verification (IGC-Santé test PKI)', () => {
  let card: SmartcardRuntime;
  beforeAll(async () => {
    card = await runtime();
  });
  const verify = (c: Card, ...chain: Buffer[]) => card.verifier.verify([c.der, ...chain]);

  it('accepts the authentication certificate of a CPS card and reads its idNat from the last RDN', () => {
    const result = verify(pki.cards.cps);
    if (!result.ok) throw new Error(`refused: ${result.reason} ${result.detail}`);
    expect(result.identity).toEqual({
      idNat: IDNAT.cps,
      rpps: IDNAT.cps.slice(1),
      family: 'CPS',
      givenName: 'CECILE',
      surname: 'SAGECH0007506',
      title: 'Sage-Femme',
      upn: `${IDNAT.cps}@carte-cps.fr`,
      issuerCommonName: 'TEST AC IGC-SANTE FORT PERSONNES',
    });
    expect(result.fingerprint).toBe(pki.cards.cps.fingerprint);
    expect(result.serial).toBe(pki.cards.cps.serial);
    expect(result.issuer).toContain('CN=TEST AC IGC-SANTE FORT PERSONNES');
    expect(result.chain.map((c) => c.subject.split('\n').at(-1))).toEqual([
      `GN=CECILE + CN=${IDNAT.cps} + SN=SAGECH0007506`,
      'CN=TEST AC IGC-SANTE FORT PERSONNES',
      'CN=TEST AC RACINE IGC-SANTE FORT',
    ]);
    expect(result.revocationUnchecked).toEqual([]);
  });

  it('accepts a UPN written with a dot after the type digit, in upper case', () => {
    const result = verify(pki.cards.cpsDottedUpn);
    expect(result.ok && result.identity.idNat).toBe(IDNAT.cpsDotted);
    expect(result.ok && result.identity.upn).toBe('8.99700434378@CARTE-CPS.FR');
  });

  it('accepts a CPE card (STANDARD PERSONNES) with its structure-based identifier', () => {
    const result = verify(pki.cards.cpe);
    if (!result.ok) throw new Error(`refused: ${result.reason}`);
    expect(result.identity).toMatchObject({
      idNat: IDNAT.cpe,
      rpps: undefined,
      family: 'CPE',
      givenName: 'CHARLES',
    });
  });

  it('refuses each bad certificate with its reason code', () => {
    expect(reason(verify(pki.cards.signature))).toBe('wrong_key_usage');
    expect(reason(verify(pki.cards.wrongEku))).toBe('wrong_key_usage');
    expect(reason(verify(pki.cards.expired))).toBe('expired');
    expect(reason(verify(pki.cards.notYetValid))).toBe('not_yet_valid');
    expect(reason(verify(pki.cards.revoked))).toBe('revoked');
    expect(reason(verify(pki.cards.foreign))).toBe('untrusted_issuer');
    expect(reason(verify(pki.cards.noIdentifier))).toBe('no_identifier');
    expect(reason(verify(pki.cards.upnMismatch))).toBe('identifier_mismatch');
    expect(reason(card.verifier.verify([Buffer.from('not a certificate')]))).toBe('malformed');
    expect(reason(card.verifier.verify([]))).toBe('malformed');
  });

  it('refuses a CA certificate presented as a card, and a foreign card that sends a trusted CA along', () => {
    expect(reason(card.verifier.verify([Buffer.from(pki.fort.cert.rawData)]))).toBe('wrong_key_usage');
    expect(reason(verify(pki.cards.foreign, Buffer.from(pki.fort.cert.rawData)))).toBe('untrusted_issuer');
  });

  it('the intermediate may come from the peer instead of the configuration', async () => {
    const rootsOnly = await runtime({
      intermediates: [],
      crl: { files: [pki.files.crlFort] },
    });
    expect(reason(rootsOnly.verifier.verify([pki.cards.cps.der]))).toBe('untrusted_issuer');
    // The CRL of FORT PERSONNES could not be verified without its certificate: nothing to check against.
    expect(rootsOnly.crls.lastErrors.join()).toMatch(/not signed by a configured CA/);
  });

  it('acceptedIssuers keeps CPE cards out when only FORT PERSONNES is accepted', async () => {
    const cpsOnly = await runtime({ acceptedIssuers: ['FORT PERSONNES'] });
    expect(reason(cpsOnly.verifier.verify([pki.cards.cps.der]))).toBe('accepted');
    expect(reason(cpsOnly.verifier.verify([pki.cards.cpe.der]))).toBe('issuer_not_accepted');
    const both = await runtime({
      acceptedIssuers: ['TEST AC IGC-SANTE FORT PERSONNES', 'STANDARD PERSONNES'],
    });
    expect(reason(both.verifier.verify([pki.cards.cpe.der]))).toBe('accepted');
    // Only the CRLs of the accepted issuers are required.
    expect(cpsOnly.crls.status().map((s) => s.ca)).toEqual([expect.stringContaining('FORT PERSONNES')]);
  });

  it('the identifier pattern is configurable', async () => {
    const rppsOnly = await runtime({ identifier: { pattern: '^8\\d{11}$' } });
    expect(reason(rppsOnly.verifier.verify([pki.cards.cps.der]))).toBe('accepted');
    expect(reason(rppsOnly.verifier.verify([pki.cards.cpe.der]))).toBe('no_identifier');
  });
});

describe('revocation lists', () => {
  it('a missing CRL refuses the card (crl_unavailable) and makes /readyz fail', async () => {
    const card = await runtime({ crl: { files: [pki.files.crlStandard] } });
    expect(reason(card.verifier.verify([pki.cards.cps.der]))).toBe('crl_unavailable');
    expect(reason(card.verifier.verify([pki.cards.cpe.der]))).toBe('accepted');
    const check = await card.readiness.run();
    expect(check.ok).toBe(false);
    expect(check.detail).toMatch(/FORT PERSONNES: missing/);
    expect(card.summary()).toMatch(/FORT PERSONNES: missing/);
  });

  it('a CRL past its nextUpdate refuses the card (crl_stale)', async () => {
    const now = Date.now();
    const stale = await pki.writeCrl(pki.fort, 'stale-fort.crl', {
      thisUpdate: new Date(now - 8 * 86_400_000),
      nextUpdate: new Date(now - 86_400_000),
    });
    const card = await runtime({ crl: { files: [stale, pki.files.crlStandard] } });
    expect(reason(card.verifier.verify([pki.cards.cps.der]))).toBe('crl_stale');
    expect((await card.readiness.run()).detail).toMatch(/FORT PERSONNES: stale/);
    // The same CRL becomes stale with time: a fresh one, seen from after its nextUpdate.
    const later = await runtime({}, () => new Date(now + 8 * 86_400_000));
    expect(reason(later.verifier.verify([pki.cards.cps.der]))).toBe('crl_stale');
  });

  it('a CRL without nextUpdate is stale', async () => {
    const noNext = await pki.writeCrl(pki.fort, 'no-next-fort.crl', { nextUpdate: null });
    const card = await runtime({ crl: { files: [noNext] } });
    expect(reason(card.verifier.verify([pki.cards.cps.der]))).toBe('crl_stale');
  });

  it('whenUnavailable: allow lets the card in without revocation checking, and says so', async () => {
    const card = await runtime({ crl: { files: [], whenUnavailable: 'allow' } });
    const result = card.verifier.verify([pki.cards.revoked.der]);
    expect(result.ok).toBe(true);
    expect(result.ok && result.revocationUnchecked).toEqual([
      expect.stringMatching(/FORT PERSONNES: CRL missing/),
    ]);
    const check = await card.readiness.run();
    expect(check).toEqual({ ok: true, detail: expect.stringMatching(/missing/) });
  });

  it('a CRL with the right issuer name but another key is not loaded', async () => {
    const forged = await crlOf({ ...pki.fort, keys: pki.foreignRoot.keys }, { revoked: [] });
    const path = join(pki.dir, 'forged-fort.crl');
    (await import('node:fs')).writeFileSync(path, forged);
    const card = await runtime({ crl: { files: [path] } });
    expect(card.crls.lastErrors).toEqual([`${path}: not signed by a configured CA`]);
    expect(reason(card.verifier.verify([pki.cards.cps.der]))).toBe('crl_unavailable');
  });

  it('an intermediate revoked by its root (ARL) revokes its cards', async () => {
    const arl = await pki.writeCrl(pki.rootFort, 'arl-revoking-fort.crl', {
      revoked: [{ cert: pki.fort.cert } as Card],
    });
    const card = await runtime({ crl: { files: [pki.files.crlFort, arl] } });
    const result = card.verifier.verify([pki.cards.cps.der]);
    expect(result.ok ? 'accepted' : `${result.reason} ${result.detail}`).toMatch(
      /^revoked .*FORT PERSONNES$/,
    );
  });

  it('refresh picks up a new CRL file, and a failing source keeps the last good CRL', async () => {
    const path = await pki.writeCrl(pki.fort, 'rotating-fort.crl');
    const card = await runtime({ crl: { files: [path] } });
    expect(reason(card.verifier.verify([pki.cards.cps.der]))).toBe('accepted');
    await pki.writeCrl(pki.fort, 'rotating-fort.crl', { revoked: [pki.cards.cps] });
    expect(await card.crls.refresh()).toEqual([]);
    expect(reason(card.verifier.verify([pki.cards.cps.der]))).toBe('revoked');
    (await import('node:fs')).writeFileSync(path, 'garbage');
    expect(await card.crls.refresh()).toEqual([`${path}: not a CRL`]);
    expect(reason(card.verifier.verify([pki.cards.cps.der]))).toBe('revoked');
  });

  describe('CRLs fetched over HTTP', () => {
    let server: Server;
    let base: string;
    let available = true;
    beforeAll(async () => {
      const der = Buffer.from(
        (await crlOf(pki.fort, { revoked: [pki.cards.revoked] }))
          .replace(/-----[A-Z0-9 ]+-----/g, '')
          .replace(/\s+/g, ''),
        'base64',
      );
      server = createServer((req, res) => {
        if (!available || req.url !== '/CRL/ACI-FO-PP-TEST.crl') {
          res.writeHead(available ? 404 : 503).end();
          return;
        }
        res.writeHead(200, { 'content-type': 'application/pkix-crl' }).end(der);
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    it('a DER CRL from a URL is verified and used; an outage keeps it until its nextUpdate', async () => {
      const card = await runtime({ crl: { urls: [`${base}/CRL/ACI-FO-PP-TEST.crl`] } });
      expect(card.crls.status()[0]).toMatchObject({
        state: 'fresh',
        source: `${base}/CRL/ACI-FO-PP-TEST.crl`,
      });
      expect(reason(card.verifier.verify([pki.cards.cps.der]))).toBe('accepted');
      expect(reason(card.verifier.verify([pki.cards.revoked.der]))).toBe('revoked');
      available = false;
      expect(await card.crls.refresh()).toEqual([`${base}/CRL/ACI-FO-PP-TEST.crl: HTTP 503`]);
      expect(reason(card.verifier.verify([pki.cards.cps.der]))).toBe('accepted');
      available = true;
    });
  });
});

describe('identity extraction', () => {
  it('UPN on carte-cps.fr, with or without the dot; other domains ignored', () => {
    expect(upnIdentifier('8.99700434378@carte-cps.fr')).toBe('899700434378');
    expect(upnIdentifier('899700434378@carte-cps.fr')).toBe('899700434378');
    expect(upnIdentifier('899700434378@Carte-CPS.fr')).toBe('899700434378');
    expect(upnIdentifier('899700434378@example.org')).toBeUndefined();
    expect(upnIdentifier('@carte-cps.fr')).toBeUndefined();
  });

  it('the default pattern takes RPPS, ADELI and staff identifiers, and nothing else', () => {
    const pattern = new RegExp(DEFAULT_IDNAT_PATTERN, 'u');
    for (const ok of ['899700075064', '0751234567', '30B0057881/CPET0002', '3000001234']) {
      expect(pattern.test(ok), ok).toBe(true);
    }
    for (const bad of [
      '89970007506',
      '8997000750640',
      'PAS-UN-IDNAT',
      '',
      '8 99700075064',
      '899700075064\n',
    ]) {
      expect(pattern.test(bad), bad).toBe(false);
    }
  });

  it('the CN of the multi-valued last RDN is read, not a CN elsewhere in the subject', () => {
    const facts = certificateFacts(pki.cards.cpe.der);
    const result = cardIdentity(facts, new RegExp(DEFAULT_IDNAT_PATTERN, 'u'));
    expect(result).toMatchObject({
      ok: true,
      identity: { idNat: IDNAT.cpe, title: 'Personnel santé ou social' },
    });
  });
});
