// k8s_validate.mjs - validates Kubernetes manifests offline against the
// Kubernetes OpenAPI schemas (npm's kubernetes-models), for
// tests/integration/test_k8s_manifests.py.
//
//   node k8s_validate.mjs '{"files": ["deploy/k8s/corio.yaml", ...]}'
//
// Prints one JSON line: {"docs": [every document, as parsed], "errors":
// ["file: Kind name: what is wrong", ...]}. kubernetes-models is published
// as ES modules only, and ES modules ignore NODE_PATH: its files are
// imported by path from there.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const modules = process.env.NODE_PATH;
const require = createRequire(path.join(modules, 'noop.js'));
const yaml = require('js-yaml');
const args = JSON.parse(process.argv[2]);
const out = { docs: [], errors: [] };
for (const file of args.files) {
  let docs;
  try {
    docs = yaml.loadAll(fs.readFileSync(file, 'utf8')).filter(Boolean);
  } catch (e) {
    out.errors.push(`${file}: ${e.message}`);
    continue;
  }
  for (const d of docs) {
    out.docs.push(d);
    const where = `${file}: ${d.kind} ${d.metadata && d.metadata.name}`;
    if (typeof d.apiVersion !== 'string' || typeof d.kind !== 'string' ||
        !/^[A-Za-z0-9.]+(\/[A-Za-z0-9]+)?$/.test(d.apiVersion) || !/^[A-Za-z]+$/.test(d.kind)) {
      out.errors.push(`${where}: no apiVersion/kind`);
      continue;
    }
    const model = path.join(modules, 'kubernetes-models', d.apiVersion, `${d.kind}.js`);
    if (!fs.existsSync(model)) {
      out.errors.push(`${where}: unknown kind ${d.apiVersion} ${d.kind}`);
      continue;
    }
    try {
      const mod = await import(model);
      new mod[d.kind](d).validate();
    } catch (e) {
      out.errors.push(`${where}: ${e.message}`);
    }
  }
}
console.log(JSON.stringify(out));
