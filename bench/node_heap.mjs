// Runs a script in real MicroPython 1.27 (WebAssembly) with the compiled firmware
// (.mpy, as shipped) on its filesystem. Usage: node node_heap.mjs FLASH_DIR SCRIPT.py
// FLASH_DIR holds *.mpy and drivers/*.mpy; prints the script's stdout.
// SEN_MP_MODULE: the runtime's micropython.mjs when it is not in a node_modules above this file
// (an installed wheel keeps it in the per-user cache, see sen.emulator.node_runtime).
const { loadMicroPython } = await import(process.env.SEN_MP_MODULE ? (await import("node:url")).pathToFileURL(process.env.SEN_MP_MODULE).href
                                                                   : "@micropython/micropython-webassembly-pyscript");
import fs from "node:fs";
import path from "node:path";

const [flash, script] = process.argv.slice(2);
let out = "";
const mp = await loadMicroPython({ stdout: (s) => { out += s + "\n"; }, stderr: (s) => { out += s + "\n"; }, linebuffer: true, heapsize: 1024 * 1024 });
function copy(dir, dest) {
  for (const name of fs.readdirSync(dir)) {
    const p = path.join(dir, name);
    if (fs.statSync(p).isDirectory()) {
      try { mp.FS.mkdir(dest + name); } catch (e) {}
      copy(p, dest + name + "/");
    } else {
      mp.FS.writeFile(dest + name, fs.readFileSync(p));
    }
  }
}
copy(flash, "/");
try {
  mp.runPython("import sys\nsys.path.insert(0, '/')\n" + fs.readFileSync(script, "utf8"));
} catch (e) {
  out += "EXCEPTION " + e.message + "\n";
}
process.stdout.write(out);
