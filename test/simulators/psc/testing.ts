import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { text } from 'node:stream/consumers';
import * as oidc from 'openid-client';
import { expect } from 'vitest';
import { BrowserAgent, formAction, formField } from '../../helpers/browser-agent.ts';
import { authorizationRequest, type PendingAuthorization } from '../../helpers/clients.ts';
import type { ScriptedFi, ScriptedUser } from './scripted-fi.ts';
import type { PscSimulator } from './server.ts';

/**
 * For tests that drive the simulator as a service and a browser would: the service's configuration and
 * authorization request, its back-channel logout endpoint, and the delegated login through a scripted FI.
 */

/** The external service of the tests (a DRIMBOX stand-in). */
export const SERVICE = {
  clientId: 'drimbox',
  clientSecret: 'drimbox-secret',
  redirectUris: ['https://drimbox.test/cb'],
};

/** openid-client configuration of a service against the simulator. */
export function serviceConfiguration(
  psc: PscSimulator,
  service: { clientId: string; clientSecret: string; redirectUris: string[] } = SERVICE,
): Promise<oidc.Configuration> {
  return oidc.discovery(
    new URL(psc.issuer),
    service.clientId,
    { redirect_uris: service.redirectUris },
    oidc.ClientSecretBasic(service.clientSecret),
    { execute: [oidc.allowInsecureRequests] },
  );
}

/** A service's authorization request to PSC: PKCE, state, nonce, `scope_all`, `acr_values=eidas1`. */
export function serviceLogin(
  config: oidc.Configuration,
  extra: Record<string, string> = {},
): Promise<PendingAuthorization> {
  const redirectUri = (config.clientMetadata().redirect_uris as string[])[0] as string;
  return authorizationRequest(config, redirectUri, {
    scope: 'openid scope_all',
    acr_values: 'eidas1',
    prompt: '',
    ...extra,
  });
}

/** Records the logout tokens a service receives on its back-channel logout endpoint, answering `status`. */
export async function startLogoutReceiver(status = 200) {
  const tokens: string[] = [];
  let arrived: (token: string) => void = () => {};
  const server = createServer(async (req, res) => {
    const token = new URLSearchParams(await text(req)).get('logout_token') ?? '';
    tokens.push(token);
    arrived(token);
    res.writeHead(status).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    uri: `http://127.0.0.1:${(server.address() as AddressInfo).port}/backchannel-logout`,
    tokens,
    /** The next logout token to arrive. */
    next: () => new Promise<string>((resolve) => (arrived = resolve)),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export const ALIAS = 'chu-rennes';
export const TENANT = 'tenant-chu-rennes';
export const FI_CLIENT = { clientId: 'psc', clientSecret: 'psc-secret' };
/** A FIDO2 key with user verification, plus a custom value PSC ignores. */
export const STRONG_USER: ScriptedUser = {
  sub: 'local-42',
  tid: TENANT,
  oid: 'oid-42',
  amr: ['hwk', 'mfa', 'x-editor'],
};

export interface DelegatedStep {
  agent: BrowserAgent;
  login: PendingAuthorization;
  /** The PSC page shown after the FI's answer (pairing, confirmation or refusal). */
  page: { response?: Response; url: URL };
}

/** A new browser goes from the service to PSC with kc_idp_hint, through the FI and back to PSC. */
export async function throughFi(
  psc: PscSimulator,
  config: oidc.Configuration,
  fi: ScriptedFi,
  alias = ALIAS,
): Promise<DelegatedStep> {
  const origin = new URL(psc.issuer).origin;
  const agent = new BrowserAgent();
  const login = await serviceLogin(config, { kc_idp_hint: alias });
  const toFi = await agent.follow(login.url, origin);
  expect(toFi.url.origin).toBe(fi.issuer);
  const back = await agent.follow(toFi.url, fi.issuer);
  expect(back.url.href.startsWith(psc.brokerRedirectUri(alias))).toBe(true);
  return { agent, login, page: await agent.follow(back.url, origin) };
}

/** Posts a PSC form (pairing, confirmation, abort) and returns where the browser lands at the service. */
export async function submit(
  psc: PscSimulator,
  step: DelegatedStep,
  action: string,
  fields: Record<string, string> = {},
) {
  const origin = new URL(psc.issuer).origin;
  const posted = await step.agent.postForm(new URL(formAction(step.agent.lastHtml, action), origin), fields);
  const location = posted.headers.get('location');
  if (!location) throw new Error(`form ${action} rejected (${posted.status}): ${await posted.text()}`);
  return step.agent.follow(new URL(location, origin), origin);
}

/** A service's RP-initiated logout at PSC, confirmed by the user if PSC asks: where PSC sends the browser. */
export async function logoutAtPsc(
  psc: PscSimulator,
  service: oidc.Configuration,
  agent: BrowserAgent,
  idToken: string | undefined,
  postLogoutRedirectUri: string,
): Promise<URL> {
  const origin = new URL(psc.issuer).origin;
  const url = oidc.buildEndSessionUrl(service, {
    id_token_hint: idToken ?? '',
    post_logout_redirect_uri: postLogoutRedirectUri,
    state: 'after-logout',
  });
  const step = await agent.follow(url, origin);
  if (!step.response) return step.url;
  const confirmed = await agent.postForm(new URL(formAction(agent.lastHtml, '/logout/confirm'), origin), {
    xsrf: formField(agent.lastHtml, 'xsrf') ?? '',
    logout: 'yes',
  });
  expect(confirmed.status).toBe(303);
  return new URL(confirmed.headers.get('location') ?? '');
}
