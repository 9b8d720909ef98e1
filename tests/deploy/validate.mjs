// SPDX-License-Identifier: Apache-2.0
// Validates Kubernetes manifests against the API's schemas, the way
// `kubectl apply --validate=strict` would without a cluster:
//   1. every document's apiVersion/kind is a known type, and the object
//      passes that type's JSON schema (kubernetes-models: required fields,
//      types, formats, enums);
//   2. no field is unknown anywhere (a typo such as `imagePullPolicyy` or a
//      probe under the wrong key): each object becomes a TypeScript literal
//      of its kubernetes-models interface, and tsc's excess-property check
//      refuses what the type does not have.
// Usage: node validate.mjs FILE.yaml...   Prints {"objects":[...]} (the
// parsed documents) on success; exit 1 with one line per problem otherwise.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";

const here = dirname(fileURLToPath(import.meta.url));

// The package and module of an apiVersion: core "v1", "apps/v1", ...;
// the Prometheus Operator's types come from their own package.
function modulePath(apiVersion) {
  if (apiVersion.startsWith("monitoring.coreos.com/"))
    return "@kubernetes-models/prometheus-operator/" + apiVersion;
  return "kubernetes-models/" + apiVersion;
}

async function modelClass(apiVersion, kind) {
  let mod;
  try {
    mod = await import(modulePath(apiVersion) + "/" + kind);
  } catch {
    return null;
  }
  return mod[kind] || null;
}

const problems = [];
const objects = [];
const typed = [];   // [interface import, literal, where]

for (const file of process.argv.slice(2)) {
  const docs = parseAllDocuments(readFileSync(file, "utf8"), { prettyErrors: true });
  docs.forEach((doc, i) => {
    const where = `${file}#${i}`;
    if (doc.errors.length) {
      problems.push(`${where}: yaml: ${doc.errors[0].message}`);
      return;
    }
    const obj = doc.toJS();
    if (obj === null || obj === undefined) return;
    objects.push({ file, index: i, object: obj });
  });
}

for (const { file, index, object } of objects) {
  const where = `${file}#${index} ${object?.kind}/${object?.metadata?.name}`;
  if (typeof object !== "object" || !object.apiVersion || !object.kind) {
    problems.push(`${where}: not a Kubernetes object (no apiVersion/kind)`);
    continue;
  }
  const Cls = await modelClass(object.apiVersion, object.kind);
  if (!Cls) {
    problems.push(`${where}: unknown type ${object.apiVersion} ${object.kind}`);
    continue;
  }
  try {
    new Cls(object).validate();
  } catch (e) {
    problems.push(`${where}: schema: ${e.message.split("\n").slice(0, 6).join(" | ")}`);
  }
  typed.push([modulePath(object.apiVersion) + "/" + object.kind, "I" + object.kind,
              object, where]);
}

// The excess-property check, in one tsc run over every object.
if (typed.length) {
  // Beside node_modules, so that tsc resolves the packages as node does.
  const dir = mkdtempSync(join(here, ".check-"));
  try {
    const lines = [];
    typed.forEach(([mod, iface, obj, where], i) => {
      lines.push(`// ${where}`);
      lines.push(`import type { ${iface} as T${i} } from ${JSON.stringify(mod)};`);
      lines.push(`export const o${i}: T${i} = ${JSON.stringify(obj, null, 1)};`);
    });
    const src = join(dir, "objects.ts");
    writeFileSync(src, lines.join("\n") + "\n");
    writeFileSync(join(dir, "tsconfig.json"), JSON.stringify({
      compilerOptions: {
        strict: true, noEmit: true, module: "nodenext", moduleResolution: "nodenext",
        target: "es2022", skipLibCheck: true, typeRoots: [],
      },
      files: [src],
    }));
    try {
      execFileSync(join(here, "node_modules", ".bin", "tsc"), ["-p", dir],
                   { cwd: here, encoding: "utf8", stdio: "pipe" });
    } catch (e) {
      const out = (e.stdout || "") + (e.stderr || "");
      // Say which object each error is in: the comment above its literal.
      const src_lines = readFileSync(src, "utf8").split("\n");
      for (const m of out.matchAll(/objects\.ts\((\d+),\d+\): error TS\d+: ([^\n]+)/g)) {
        let n = Number(m[1]) - 1;
        while (n > 0 && !src_lines[n].startsWith("// ")) n--;
        problems.push(`${src_lines[n].slice(3)}: field: ${m[2]}`);
      }
      if (!problems.length) problems.push("tsc failed: " + out.slice(0, 2000));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (problems.length) {
  for (const p of problems) console.error(p);
  process.exit(1);
}
console.log(JSON.stringify({ objects: objects.map(o => ({ file: o.file, object: o.object })) }));
