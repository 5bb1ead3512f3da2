/**
 * Which redirect URIs (and post-logout redirect URIs) a client may register, after RFC 8252 (OAuth 2.0
 * for Native Apps) and RFC 9700 (OAuth 2.0 Security Best Current Practice §2.1, §4.1): exact URIs in
 * https; plain http only on a loopback address (RFC 8252 §7.3, §8.3: 127.0.0.1 and [::1], and localhost,
 * which it does not recommend); a private-use scheme named after a reverse domain name (RFC 8252 §7.1)
 * only for a native application; never a wildcard, a fragment (RFC 6749 §3.1.2) or credentials.
 * Used by the configuration file, the command line, the console and the registry's validation.
 */

export type ApplicationType = 'web' | 'native';
export const APPLICATION_TYPES = ['web', 'native'] as const;

export type RedirectUriProblem =
  | 'not_absolute'
  | 'wildcard'
  | 'fragment'
  | 'credentials'
  | 'http_not_loopback'
  | 'private_scheme_not_native'
  | 'private_scheme_not_reverse_dns'
  | 'native_https_loopback';

/** The loopback interface (the whole of 127.0.0.0/8, as for the issuer), [::1] and localhost. */
function isLoopbackHost(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

/** What is wrong with `uri` for this kind of application, or undefined when it may be registered. */
export function redirectUriProblem(
  uri: string,
  application: ApplicationType,
): RedirectUriProblem | undefined {
  // Before parsing: `*` is a valid character of a host name or a path for the URL parser.
  if (uri.includes('*')) return 'wildcard';
  const url = URL.parse(uri);
  if (!url) return 'not_absolute';
  if (uri.includes('#')) return 'fragment';
  if (url.username || url.password) return 'credentials';
  const loopback = isLoopbackHost(url.hostname);
  if (url.protocol === 'http:') return loopback ? undefined : 'http_not_loopback';
  if (url.protocol === 'https:') {
    // A native application listens on loopback over http; https there is nobody's certificate.
    return application === 'native' && loopback ? 'native_https_loopback' : undefined;
  }
  if (application !== 'native') return 'private_scheme_not_native';
  // Reverse domain name: at least one dot (fr.hopital.app:), which rules out javascript:, data:, file:.
  return url.protocol.slice(0, -1).includes('.') ? undefined : 'private_scheme_not_reverse_dns';
}

/** The rule broken, in English (command line, configuration file, logs). */
const EXPLANATIONS: Record<RedirectUriProblem, string> = {
  not_absolute: 'is not an absolute URI',
  wildcard: 'contains a wildcard (*): register each URI exactly',
  fragment: 'must not contain a fragment (#)',
  credentials: 'must not contain a user name or password',
  http_not_loopback: 'plain http only on a loopback address (127.0.0.1, [::1], localhost); use https',
  private_scheme_not_native:
    'a private-use scheme is allowed for a native application only (applicationType: native, --native)',
  private_scheme_not_reverse_dns:
    'a private-use scheme must be a reverse domain name with a dot, such as fr.hopital.app:/callback',
  native_https_loopback: 'a native application uses http, not https, on a loopback address',
};

export type RedirectUriKind = 'redirect' | 'post_logout';

/** `redirect URI <uri>: <rule>`, naming the URI. */
export function redirectUriMessage(uri: string, problem: RedirectUriProblem, kind: RedirectUriKind): string {
  return `${kind === 'redirect' ? 'redirect URI' : 'post-logout redirect URI'} ${uri}: ${EXPLANATIONS[problem]}`;
}

export interface RedirectUriIssue {
  kind: RedirectUriKind;
  /** Position in its list. */
  index: number;
  uri: string;
  problem: RedirectUriProblem;
}

/** Every problem of a client's redirect and post-logout redirect URIs. */
export function redirectUriIssues(
  application: ApplicationType,
  redirectUris: readonly string[],
  postLogoutRedirectUris: readonly string[] = [],
): RedirectUriIssue[] {
  const issues: RedirectUriIssue[] = [];
  for (const [kind, uris] of [
    ['redirect', redirectUris],
    ['post_logout', postLogoutRedirectUris],
  ] as const) {
    for (const [index, uri] of uris.entries()) {
      const problem = redirectUriProblem(uri, application);
      if (problem) issues.push({ kind, index, uri, problem });
    }
  }
  return issues;
}
