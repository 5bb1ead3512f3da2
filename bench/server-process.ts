/** The server under test (bench/server.ts) as a child process, with a request/reply protocol over IPC. */
import { type ChildProcess, fork } from 'node:child_process';
import type { Command, Ready, Replies, Reply } from './protocol.ts';

export class ServerProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly issuer: string;
  readonly #pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  #nextId = 1;

  private constructor(child: ChildProcess, ready: Ready) {
    this.child = child;
    this.pid = ready.pid;
    this.issuer = ready.issuer;
    child.on('message', (message: Reply) => {
      const waiter = this.#pending.get(message.id);
      if (!waiter) return;
      this.#pending.delete(message.id);
      if (message.error) waiter.reject(new Error(`server: ${message.error}`));
      else waiter.resolve(message.result);
    });
    child.on('exit', (code) => {
      for (const waiter of this.#pending.values()) waiter.reject(new Error(`server exited (${code})`));
      this.#pending.clear();
    });
  }

  /** Forks bench/server.ts with extra environment variables and Node flags, and waits until it listens. */
  static async start(env: Record<string, string>, execArgv: string[] = []): Promise<ServerProcess> {
    const child = fork(new URL('./server.ts', import.meta.url), {
      execPath: process.execPath,
      execArgv,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const ready = await new Promise<Ready>((resolveReady, reject) => {
      child.once('message', (m: Ready) => resolveReady(m));
      child.once('exit', (code) => reject(new Error(`server process exited during start (${code})`)));
    });
    return new ServerProcess(child, ready);
  }

  call<C extends Command>(command: C): Promise<Replies[C['type']]> {
    const id = this.#nextId++;
    return new Promise((resolveCall, reject) => {
      this.#pending.set(id, { resolve: resolveCall as (v: unknown) => void, reject });
      this.child.send({ ...command, id });
    });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    await Promise.race([this.call({ type: 'stop' }).catch(() => {}), exited]);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}
