import { closeSync, constants, ftruncateSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/** The lock file inside an embedded (PGlite) data directory. */
export const LOCK_FILE = 'passerelle.lock';

export interface DataDirLock {
  release(): void;
}

/**
 * Takes the exclusive lock of an embedded data directory, or returns undefined when another process (or
 * another open in this one) holds it. A kernel lock on an open file description (fcntl OFD lock on
 * Linux, flock elsewhere): the kernel drops it when the holder closes the file or dies, even on kill -9,
 * so a crash leaves nothing stale to clean.
 */
export async function lockDataDir(dataDir: string): Promise<DataDirLock | undefined> {
  const { tryLock } = await import('fs-native-extensions');
  const fd = openSync(join(dataDir, LOCK_FILE), constants.O_RDWR | constants.O_CREAT, 0o600);
  let granted = false;
  try {
    granted = tryLock(fd);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EACCES') {
      closeSync(fd);
      throw err;
    }
  }
  if (!granted) {
    closeSync(fd);
    return undefined;
  }
  // For the operator who looks: which process holds it.
  ftruncateSync(fd);
  writeSync(fd, `${process.pid}\n`, 0);
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      closeSync(fd);
    },
  };
}
