import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { type BrowserAgent, followThroughConsent, formAction, formField } from './browser-agent.ts';

export interface CardResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

export interface CardRequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  /** Client certificate and key (PEM) presented in the TLS handshake, as the card middleware would. */
  cert?: string;
  key?: string;
  /** CA of the server certificate. */
  ca?: string;
  /** Source address of the TCP connection (any 127.x.y.z is loopback). */
  localAddress?: string;
}

/** One HTTP(S) request with an optional client certificate and source address; no connection reuse. */
export function cardRequest(url: string | URL, options: CardRequestOptions = {}): Promise<CardResponse> {
  const target = new URL(url);
  const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      target,
      {
        method: options.method ?? 'GET',
        headers: {
          ...(options.body ? { 'content-length': String(Buffer.byteLength(options.body)) } : {}),
          ...options.headers,
        },
        cert: options.cert,
        key: options.key,
        ca: options.ca,
        localAddress: options.localAddress,
        agent: false,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/**
 * Posts the card form of a login page (to its action, with its CSRF token) presenting a card in the TLS
 * handshake, as a browser with the card middleware would, from a page of `issuer`.
 */
export function submitCardForm(
  html: string,
  issuer: string,
  card: { pem: string; keyPem: string },
  ca: string,
): Promise<CardResponse> {
  return cardRequest(formAction(html, '/method/smartcard'), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', origin: issuer },
    body: new URLSearchParams({ csrf: formField(html, 'csrf') ?? '' }).toString(),
    cert: card.pem,
    key: card.keyPem,
    ca,
  });
}

/**
 * Presents `card` on the card page the agent shows (the form may post to the card listener), then follows
 * back to the issuer, through consent if asked; where the browser ends.
 */
export async function presentCard(
  agent: BrowserAgent,
  issuer: string,
  card: { pem: string; keyPem: string },
  ca: string,
): Promise<{ response?: Response; url: URL }> {
  const posted = await submitCardForm(agent.lastHtml, issuer, card, ca);
  if (posted.status !== 303) throw new Error(`card form refused (${posted.status}): ${posted.text}`);
  return followThroughConsent(agent, String(posted.headers.location), issuer);
}
