// Runs a Python script in the real MicroPython (WebAssembly port) with firmware/ as /.
// Usage: node run_in_micropython.mjs FIRMWARE_DIR SCRIPT.py [EXTRA_FILE...]  (copied to /; prints stdout)
// SEN_MP_MODULE: the runtime's micropython.mjs when it is not in a node_modules above this file
// (an installed wheel keeps it in the per-user cache, see sen.emulator.node_runtime).
const { loadMicroPython } = await import(process.env.SEN_MP_MODULE ? (await import("node:url")).pathToFileURL(process.env.SEN_MP_MODULE).href
                                                                   : "@micropython/micropython-webassembly-pyscript");
import fs from "node:fs";
import path from "node:path";

const [fwDir, script, ...extra] = process.argv.slice(2);
let out = "";
const mp = await loadMicroPython({ stdout: (s) => { out += s + "\n"; }, stderr: (s) => { out += s + "\n"; }, linebuffer: true, heapsize: 256 * 1024 });
for (const name of fs.readdirSync(fwDir)) {
  if (name.endsWith(".py")) mp.FS.writeFile("/" + name, fs.readFileSync(path.join(fwDir, name)));
}
for (const file of extra) mp.FS.writeFile("/" + path.basename(file), fs.readFileSync(file));
try {
  mp.runPython("import sys\nsys.path.insert(0, '/')\n" + fs.readFileSync(script, "utf8"));
} catch (e) {
  out += "EXCEPTION " + e.message + "\n";
}
process.stdout.write(out);
