import type { Logger } from 'pino';
import type { Config } from '../../config/schema.ts';
import type { ReadinessCheck } from '../../http/health.ts';
import { CrlStore } from './crl.ts';
import { CardVerifier, crlReadinessCheck, readCertificates } from './verify.ts';

export type SmartcardConfig = NonNullable<Config['smartcard']>;

/** The card verification of one instance: trust material, CRLs refreshed in the background, readiness. */
export interface SmartcardRuntime {
  verifier: CardVerifier;
  crls: CrlStore;
  readiness: ReadinessCheck;
  /** One line describing the trust material and CRL freshness (logged at start). */
  summary(): string;
  start(): void;
  stop(): void;
}

export async function createSmartcard(
  config: SmartcardConfig,
  logger: Logger,
  now?: () => Date,
): Promise<SmartcardRuntime> {
  const anchors = readCertificates(config.trustAnchors);
  const intermediates = readCertificates(config.intermediates);
  const crls = new CrlStore({
    cas: [...anchors, ...intermediates],
    required: CardVerifier.issuingCas(anchors, intermediates, config.acceptedIssuers),
    files: config.crl.files,
    urls: config.crl.urls,
    fetchTimeoutMs: config.crl.fetchTimeoutSeconds * 1000,
    logger,
    now,
  });
  await crls.refresh();
  const verifier = new CardVerifier({
    anchors,
    intermediates,
    acceptedIssuers: config.acceptedIssuers,
    crls,
    whenUnavailable: config.crl.whenUnavailable,
    identifierPattern: new RegExp(config.identifier.pattern, 'u'),
    now,
  });
  let timer: NodeJS.Timeout | undefined;
  const summary = () => {
    const states = crls
      .status()
      .map((s) => `${s.ca}: ${s.state}${s.nextUpdate ? ` (next update ${s.nextUpdate})` : ''}`);
    return (
      `smartcard: ${anchors.length} trust anchor(s), ${intermediates.length} intermediate(s); CRL ` +
      `${states.join('; ') || 'none required'}; when a CRL is missing or stale: ${config.crl.whenUnavailable}`
    );
  };
  return {
    verifier,
    crls,
    readiness: crlReadinessCheck(crls, config.crl.whenUnavailable),
    summary,
    start() {
      const all = crls.status();
      const level = all.every((s) => s.state === 'fresh') ? 'info' : 'warn';
      logger[level]({ crl: all }, summary());
      timer = setInterval(() => {
        crls.refresh().catch((err: unknown) => logger.error({ err }, 'smartcard: CRL refresh failed'));
      }, config.crl.refreshIntervalSeconds * 1000);
      timer.unref();
    },
    stop() {
      clearInterval(timer);
    },
  };
}
