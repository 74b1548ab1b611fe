// Runs the OCI distribution-spec conformance suite (v1.1 line, built by scripts/install-test-tools.sh) against a
// Berth child process on filesystem storage, with all four workflows and the cross-mount fallback spec enabled.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { removeDir, spawnRegistry, tempDir, TOOLS_BIN, type ChildRegistry } from '../helpers/harness.js';
import { describeFailure, exists, runCommand, type CommandResult } from '../helpers/images.js';

const CONFORMANCE_BIN = join(TOOLS_BIN, 'oci-conformance');

interface JunitCase {
  readonly name: string;
  readonly status: string;
  readonly skipMessage?: string;
}

function unescapeXml(s: string): string {
  return s
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&#xA;/g, '\n')
    .replace(/&amp;/g, '&');
}

/** The test cases of ginkgo's junit.xml with their status (passed, failed, skipped, ...). */
function parseJunit(xml: string): JunitCase[] {
  const cases: JunitCase[] = [];
  const re = /<testcase\s+name="([^"]*)"[^>]*?\sstatus="([^"]*)"[^>]*>([\s\S]*?)<\/testcase>/g;
  for (const m of xml.matchAll(re)) {
    const skipped = /<skipped\s+message="([^"]*)"/.exec(m[3] ?? '');
    cases.push({
      name: unescapeXml(m[1] ?? ''),
      status: m[2] ?? '',
      ...(skipped === null ? {} : { skipMessage: unescapeXml(skipped[1] ?? '') }),
    });
  }
  return cases;
}

/** Ginkgo's closing summary line: "75 Passed | 0 Failed | 0 Pending | 4 Skipped". */
function parseSummary(
  output: string,
): { passed: number; failed: number; pending: number; skipped: number } | undefined {
  const plain = output.replace(/\u001b\[[0-9;]*m/g, '');
  const m = /(\d+) Passed \| (\d+) Failed \| (?:(\d+) Flaked \| )?(\d+) Pending \| (\d+) Skipped/.exec(plain);
  if (m === null) return undefined;
  return { passed: Number(m[1]), failed: Number(m[2]), pending: Number(m[4]), skipped: Number(m[5]) };
}

describe('OCI distribution-spec conformance @integration', function () {
  this.timeout(360_000);

  let storage: string;
  let reportDir: string;
  /** Every spec run passed: the report is removed; otherwise it stays for whoever reads report.html. */
  let clean = false;
  let registry: ChildRegistry | undefined;

  before(async function () {
    if (!(await exists(CONFORMANCE_BIN))) {
      assert.fail(
        `the conformance suite is not built at ${CONFORMANCE_BIN}; run \`bash scripts/install-test-tools.sh\` first`,
      );
    }
    storage = await tempDir('berth-conformance-storage-');
    reportDir = await tempDir('berth-conformance-report-');
    registry = await spawnRegistry({
      REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: storage,
      REGISTRY_STORAGE_DELETE_ENABLED: 'true',
    });
  });

  after(async function () {
    if (registry !== undefined) await registry.stop();
    if (storage !== undefined) await removeDir(storage);
    if (clean && reportDir !== undefined) await removeDir(reportDir);
  });

  it('passes every spec of the pull, push, content discovery and content management workflows', async function () {
    assert.ok(registry !== undefined);
    const result: CommandResult = await runCommand(CONFORMANCE_BIN, ['--ginkgo.no-color'], {
      cwd: reportDir,
      timeoutMs: 300_000,
      env: {
        PATH: process.env['PATH'] ?? '',
        HOME: reportDir,
        OCI_ROOT_URL: registry.url,
        OCI_NAMESPACE: 'conformance/main',
        OCI_CROSSMOUNT_NAMESPACE: 'conformance/crossmount',
        OCI_TEST_PULL: '1',
        OCI_TEST_PUSH: '1',
        OCI_TEST_CONTENT_DISCOVERY: '1',
        OCI_TEST_CONTENT_MANAGEMENT: '1',
        // Set (to false) so the "cross-mounting without from ... should return a 202" spec runs.
        OCI_AUTOMATIC_CROSSMOUNT: '0',
        OCI_HIDE_SKIPPED_WORKFLOWS: '0',
        OCI_REPORT_DIR: reportDir,
      },
    });
    const junitPath = join(reportDir, 'junit.xml');
    const htmlPath = join(reportDir, 'report.html');
    const output = `${result.stdout}\n${result.stderr}`;
    const junit = (await exists(junitPath)) ? await readFile(junitPath, 'utf8') : '';
    const entries = parseJunit(junit);
    // junit.xml also lists suite-level nodes (the HTML reporter's ReportAfterSuite); specs are the [It] entries.
    const cases = entries.filter((c) => c.name.startsWith('[It] '));
    const count = (status: string): number => cases.filter((c) => c.status === status).length;
    const passed = count('passed');
    const skipped = count('skipped');
    const failures = entries.filter((c) => c.status !== 'passed' && c.status !== 'skipped');
    console.log(`      conformance report: ${junitPath} and ${htmlPath}`);
    console.log(
      `      conformance: ${passed} passed, ${failures.length} failed, ${skipped} skipped (of ${cases.length}) in ${result.durationMs} ms`,
    );

    assert.equal(result.timedOut, false, describeFailure(result));
    assert.ok(cases.length > 0, `no test cases in ${junitPath}\n${describeFailure(result)}`);
    assert.deepEqual(
      failures.map((c) => `${c.status}: ${c.name}`),
      [],
      `conformance specs failed (details in ${htmlPath})\n${result.stdout.slice(-6000)}`,
    );
    assert.equal(result.code, 0, describeFailure(result));
    assert.match(junit, /<testsuites[^>]*\sfailures="0"/);
    assert.match(junit, /<testsuites[^>]*\serrors="0"/);

    const summary = parseSummary(output);
    assert.ok(summary !== undefined, `no ginkgo summary line in the output\n${result.stdout.slice(-2000)}`);
    assert.equal(summary.failed, 0);
    assert.equal(summary.passed, passed, 'the summary line and junit.xml disagree on passed specs');

    // Every workflow ran: no spec was skipped because its workflow was switched off.
    const disabled = cases.filter((c) => c.skipMessage?.includes('check your environment variable settings'));
    assert.deepEqual(
      disabled.map((c) => c.name),
      [],
      'specs skipped because a workflow was disabled',
    );
    for (const workflow of ['Pull', 'Push', 'Content Discovery', 'Content Management']) {
      assert.ok(
        cases.some((c) => c.status === 'passed' && c.name.includes(`Conformance Tests ${workflow} `)),
        `no passed spec in the ${workflow} workflow`,
      );
    }
    const fallback = cases.find((c) =>
      c.name.includes('Cross-mounting without from, and automatic content discovery disabled should return a 202'),
    );
    assert.equal(fallback?.status, 'passed', 'the cross-mount fallback spec (OCI_AUTOMATIC_CROSSMOUNT=0) did not pass');
    clean = true;
  });
});
