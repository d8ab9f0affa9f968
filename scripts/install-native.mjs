// Builds the optional native CPU backend (Node-API addon over OpenBLAS) at `npm install`.
// The install never fails because of it: without a compiler or OpenBLAS the library falls back to
// the `wasm` / `cpu` tfjs backends and this script prints one line saying how to get native speed.
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const HOW_TO =
  'lowrank: native backend not built (%s); running on wasm/cpu. For native speed: ' +
  'apt-get install -y g++ make python3 libopenblas-dev && npm rebuild lowrank';

function skip(reason) {
  console.log(HOW_TO.replace('%s', reason));
  process.exit(0);
}

if (process.env.LOWRANK_SKIP_NATIVE === '1') skip('LOWRANK_SKIP_NATIVE=1');
if (!existsSync(join(root, 'native', 'binding.gyp'))) skip('no native/binding.gyp in this package');
if (!['/usr/include/cblas.h', '/usr/include/x86_64-linux-gnu/cblas.h', '/usr/include/openblas/cblas.h',
      '/usr/include/aarch64-linux-gnu/cblas.h'].some((p) => existsSync(p)))
  skip('OpenBLAS headers (cblas.h) not found');

// npm exposes its bundled node-gyp to install scripts; fall back to npx when run by hand.
const gyp = process.env.npm_config_node_gyp;
const cmd = gyp ? process.execPath : 'npx';
const args = gyp ? [gyp, 'rebuild'] : ['--yes', 'node-gyp', 'rebuild'];
const r = spawnSync(cmd, args, { cwd: join(root, 'native'), stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
if (r.status !== 0) {
  const tail = `${r.stdout ?? ''}\n${r.stderr ?? ''}`.trim().split('\n').slice(-15).join('\n');
  console.log(tail);
  skip(`compiling the addon failed (exit ${r.status ?? r.signal})`);
}
console.log('lowrank: native backend built (native/build/Release/lowrank_native.node)');
