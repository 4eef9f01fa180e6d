// Validates Prometheus Operator objects (a JSON array on stdin) with the validators that the npm package
// @kubernetes-models/prometheus-operator generates from the operator's CRD schemas; prints a JSON array
// with one list of error messages per object (empty: valid). Run with NODE_PATH unset: the package is
// imported from the directory given as the first argument (<tools>/node_modules).
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const modules = process.argv[2];
const docs = JSON.parse(readFileSync(0, "utf8"));
const results = [];
for (const doc of docs) {
  const [group, version] = String(doc.apiVersion).split("/");
  const url = pathToFileURL(`${modules}/@kubernetes-models/prometheus-operator/${group}/${version}/${doc.kind}.js`);
  let Model;
  try {
    Model = (await import(url.href))[doc.kind];
  } catch (err) {
    results.push([`no schema for ${doc.apiVersion} ${doc.kind}: ${err.message}`]);
    continue;
  }
  try {
    new Model(doc).validate();
    results.push([]);
  } catch (err) {
    const details = (err.errors || []).map((e) => `${e.instancePath || "/"} ${e.message || e.keyword}`);
    results.push(details.length ? details : [String(err.message || err)]);
  }
}
process.stdout.write(JSON.stringify(results));
