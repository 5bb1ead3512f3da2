import { type DestinationStream, type Logger, pino } from 'pino';

/** Paths never written to logs, whatever a caller passes. */
const REDACT = [
  'password',
  '*.password',
  'secret',
  '*.secret',
  'client_secret',
  '*.client_secret',
  'bindPassword',
  '*.bindPassword',
  'encryptionKey',
  '*.encryptionKey',
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'headers.cookie',
  'code',
  'code_verifier',
  'refresh_token',
  'access_token',
  'id_token',
];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'passerelle' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT, censor: '[redacted]' },
    },
    destination,
  );
}
