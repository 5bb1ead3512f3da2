import { execFileSync } from 'node:child_process';
import {
  chownSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from './cli.ts';
import { type Daemon, startDaemon, withPorts } from './net.ts';

/**
 * A LemonLDAP::NG 2.16 portal (Debian packages lemonldap-ng, lemonldap-ng-fastcgi-server) run for one test
 * file: its FastCGI server and its own nginx, on ports of their own, with a configuration directory,
 * session files and logs in a temporary directory (the Debian services are never used).
 *
 * How it is put together, from the package itself:
 * - /usr/sbin/llng-fastcgi-server serves the portal (LLTYPE psgi) and reads the lemonldap-ng.ini named by
 *   LLNG_DEFAULTCONFFILE (Lemonldap::NG::Common::Conf); that ini points to a File configuration backend,
 *   lmConf-1.json in the temporary directory. The server refuses to run as root: started by root it is
 *   given `--user www-data --group www-data` (its own options) and the directory belongs to www-data.
 * - nginx runs the package's /etc/lemonldap-ng/portal-nginx.conf with this machine's ports: the REST routes
 *   on anyone's session (`/sessions/…`) and on the configuration stay denied, as shipped; `/session/my/…`
 *   (the caller's own session, with restSessionServer) is not.
 * - The provider's options start from the Manager's defaults (managerProviderDefaults), as a provider
 *   added in the Manager would.
 */

const SERVER = '/usr/sbin/llng-fastcgi-server';
const NGINX = '/usr/sbin/nginx';
const PORTAL_SITE = '/etc/lemonldap-ng/portal-nginx.conf';
const OIDC_RP = '/usr/share/perl5/Lemonldap/NG/Portal/Auth/OpenIDConnect.pm';
/** The plugin Passerelle ships for LemonLDAP::NG (deploy/lemonldap-ng). */
const PLUGIN_DIR = join(REPO_ROOT, 'deploy/lemonldap-ng');

export const LEMONLDAP_MISSING = `LemonLDAP::NG not found (${SERVER}, ${OIDC_RP}, ${NGINX}): apt-get install -y lemonldap-ng lemonldap-ng-fastcgi-server libimage-magick-perl nginx`;

export function lemonLdapAvailable(): boolean {
  return [SERVER, NGINX, PORTAL_SITE, OIDC_RP].every((file) => existsSync(file));
}

export interface LemonLdapOptions {
  /** The configuration key of the OpenID Connect provider (technical name in the Manager). */
  opName: string;
  /** Options of the provider (oidcOPMetaDataOptions*), over the Manager's defaults. */
  opOptions: Record<string, unknown>;
  /** The provider's metadata, as pasted in the Manager's "Metadata" field (its discovery document). */
  opMetadata: string;
  /** Exported attributes (session key → UserInfo claim), added to the Manager's defaults. */
  exportedVars: Record<string, string>;
  /** Further keys of lmConf-1.json. */
  conf?: Record<string, unknown>;
}

export interface LemonLdap extends LemonLdapUrls {
  /** Everything the FastCGI server (LemonLDAP::NG's logger) and nginx wrote on stderr so far. */
  logs(): string;
  close(): Promise<void>;
}

/**
 * The defaults the Manager writes for a new OpenID Connect provider (Lemonldap::NG::Manager::Build::
 * Attributes): the portal itself applies none of them (e.g. without the Manager's `openid profile` it
 * sends an empty scope, and without CheckJWTSignature it does not verify the ID token's signature).
 */
export function managerProviderDefaults(): {
  options: Record<string, unknown>;
  exportedVars: Record<string, string>;
} {
  const script = [
    'use JSON; use Lemonldap::NG::Manager::Build::Attributes;',
    'my $a = Lemonldap::NG::Manager::Build::Attributes::attributes();',
    'print JSON->new->canonical->encode({ map { $_ => $a->{$_}{default} }',
    '  grep { /^oidcOPMetaData(Options|ExportedVars)/ && defined $a->{$_}{default} } keys %$a });',
  ].join('\n');
  const { oidcOPMetaDataExportedVars, ...options } = JSON.parse(
    execFileSync('perl', ['-e', script], { encoding: 'utf8' }),
  ) as Record<string, unknown> & { oidcOPMetaDataExportedVars: Record<string, string> };
  return { options, exportedVars: oidcOPMetaDataExportedVars };
}

/** uid and gid of a system user (from /etc/passwd). */
function systemUser(name: string): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}:`));
  if (!line) throw new Error(`no user ${name}`);
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

function chownTree(path: string, uid: number, gid: number): void {
  chownSync(path, uid, gid);
  if (statSync(path).isDirectory())
    for (const entry of readdirSync(path)) chownTree(join(path, entry), uid, gid);
}

/** The portal's URLs, known before it starts (to register it at the provider first). */
export interface LemonLdapUrls {
  /** http://localhost:<port>/ (the `portal` setting). */
  portal: string;
  /** The redirect URI to register at the provider (documented: portal + `?openidconnectcallback=1`). */
  redirectUri: string;
  /** Where LemonLDAP::NG asks the provider to send the browser back after logout (`portal?logout=1`). */
  logoutUri: string;
}

/** Starts a portal whose configuration `configure` gives once its URLs are known. */
export async function startLemonLdap(
  configure: (urls: LemonLdapUrls) => Promise<LemonLdapOptions> | LemonLdapOptions,
): Promise<LemonLdap> {
  const dir = mkdtempSync(join(tmpdir(), 'passerelle-lemonldap-'));
  for (const sub of ['conf', 'sessions/lock', 'psessions/lock', 'cache', 'notifications', 'nginx', 'perl']) {
    mkdirSync(join(dir, sub), { recursive: true });
  }
  const host = 'localhost';
  const asRoot = process.getuid?.() === 0;
  // The FastCGI server listens on a Unix socket of the instance, as the package's does: only nginx has a
  // port.
  const socket = join(dir, 'llng-fastcgi.sock');
  let fastcgi: Daemon | undefined;
  let nginx: Daemon | undefined;
  const logs = () => `${fastcgi?.output() ?? ''}${nginx?.output() ?? ''}`;
  const close = async () => {
    await Promise.all([nginx?.stop(), fastcgi?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    // nginx first: the portal's URL (its port) goes in the provider's registration (`configure`).
    nginx = await withPorts(1, ([port]) => startNginx(dir, port as number, host, socket, asRoot));
    const portal = `http://${host}:${nginx.ports[0]}/`;
    const urls = {
      portal,
      redirectUri: `${portal}?openidconnectcallback=1`,
      logoutUri: `${portal}?logout=1`,
    };
    const options = await configure(urls);
    writeInstance(dir, portal, host, options);
    if (asRoot) {
      const { uid, gid } = systemUser('www-data');
      chownTree(dir, uid, gid);
    }
    fastcgi = await startDaemon({
      name: 'llng-fastcgi-server',
      command: SERVER,
      args: [
        '--foreground',
        '--listen',
        socket,
        // One worker: the portal initialises once (about a second), and no step of a test needs two at once.
        '--proc',
        '1',
        '--pid',
        join(dir, 'llng-fastcgi.pid'),
        ...(asRoot ? ['--user', 'www-data', '--group', 'www-data'] : []),
      ],
      spawn: {
        env: {
          PATH: process.env.PATH,
          LLNG_DEFAULTCONFFILE: join(dir, 'lemonldap-ng.ini'),
          LLNG_DEFAULTLOGGER: 'Lemonldap::NG::Common::Logger::Std',
          PERL5LIB: join(dir, 'perl'),
        },
      },
      ports: [],
      ready: async () => existsSync(socket),
    });
    // The worker builds the portal on its first request (the provider's JWKS downloaded then): a logout
    // page, which needs no session.
    const warmUp = await fetch(urls.logoutUri, { redirect: 'manual' });
    if (warmUp.status >= 500) throw new Error(`LemonLDAP::NG's portal answers ${warmUp.status}: ${logs()}`);
    return { ...urls, logs, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** nginx serving the package's portal site on 127.0.0.1:`port`, passing to the FastCGI server's socket. */
function startNginx(
  dir: string,
  port: number,
  host: string,
  socket: string,
  asRoot: boolean,
): Promise<Daemon> {
  const site = readFileSync(PORTAL_SITE, 'utf8')
    .replace(/server unix:\S+;/, `server unix:${socket};`)
    .replace('listen 80;', `listen 127.0.0.1:${port};`)
    .replace('listen [::]:80;', '')
    .replace('server_name auth.example.com;', `server_name ${host};`);
  if (
    site.includes('example.com') ||
    !site.includes(`server unix:${socket};`) ||
    !site.includes(`:${port};`)
  ) {
    throw new Error(`${PORTAL_SITE} no longer has the expected shape`);
  }
  writeFileSync(join(dir, 'nginx', 'site.conf'), site);
  writeFileSync(
    join(dir, 'nginx', 'nginx.conf'),
    [
      // Started by root, its workers run as the FastCGI server's user, which owns the socket.
      ...(asRoot ? ['user www-data;'] : []),
      'daemon off;',
      `pid ${dir}/nginx/nginx.pid;`,
      'error_log stderr warn;',
      'events {}',
      'http {',
      '  include /etc/nginx/mime.types;',
      `  client_body_temp_path ${dir}/nginx/body;`,
      `  fastcgi_temp_path ${dir}/nginx/fastcgi;`,
      `  proxy_temp_path ${dir}/nginx/proxy;`,
      '  access_log off;',
      `  include ${dir}/nginx/site.conf;`,
      '}',
      '',
    ].join('\n'),
  );
  return startDaemon({
    name: 'nginx',
    command: NGINX,
    args: ['-p', join(dir, 'nginx'), '-c', join(dir, 'nginx', 'nginx.conf')],
    ports: [port],
  });
}

/** The portal's lemonldap-ng.ini, lmConf-1.json and Perl library directory. */
function writeInstance(dir: string, portal: string, host: string, options: LemonLdapOptions): void {
  const defaults = managerProviderDefaults();
  // The plugin as shipped, in a Perl library directory of the instance (readable by www-data).
  cpSync(PLUGIN_DIR, join(dir, 'perl'), { recursive: true });

  writeFileSync(
    join(dir, 'lemonldap-ng.ini'),
    [
      '[all]',
      'logLevel = info',
      'logger = Lemonldap::NG::Common::Logger::Std',
      'userLogger = Lemonldap::NG::Common::Logger::Std',
      '[configuration]',
      'type = File',
      `dirName = ${dir}/conf`,
      '[portal]',
      'staticPrefix = /static',
      'templateDir = /usr/share/lemonldap-ng/portal/templates',
      'languages = fr, en',
      '[handler]',
      'status = 0',
      '',
    ].join('\n'),
  );
  const fileStorage = (sub: string) => ({
    Directory: `${dir}/${sub}`,
    LockDirectory: `${dir}/${sub}/lock`,
    generateModule: 'Lemonldap::NG::Common::Apache::Session::Generate::SHA256',
  });
  const conf = {
    cfgNum: 1,
    cfgAuthor: 'Passerelle test',
    cfgDate: String(Math.floor(Date.now() / 1000)),
    cfgVersion: '2.16.1',
    portal,
    domain: host,
    securedCookie: 0,
    authentication: 'OpenIDConnect',
    userDB: 'Same',
    passwordDB: 'Null',
    registerDB: 'Null',
    globalStorage: 'Apache::Session::File',
    globalStorageOptions: fileStorage('sessions'),
    persistentStorage: 'Apache::Session::File',
    persistentStorageOptions: fileStorage('psessions'),
    localSessionStorage: 'Cache::FileCache',
    localSessionStorageOptions: {
      cache_root: `${dir}/cache`,
      cache_depth: 3,
      default_expires_in: 600,
      directory_umask: '007',
      namespace: 'lemonldap-ng-sessions',
    },
    notification: 0,
    notificationStorage: 'File',
    notificationStorageOptions: { dirName: `${dir}/notifications` },
    locationRules: { [host]: { default: 'accept' } },
    exportedHeaders: {},
    exportedVars: {},
    macros: {},
    groups: {},
    whatToTrace: 'uid',
    oidcOPMetaDataJSON: { [options.opName]: options.opMetadata },
    oidcOPMetaDataJWKS: {},
    oidcOPMetaDataExportedVars: { [options.opName]: { ...defaults.exportedVars, ...options.exportedVars } },
    oidcOPMetaDataOptions: { [options.opName]: { ...defaults.options, ...options.opOptions } },
    ...options.conf,
  };
  writeFileSync(join(dir, 'conf', 'lmConf-1.json'), JSON.stringify(conf, null, 2));
}
