import { BrowserAgent, formAction, formField } from './browser-agent.ts';
import { TEST_PASSWORD } from './clients.ts';

/**
 * A person at the portal over plain HTTP (no JavaScript, as the portal's pages need none): a cookie jar
 * signed in with the password, its pages read as HTML.
 */
export class PortalAgent {
  readonly agent = new BrowserAgent();
  readonly issuer: string;

  constructor(issuer: string) {
    this.issuer = issuer;
  }

  get html(): string {
    return this.agent.lastHtml;
  }

  /** Opens `path`; when asked, signs in with identifier and password; returns the page reached. */
  async open(path: string, username?: string, password = TEST_PASSWORD): Promise<URL> {
    let step = await this.agent.follow(new URL(path, this.issuer), this.issuer);
    if (username && this.html.includes('/identify"')) {
      const identified = await this.agent.postForm(new URL(formAction(this.html, '/identify'), this.issuer), {
        csrf: formField(this.html, 'csrf') ?? '',
        username,
      });
      await this.agent.follow(new URL(identified.headers.get('location') ?? '', this.issuer), this.issuer);
      const signedIn = await this.agent.postForm(
        new URL(formAction(this.html, '/method/password'), this.issuer),
        { csrf: formField(this.html, 'csrf') ?? '', password },
      );
      step = await this.agent.follow(
        new URL(signedIn.headers.get('location') ?? '', this.issuer),
        this.issuer,
      );
    }
    return step.url;
  }

  /** Posts a form of the page last shown (its CSRF token), with `fields`; the response, not followed. */
  async post(path: string, fields: Record<string, string> = {}): Promise<Response> {
    const response = await this.agent.postForm(new URL(path, this.issuer), {
      csrf: formField(this.html, 'csrf') ?? '',
      ...fields,
    });
    if (response.status < 300 || response.status >= 400) this.agent.lastHtml = await response.text();
    return response;
  }

  /** The portal's "Se déconnecter": the engine's logout page, confirmed (RP-initiated logout). */
  async signOut(): Promise<void> {
    const url = new URL('/session/end', this.issuer);
    url.searchParams.set('client_id', 'passerelle-portal');
    url.searchParams.set('post_logout_redirect_uri', `${this.issuer}/portal`);
    await this.agent.follow(url, this.issuer);
    const done = await this.agent.postForm(
      new URL(formAction(this.html, '/session/end/confirm'), this.issuer),
      {
        xsrf: formField(this.html, 'xsrf') ?? '',
        logout: 'yes',
      },
    );
    if (done.status !== 303 && done.status !== 302) throw new Error(`logout refused (${done.status})`);
  }
}
