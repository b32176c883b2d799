// Runs @jupyterlab/builder's `build-labextension` against the JupyterLab core
// metadata pinned in devDependencies (@jupyterlab/core-meta), so the build
// needs only node and this package's lock file, not a Python JupyterLab.
// The builder wants that metadata as `package.json` in a directory of its own.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const require = createRequire(import.meta.url);
const coreDir = mkdtempSync(join(tmpdir(), 'pydock-core-'));
try {
  copyFileSync(require.resolve('@jupyterlab/core-meta/core.package.json'), join(coreDir, 'package.json'));
  const builder = require.resolve('@jupyterlab/builder/lib/build-labextension.js');
  execFileSync(process.execPath, [builder, '--core-path', coreDir, ...process.argv.slice(2), '.'], {
    stdio: 'inherit'
  });
} finally {
  rmSync(coreDir, { recursive: true, force: true });
}
