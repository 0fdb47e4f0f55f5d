#!/usr/bin/env node
// Bundles the browser client (src/browser) with esbuild into dist/web/:
// wzp.js (the library, one ES module), wzp-worklet.js (the playback
// AudioWorklet), app.js (the web app), dashboard.js (the operator
// dashboard), and copies the static pages. The relay serves dist/web.
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src', 'browser');
const out = join(root, 'dist', 'web');

// zod's namespace export keeps every locale (about 200 KB) in a bundle; the
// browser client reports no zod messages to people, so only English stays.
const zodEnglishOnly = {
  name: 'zod-english-only',
  setup(b) {
    b.onResolve({ filter: /\/locales\/index\.js$/ }, (args) =>
      args.importer.includes(`${join('node_modules', 'zod')}`)
        ? { path: join(dirname(args.importer), '..', 'locales', 'en.js'), namespace: 'zod-en' }
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'zod-en' }, (args) => ({
      contents: `export { default as en } from ${JSON.stringify(args.path)};`,
      resolveDir: dirname(args.path),
      loader: 'js',
    }));
  },
};

export async function buildWeb({ outdir = out, minify = true } = {}) {
  mkdirSync(outdir, { recursive: true });
  const common = {
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['chrome120'],
    minify,
    sourcemap: true,
    legalComments: 'none',
    logLevel: 'warning',
    plugins: [zodEnglishOnly],
  };
  await build({
    ...common,
    entryPoints: {
      wzp: join(src, 'index.ts'),
      'wzp-worklet': join(src, 'worklet.ts'),
      app: join(src, 'app.ts'),
      dashboard: join(src, 'dashboard.ts'),
    },
    outdir,
  });
  for (const f of readdirSync(join(src, 'web'))) {
    copyFileSync(join(src, 'web', f), join(outdir, f));
  }
  return outdir;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await buildWeb();
}
