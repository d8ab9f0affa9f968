#!/usr/bin/env bash
# CI: the package as an npm user gets it. Packs this project, installs the tarball into an empty
# project (dependencies from the npm registry or npm's cache), then runs the *installed* CLI
# (`lowrank --help`, `lowrank info`, a short `lowrank demo`) and the API: an ESM import under plain
# node and a small TypeScript file typechecked against the installed package's .d.ts files.
# Usage: bash scripts/pack-check.sh   (LOWRANK_SKIP_NATIVE=1 skips compiling the native addon)
# The typecheck uses skipLibCheck, as consumers do: tfjs-layers' own .d.ts files do not pass a strict
# lib check; the @ts-expect-error line below still fails the check if lowrank's types were `any`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/lowrank-pack-XXXXXX")
trap 'rm -rf "$work"' EXIT
step() { printf '\npack-check: %s\n' "$*"; }

step "npm pack (prepare builds dist/)"
cd "$root"
npm pack --pack-destination "$work" --silent >/dev/null
tarball=$(ls "$work"/lowrank-*.tgz)
listing=$(tar -tzf "$tarball")
for need in package/bin/lowrank.js package/dist/cli/bin.js package/dist/index.js package/dist/index.d.ts \
  package/native/binding.gyp package/scripts/install-native.mjs; do
  grep -qx "$need" <<<"$listing" || { echo "pack-check: $need missing from the tarball" >&2; exit 1; }
done
if grep -E '^package/(src|tests|dist/testing)/|\.test\.(js|d\.ts)$' <<<"$listing"; then
  echo "pack-check: the tarball ships sources, tests or test helpers (above)" >&2
  exit 1
fi
echo "$(wc -l <<<"$listing") files, $(du -h "$tarball" | cut -f1)"

step "install the tarball into an empty project"
mkdir "$work/app"
cd "$work/app"
npm init -y >/dev/null
npm install --no-audit --no-fund --prefer-offline "$tarball"
if [ -d node_modules/tsx ]; then echo "pack-check: tsx was installed as a runtime dependency" >&2; exit 1; fi

step "installed CLI: lowrank --help"
npx --no-install lowrank --help | head -5
step "installed CLI: lowrank info"
npx --no-install lowrank info
step "installed CLI without the native addon (LOWRANK_NATIVE=0): lowrank info"
LOWRANK_NATIVE=0 npx --no-install lowrank info | tee info-wasm.txt
grep -q "backend in use: wasm" info-wasm.txt
step "installed CLI: a short lowrank demo"
npx --no-install lowrank demo --quick -o demo-run
test -f demo-run/lowrank-demo.json

step "installed API: ESM import under plain node"
cat >use.mjs <<'JS'
import { LoraConfig, LOWRANK_VERSION, initBackend, modelFromConfig, getPeftModel } from 'lowrank';
await initBackend('cpu');
const model = modelFromConfig({ model_type: 'llama', vocab_size: 32, hidden_size: 8, intermediate_size: 16,
  num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 2, max_position_embeddings: 16 }, { task: 'CAUSAL_LM' });
const peft = getPeftModel(model, new LoraConfig({ r: 2, targetModules: ['q_proj', 'v_proj'] }));
const n = peft.trainableParameters().reduce((s, [, p]) => s + p.size, 0);
if (n !== 2 * (2 * 8 + 2 * 8)) throw new Error(`unexpected trainable parameter count ${n}`);
console.log(`lowrank ${LOWRANK_VERSION}: LoRA on a 1-layer llama, ${n} trainable parameters`);
JS
node use.mjs

step "installed API: types (tsc --noEmit against the installed .d.ts)"
cat >use.ts <<'TS'
import { LoraConfig, AdaLoraConfig, ConfigError, type BackendName } from 'lowrank';
const backend: BackendName = 'cpu';
const cfg: LoraConfig = new LoraConfig({ r: 4, loraAlpha: 8, targetModules: ['q_proj'] });
const ada = new AdaLoraConfig({ initR: 8, targetR: 4, totalStep: 100 });
const r: number = cfg.r;
// @ts-expect-error: r is a number
const bad: string = cfg.r;
export const ok = [backend, r, ada.targetR, bad, ConfigError.name];
TS
cat >tsconfig.json <<JSON
{ "compilerOptions": { "module": "nodenext", "moduleResolution": "nodenext", "target": "es2022",
  "strict": true, "noEmit": true, "skipLibCheck": true, "types": ["node"], "typeRoots": ["$root/node_modules/@types"] },
  "files": ["use.ts"] }
JSON
"$root/node_modules/.bin/tsc" -p tsconfig.json
echo "use.ts typechecks against node_modules/lowrank"
step "ok"
