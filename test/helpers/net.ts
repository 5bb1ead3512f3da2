import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type Server, Socket } from 'node:net';

/*
 * Ports of the servers tests start.
 *
 * Never pick a free port, close it, and hand it to a server later: anything may take it in between —
 * another test's server, or the kernel itself, which gives ports of the same (ephemeral) range as the
 * source port of every outgoing connection (the PostgreSQL pool, fetch) — and the server fails with
 * EADDRINUSE. Instead:
 *
 * - An in-process Node server: `await listenLocal(server)` listens on port 0 (the kernel picks a free
 *   port) and returns the port it got. When a URL with that port must exist before the handler (an
 *   issuer in a configuration), listen first with no handler (`openHttpServer()`), build what needs the
 *   URL, then attach the handler: `server.on('request', handler)`.
 * - A server told its port in advance (slapd, nginx, LemonLDAP::NG, a spawned `passerelle serve`):
 *   `withPorts(count, (ports) => start(ports))`. The ports come from outside the ephemeral range (nothing
 *   takes them implicitly), and `start` runs again with other ports when it throws `AddressInUseError`
 *   (or any error whose code is EADDRINUSE); it must clean up what it started before throwing.
 *   `startDaemon` spawns a daemon, waits until it listens on its ports, and turns its "address already in
 *   use" into that error.
 * - The same port again (a server restarted in a test): `samePortAgain(() => start(port))` retries while
 *   the port is still held.
 * - A URL that must refuse connections: port `REFUSED_PORT`.
 */

/** A port no server can listen on: connecting to it is refused (ECONNREFUSED) at once. */
export const REFUSED_PORT = 0;

/** Listens on `host` at a port the kernel picks (port 0); returns that port. */
export function listenLocal(server: Server, host = '127.0.0.1'): Promise<number> {
  return listenOn(server, 0, host);
}

/** Listens on `host`:`port`; returns the port listened on (rejects with the listen error, e.g. EADDRINUSE). */
export function listenOn(server: Server, port: number, host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : port);
    });
  });
}

/**
 * An HTTP server already listening on `host` at a port the kernel picked, with no request handler yet:
 * its origin is known before the application that will serve it (attach it with `server.on('request', …)`).
 */
export async function openHttpServer(
  host = '127.0.0.1',
): Promise<{ server: HttpServer; port: number; origin: string }> {
  const server = createHttpServer();
  const port = await listenLocal(server, host);
  return { server, port, origin: `http://${host}:${port}` };
}

/** Thrown by a start function when its port is taken: `withPorts` tries again with other ports. */
export class AddressInUseError extends Error {
  override name = 'AddressInUseError';
}

/** How daemons say that their port is taken (Node, nginx, slapd, Perl's IO::Socket, Samba). */
export const ADDRESS_IN_USE =
  /EADDRINUSE|address already in use|errno=98\b|NT_STATUS_ADDRESS_ALREADY_ASSOCIATED/i;

export function isAddressInUse(err: unknown): boolean {
  return (
    err instanceof AddressInUseError ||
    (typeof err === 'object' && err !== null && (err as { code?: unknown }).code === 'EADDRINUSE')
  );
}

export interface WithPortsOptions {
  /** Attempts before giving up (default 8). */
  attempts?: number;
  /** Ports to try first, one array per attempt (to test this helper and the daemons' helpers). */
  first?: number[][];
}

/**
 * Runs `start` with `count` ports it may bind, again with other ports while it fails because one is
 * taken (`isAddressInUse`): for servers that must be told their port before they listen. Returns what
 * `start` returns; other errors propagate at once.
 */
export async function withPorts<T>(
  count: number,
  start: (ports: number[]) => Promise<T>,
  options: WithPortsOptions = {},
): Promise<T> {
  const attempts = options.attempts ?? 8;
  const first = [...(options.first ?? [])];
  const taken: number[][] = [];
  for (let attempt = 1; ; attempt++) {
    const ports = first.shift() ?? (await pickPorts(count));
    try {
      return await start(ports);
    } catch (err) {
      if (!isAddressInUse(err) || attempt >= attempts) {
        if (isAddressInUse(err))
          throw new Error(`ports in use at each of ${attempts} attempts: ${JSON.stringify(taken)}`, {
            cause: err,
          });
        throw err;
      }
      taken.push(ports);
    }
  }
}

/**
 * Runs `start` again while it fails because its port is still taken (a server restarted on the port its
 * clients know), until `timeoutMs`.
 */
export async function samePortAgain<T>(start: () => Promise<T>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await start();
    } catch (err) {
      if (!isAddressInUse(err) || Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/** The kernel's ephemeral port range (Linux), where it picks port-0 and source ports. */
function ephemeralRange(): [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/);
    if (low && high) return [Number(low), Number(high)];
  } catch {}
  return [32_768, 65_535];
}

