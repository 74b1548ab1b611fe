#!/bin/sh
# `npm start`: runs the registry as npm's own child, so that stopping npm stops the registry. npm passes only SIGINT
# and SIGTERM on to its script, and dies of anything else (SIGHUP, SIGKILL) without a word to it; the kernel's
# parent-death signal (setpriv --pdeathsig, util-linux) covers those. Each exec keeps the process npm started.
cd "$(dirname "$0")/.." || exit 1
if command -v setpriv >/dev/null 2>&1; then
  exec setpriv --pdeathsig TERM node dist/src/cli/main.js serve --config config/dev.yml "$@"
fi
exec node dist/src/cli/main.js serve --config config/dev.yml "$@"
