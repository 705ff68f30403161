// Copies the built SDK (dist/*.js) into edge/demo/sdk, where the edge
// embeds it for /demo. The copy is committed so `go build` needs no npm;
// .ci/run rebuilds and fails if it differs from what is committed.
import { mkdirSync, readdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const from = join(root, 'dist');
const to = join(root, '..', '..', 'edge', 'demo', 'sdk');
rmSync(to, { recursive: true, force: true });
mkdirSync(to, { recursive: true });
for (const f of readdirSync(from).sort()) {
  if (f.endsWith('.js')) writeFileSync(join(to, f), readFileSync(join(from, f)));
}