/** `count` distinct ports outside the ephemeral range, each free on 127.0.0.1 when checked. */
async function pickPorts(count: number): Promise<number[]> {
  const [low, high] = ephemeralRange();
  // Above the registered ports people run things on (3000, 5432, 8080…), below the ephemeral range, or
  // above it when the range starts too low to leave room.
  const [from, to] = low - 1 - 20_000 >= 2_000 ? [20_000, low - 1] : [high + 1, 65_535];
  const ports: number[] = [];
  while (ports.length < count) {
    const port = from + Math.floor(Math.random() * (to - from + 1));
    if (ports.includes(port)) continue;
    const probe = createServer();
    const free = await listenOn(probe, port).then(
      () => true,
      () => false,
    );
    if (free) await new Promise((resolve) => probe.close(resolve));
    if (free) ports.push(port);
  }
  return ports;
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
export function portOpen(port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const socket = new Socket();
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.connect(port, '127.0.0.1');
  });
}

/**
 * Whether a process of group `pgid` listens on TCP `port` (Linux /proc: the listening socket's inode
 * among the group's open files). Without /proc, whether anything accepts connections there.
 */
async function groupListens(pgid: number, port: number): Promise<boolean> {
  let tables: string[];
  try {
    tables = ['/proc/net/tcp', '/proc/net/tcp6'].map((file) => readFileSync(file, 'utf8'));
  } catch {
    return portOpen(port);
  }
  const inodes = new Set<string>();
  for (const line of tables.flatMap((table) => table.split('\n').slice(1))) {
    const fields = line.trim().split(/\s+/);
    // local_address is hex ip:port; st 0A is LISTEN; field 9 is the inode.
    if (fields[3] === '0A' && Number.parseInt(fields[1]?.split(':')[1] ?? '', 16) === port)
      inodes.add(`socket:[${fields[9]}]`);
  }
  if (inodes.size === 0) return false;
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      // pid (comm) state ppid pgrp …: comm may hold spaces and parentheses.
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]) !== pgid) continue;
      for (const fd of readdirSync(`/proc/${pid}/fd`))
        if (inodes.has(readlinkSync(`/proc/${pid}/fd/${fd}`))) return true;
    } catch {}
  }
  return false;
}

export interface DaemonOptions {
  /** For messages: "slapd", "nginx"… */
  name: string;
  command: string;
  args: string[];
  /** Spawn options (`detached` is forced: the daemon and its workers form a group stopped together). */
  spawn?: SpawnOptions;
  /** The TCP ports the daemon listens on: it is ready once its process group listens on each. */
  ports: number[];
  /** Further readiness (e.g. an HTTP check), polled after the ports. */
  ready?: () => Promise<boolean>;
  /** Default 120 s: a loaded machine may take long to start a daemon. */
  timeoutMs?: number;
}

export interface Daemon {
  child: ChildProcess;
  /** The ports it listens on. */
  ports: number[];
  /** The last 16 kB the daemon wrote on stdout and stderr. */
  output(): string;
  /** SIGTERM to the group, SIGKILL after 10 s; resolves once the daemon exited. */
  stop(): Promise<void>;
}

/**
 * Spawns a daemon (in its own process group) and waits until it listens on `ports` and is `ready`.
 * Throws `AddressInUseError` when it says a port is taken, or another error when it exits or is not
 * ready in time; the daemon is stopped then.
 */
export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  const child = spawn(options.command, options.args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...options.spawn,
    detached: true,
  });
  let output = '';
  const collect = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-16_000);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // Its output ends when the daemon and every process that inherited its pipes have exited.
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  child.once('error', (err) => collect(Buffer.from(`\n${err.message}\n`)));
  const stop = async () => {
    if (!child.pid || child.exitCode !== null || child.signalCode !== null) return;
    const signal = (name: NodeJS.Signals) => {
      try {
        process.kill(-(child.pid as number), name);
      } catch {}
    };
    signal('SIGTERM');
    const timer = setTimeout(() => signal('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };
  const daemon = { child, ports: options.ports, output: () => output, stop };
  const timeoutMs = options.timeoutMs ?? 120_000;
  const deadline = Date.now() + timeoutMs;
  try {
    const pending = new Set(options.ports);
    for (;;) {
      const dead = child.exitCode !== null || child.signalCode !== null || !child.pid;
      // What it wrote before exiting, to tell a taken port from another failure.
      if (dead) await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 5000))]);
      if (ADDRESS_IN_USE.test(output))
        throw new AddressInUseError(
          `${options.name}: a port of ${options.ports.join(', ')} is taken: ${output}`,
        );
      if (dead) throw new Error(`${options.name} exited (${child.exitCode ?? child.signalCode}): ${output}`);
      for (const port of pending) if (await groupListens(child.pid as number, port)) pending.delete(port);
      if (pending.size === 0 && (!options.ready || (await options.ready()))) return daemon;
      if (Date.now() > deadline)
        throw new Error(
          `${options.name} not ready within ${timeoutMs} ms (ports ${options.ports.join(', ')}): ${output}`,
        );
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } catch (err) {
    await stop();
    throw err;
  }
}
