import { X509Certificate } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { BlockList, isIPv4 } from 'node:net';
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';
import type { PresentedCertificate } from '../methods/types.ts';

/** What the functions below need from a koa context (the host's or the protocol engine's). */
export interface RequestLike {
  req: IncomingMessage;
  get(field: string): string;
}

export interface ForwardedCertificateOptions {
  /** Header carrying the URL-encoded PEM (nginx `$ssl_client_escaped_cert`); undefined = none accepted. */
  header: string | undefined;
  /** Header carrying the proxy's verification result; only `SUCCESS` is accepted. */
  verifyHeader: string;
  /** Whether the TCP peer (the socket's remote address) may forward a certificate. */
  trustedPeer: (address: string) => boolean;
}

/** A matcher for a list of addresses and CIDR blocks (IPv4-mapped IPv6 peers are matched as IPv4). */
export function addressMatcher(entries: readonly string[]): (address: string) => boolean {
  const list = new BlockList();
  for (const entry of entries) {
    const [address = '', prefix] = entry.split('/');
    const family = isIPv4(address) ? 'ipv4' : 'ipv6';
    if (prefix === undefined) list.addAddress(address, family);
    else list.addSubnet(address, Number(prefix), family);
  }
  return (address) => {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
    const plain = mapped ?? address;
    try {
      return list.check(plain, isIPv4(plain) ? 'ipv4' : 'ipv6');
    } catch {
      return false;
    }
  };
}

/**
 * The client certificate (PEM) a trusted reverse proxy forwarded, when the TCP peer is one of the
 * trusted proxies and the proxy reports a successful verification. Never on this process's own TLS
 * sockets: there the certificate comes from the handshake.
 */
export function forwardedCertificatePem(
  ctx: RequestLike,
  options: ForwardedCertificateOptions,
): string | undefined {
  if (!options.header || (ctx.req.socket as Partial<TLSSocket>).encrypted) return undefined;
  const peer = ctx.req.socket.remoteAddress;
  if (!peer || !options.trustedPeer(peer)) return undefined;
  if (ctx.get(options.verifyHeader) !== 'SUCCESS') return undefined;
  const value = ctx.get(options.header);
  if (!value) return undefined;
  try {
    return decodeURIComponent(value);
  } catch {
    return undefined; // malformed encoding: no usable certificate
  }
}

/** DER of the peer's certificate chain on this process's TLS socket (leaf first), if it sent one. */
function tlsPeerChain(socket: TLSSocket): Buffer[] | undefined {
  let cert = socket.getPeerCertificate(true) as DetailedPeerCertificate | undefined;
  const chain: Buffer[] = [];
  const seen = new Set<string>();
  while (cert?.raw && !seen.has(cert.fingerprint256)) {
    seen.add(cert.fingerprint256);
    chain.push(cert.raw);
    cert = cert.issuerCertificate;
  }
  return chain.length ? chain : undefined;
}

/**
 * The client certificate presented for this request: from this process's own TLS listener (source
 * `tls`), else from the header of a trusted proxy (source `proxy`), else undefined.
 */
export function presentedCertificate(
  ctx: RequestLike,
  options: ForwardedCertificateOptions,
): PresentedCertificate | undefined {
  const socket = ctx.req.socket as TLSSocket;
  if (socket.encrypted) {
    const chain = tlsPeerChain(socket);
    return chain ? { chain, source: 'tls' } : undefined;
  }
  const pem = forwardedCertificatePem(ctx, options);
  if (!pem) return undefined;
  try {
    return { chain: [new X509Certificate(pem).raw], source: 'proxy' };
  } catch {
    return undefined; // not a certificate: treated as no certificate
  }
}
