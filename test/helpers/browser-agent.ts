/**
 * A minimal browser for protocol tests: a cookie jar and manual redirects over real HTTP, with helpers
 * that fill Passerelle's login and consent forms the way a person would.
 */
export class BrowserAgent {
  readonly #cookies = new Map<string, string>();
  lastHtml = '';

  /** Drops cookies by name (e.g. one server's session, the other servers' kept). */
  forgetCookies(names: readonly string[]): void {
    for (const name of names) this.#cookies.delete(name);
  }

  cookieHeader(): string {
    return [...this.#cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  #store(response: Response): void {
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair?.indexOf('=') ?? -1;
      if (!pair || eq < 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      if (value === '' || /expires=Thu, 01 Jan 1970/i.test(line)) this.#cookies.delete(name);
      else this.#cookies.set(name, value);
    }
  }

  async request(url: string | URL, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.#cookies.size) headers.set('cookie', this.cookieHeader());
    const response = await fetch(url, { ...init, headers, redirect: 'manual' });
    this.#store(response);
    return response;
  }

  async postForm(
    url: string | URL,
    fields: Record<string, string>,
    headers: Record<string, string> = {},
  ): Promise<Response> {
    return this.request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: new URLSearchParams(fields).toString(),
    });
  }

  /** Follows redirects until one leaves `origin` (returned, not fetched) or a page is rendered. */
  async follow(start: string | URL, origin: string): Promise<{ response?: Response; url: URL }> {
    let url = new URL(start);
    for (let hops = 0; hops < 20; hops++) {
      if (url.origin !== origin) return { url };
      const response = await this.request(url);
      const location = response.headers.get('location');
      if (response.status >= 300 && response.status < 400 && location) {
        url = new URL(location, url);
        continue;
      }
      this.lastHtml = await response.text();
      return { response, url };
    }
    throw new Error('too many redirects');
  }
}

export function formField(html: string, name: string): string | undefined {
  const match = new RegExp(`name="${name}"[^>]*value="([^"]*)"`).exec(html);
  return match?.[1];
}

export function formAction(html: string, contains: string): string {
  const match = new RegExp(`action="([^"]*${contains}[^"]*)"`).exec(html);
  if (!match?.[1]) throw new Error(`no form posting to *${contains}* in page:\n${html.slice(0, 2000)}`);
  return match[1];
}

/** Follows `location` and, if Passerelle shows the consent page, allows it; returns where that led. */
export async function followThroughConsent(
  agent: BrowserAgent,
  location: string,
  issuer: string,
): Promise<{ response?: Response; url: URL }> {
  const step = await agent.follow(new URL(location, issuer), issuer);
  if (!step.response || !agent.lastHtml.includes('/consent"')) return step;
  const next = await agent.postForm(new URL(formAction(agent.lastHtml, '/consent'), issuer), {
    csrf: formField(agent.lastHtml, 'csrf') ?? '',
  });
  return agent.follow(new URL(next.headers.get('location') ?? '', issuer), issuer);
}

/** A form of Passerelle's login pages. */
export type LoginForm = 'identify' | 'password' | 'consent' | 'end-previous-session';

export interface LoginResult {
  /** The URL Passerelle redirected the browser to (the client's redirect_uri with code, state, iss). */
  callback: URL;
  /** The forms shown and filled on the way, in order (empty when the session alone sufficed). */
  forms: LoginForm[];
}

/**
 * Drives a login from an authorization URL: identify → password → consent if shown.
 * Returns the callback URL at the relying party and the forms that were shown, so that a test can
 * assert which steps Passerelle asked for (it fills whatever appears).
 */
export async function browserLogin(
  agent: BrowserAgent,
  authorizationUrl: URL,
  issuer: string,
  credentials: { username: string; password: string },
): Promise<LoginResult> {
  let step = await agent.follow(authorizationUrl, issuer);
  const forms: LoginForm[] = [];
  for (let i = 0; i < 5; i++) {
    if (!step.response) return { callback: step.url, forms };
    const html = agent.lastHtml;
    const csrf = formField(html, 'csrf') ?? '';
    let next: Response;
    if (html.includes('/identify"')) {
      forms.push('identify');
      next = await agent.postForm(new URL(formAction(html, '/identify'), issuer), {
        csrf,
        username: credentials.username,
      });
    } else if (html.includes('/method/password"')) {
      forms.push('password');
      next = await agent.postForm(new URL(formAction(html, '/method/password'), issuer), {
        csrf,
        username: credentials.username,
        password: credentials.password,
      });
    } else if (html.includes('/consent"')) {
      forms.push('consent');
      next = await agent.postForm(new URL(formAction(html, '/consent'), issuer), { csrf });
    } else if (html.includes('/session/end/confirm"') && !html.includes('op.logoutForm')) {
      // Another account signed in: the engine ends the previous session by a self-submitting form.
      forms.push('end-previous-session');
      next = await agent.postForm(new URL(formAction(html, '/session/end/confirm'), issuer), {
        xsrf: formField(html, 'xsrf') ?? '',
        logout: 'yes',
      });
    } else {
      throw new Error(`unexpected page (status ${step.response.status}):\n${html.slice(0, 3000)}`);
    }
    const location = next.headers.get('location');
    if (!location) {
      agent.lastHtml = await next.text();
      throw new Error(`form rejected (status ${next.status}):\n${agent.lastHtml.slice(0, 3000)}`);
    }
    step = await agent.follow(new URL(location, issuer), issuer);
  }
  throw new Error('login did not finish');
}
