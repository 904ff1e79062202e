// Run MicroPython code on the counting module (emulator/work_counter.py) and print the
// work units each named snippet took, as JSON. usage: node cpu_model.mjs MJS WASM PYFILE
import fs from "node:fs";
import { pathToFileURL } from "node:url";

const [mjs, wasm, pyfile] = process.argv.slice(2);
let instance = null;
const instantiate = WebAssembly.instantiate;
WebAssembly.instantiate = async (...a) => {
  const r = await instantiate(...a);
  instance = r.instance || r;
  return r;
};
const { loadMicroPython } = await import(pathToFileURL(mjs).href);
let out = "";
const mp = await loadMicroPython({ url: wasm, heapsize: 160 * 1024, stdout: (s) => { out += s + "\n"; } });
const count = instance.exports.sen_work;
mp.registerJsModule("_work", { units: () => count() });
mp.FS.writeFile("/bench.py", fs.readFileSync(pyfile));
mp.runPython("import sys\nsys.path.append('/')\nimport bench");
process.stdout.write(out);
