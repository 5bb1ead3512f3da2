// The part of fs-native-extensions (holepunchto) that Passerelle uses: it ships no type declarations.
declare module 'fs-native-extensions' {
  /** An exclusive (or shared) advisory lock on the open file `fd`: true if granted, false if held elsewhere. */
  export function tryLock(fd: number, options?: { shared?: boolean }): boolean;
  export function unlock(fd: number): void;
}
