// Validates Traefik (traefik.io/v1alpha1) and Gateway API (gateway.networking.k8s.io/v1) objects
// against the validators that @kubernetes-models generates from the projects' CRDs.
//
// Usage: node validate-crds.mjs FILE.yaml...   (exit 0 ok, 1 invalid objects, 2 bad input)
//
// The generated validators check types, enums, required fields and bounds, but a CRD's schema
// does not forbid unknown fields (the API server prunes or rejects them). To be as strict as
// `kubectl apply --validate=strict`, each object is validated through a Proxy that records which
// keys the validator looks up: a key it never asked about is a field the schema does not declare.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import * as traefik from "@kubernetes-models/traefik/traefik.io/v1alpha1";
import * as gatewayApi from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1";

const MODELS = {
  "traefik.io/v1alpha1": traefik,
  "gateway.networking.k8s.io/v1": gatewayApi,
};
// Groups whose objects must be checked here (any other version of them is an error).
const CUSTOM_GROUPS = ["traefik.io", "traefik.containo.us", "gateway.networking.k8s.io"];

/** Wraps `value` so that every key lookup is recorded in `seen` (keyed by the original object). */
function recording(value, seen) {
  if (value === null || typeof value !== "object") return value;
  const record = { read: new Set(), enumerated: false };
  seen.set(value, record);
  const children = new Map();
  return new Proxy(value, {
    get(target, key, receiver) {
      if (typeof key === "string") record.read.add(key);
      const child = Reflect.get(target, key, receiver);
      if (child === null || typeof child !== "object") return child;
      if (!children.has(key)) children.set(key, recording(child, seen));
      return children.get(key);
    },
    has(target, key) {
      if (typeof key === "string") record.read.add(key);
      return Reflect.has(target, key);
    },
    ownKeys(target) {
      // Iterating keys means a map (labels, annotations...): any key is allowed there.
      record.enumerated = true;
      return Reflect.ownKeys(target);
    },
  });
}

/** Paths of keys the validator never looked up, in objects it did look into. */
function undeclaredFields(value, seen, path = "") {
  if (value === null || typeof value !== "object") return [];
  const found = [];
  const record = seen.get(value);
  if (!Array.isArray(value) && record && !record.enumerated && record.read.size > 0) {
    for (const key of Object.keys(value)) {
      if (!record.read.has(key)) found.push(`${path}/${key}`);
    }
  }
  for (const [key, child] of Object.entries(value)) {
    found.push(...undeclaredFields(child, seen, `${path}/${key}`));
  }
  return found;
}

/** Problems with one object; `null` when the object is not a custom resource checked here. */
export function validateObject(obj) {
  const apiVersion = String(obj?.apiVersion ?? "");
  const group = apiVersion.includes("/") ? apiVersion.split("/")[0] : "";
  if (!CUSTOM_GROUPS.includes(group)) return null;
  const Model = MODELS[apiVersion]?.[obj.kind];
  if (!Model) return [`no published schema for ${obj.kind} in ${apiVersion} (deprecated or unknown version?)`];
  const seen = new WeakMap();
  const problems = [];
  try {
    // The generated validate() runs the schema's validator on `this`: hand it the recording proxy.
    Model.prototype.validate.call(recording(obj, seen));
  } catch (err) {
    problems.push(err.message);
  }
  for (const path of undeclaredFields(obj, seen)) {
    problems.push(`data${path} is not a field of the ${obj.kind} schema`);
  }
  return problems;
}

function main(files) {
  if (files.length === 0) {
    console.error("usage: node validate-crds.mjs FILE.yaml...");
    return 2;
  }
  let checked = 0;
  let failed = 0;
  for (const file of files) {
    let docs;
    try {
      docs = parseAllDocuments(readFileSync(file, "utf8"));
    } catch (err) {
      console.error(`error: ${file}: ${err.message}`);
      return 2;
    }
    for (const doc of docs) {
      if (doc.errors.length > 0) {
        console.error(`error: ${file}: ${doc.errors[0].message}`);
        return 2;
      }
      const obj = doc.toJS();
      const problems = validateObject(obj);
      if (problems === null) continue;
      checked += 1;
      const name = `${obj.kind}/${obj.metadata?.name}`;
      if (problems.length === 0) {
        console.log(`ok ${file}: ${name}`);
      } else {
        failed += 1;
        for (const problem of problems) console.log(`FAIL ${file}: ${name}: ${problem}`);
      }
    }
  }
  console.log(`checked ${checked} custom objects, ${failed} invalid`);
  return failed > 0 ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
