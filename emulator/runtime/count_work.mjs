// Make the MicroPython WebAssembly module count its own work, for the emulator's virtual
// CPU time (emulator/work_counter.py): a 64-bit counter goes up by one at every function
// entry and every loop iteration of the interpreter's C code (binaryen's log-execution
// pass, with its logging import replaced by an in-module increment and inlined), and
// `sen_work` exports it. Counting is exact and the same on any host, under any load.
//
// usage: node count_work.mjs IN.wasm OUT.wasm NODE_MODULES
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [src, dst, nodeModules] = process.argv.slice(2);
const { default: binaryen } = await import(pathToFileURL(path.join(nodeModules, "binaryen", "index.js")).href);
const mod = binaryen.readBinary(fs.readFileSync(src));
mod.setFeatures(mod.getFeatures());
mod.runPasses(["log-execution"]);
mod.removeFunction("log_execution");
mod.addGlobal("sen_work_count", binaryen.i64, true, mod.i64.const(0n));
const inc = mod.global.set("sen_work_count",
  mod.i64.add(mod.global.get("sen_work_count", binaryen.i64), mod.i64.const(1n)));
mod.addFunction("log_execution", binaryen.createType([binaryen.i32]), binaryen.none, [], inc);
// f64 holds the count exactly up to 2^53 (about 10^6 CPU-years of firmware)
mod.addFunction("sen_work", binaryen.none, binaryen.f64, [],
  mod.f64.convert_u.i64(mod.global.get("sen_work_count", binaryen.i64)));
mod.addFunctionExport("sen_work", "sen_work");
binaryen.setAlwaysInlineMaxSize(8);
mod.runPasses(["inlining"]);
if (!mod.validate()) {
  console.error("count_work: the instrumented module does not validate");
  process.exit(2);
}
fs.writeFileSync(dst, mod.emitBinary());
