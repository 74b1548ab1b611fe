// Mocha's spec reporter plus closing lines in the plain form CI reads: "N passed, N failed, N skipped", and the wall
// time of the end-to-end suites (titles tagged @e2e, hooks included) beside the whole run's.
'use strict';
const Mocha = require('mocha');
const { Spec } = Mocha.reporters;

class BerthReporter extends Spec {
  constructor(runner, options) {
    super(runner, options);
    const started = Date.now();
    const open = new Map();
    let e2eMs = 0;
    runner.on('suite', (suite) => {
      if (/@e2e/.test(suite.title)) open.set(suite, Date.now());
    });
    runner.on('suite end', (suite) => {
      const t = open.get(suite);
      if (t !== undefined) {
        e2eMs += Date.now() - t;
        open.delete(suite);
      }
    });
    runner.once('end', () => {
      const s = this.stats;
      const totalS = (Date.now() - started) / 1000;
      const e2eS = e2eMs / 1000;
      const share = totalS > 0 ? Math.round((100 * e2eS) / totalS) : 0;
      process.stdout.write(`\ntests: ${s.passes} passed, ${s.failures} failed, ${s.pending} skipped\n`);
      process.stdout.write(
        `time: ${totalS.toFixed(0)} s in all, of which @e2e suites ${e2eS.toFixed(0)} s (${share}%)\n`,
      );
    });
  }
}
module.exports = BerthReporter;
