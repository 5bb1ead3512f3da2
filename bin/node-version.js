// The Node.js version check of the entry points (bin/passerelle.js, bin/demo.js): plain JavaScript that
// any Node runs, before a TypeScript source is loaded (Node 24 runs them by type stripping; an older Node
// would stop with a stack trace about the ".ts" extension).
export const REQUIRED_MAJOR = 24;

/** Exits with a one-line message when this Node is older than 24; `what` runs through `how`. */
export function requireNode24(what, how) {
  const major = Number(process.versions.node.split('.')[0]);
  if (major >= REQUIRED_MAJOR) return;
  process.stderr.write(
    `${what} needs Node.js ${REQUIRED_MAJOR} or later (this is ${process.version}); run it through npm (${how}) so that the pinned Node ${REQUIRED_MAJOR} is used.\n`,
  );
  process.exit(1);
}
