// The emulated board's filesystems for board.mjs: the board's flash (read-write) and the
// shims (read-only), both host directories.
import fs from "node:fs";
import path from "node:path";

export function makeSenfs(cfg) {
  // ---- filesystems: the board's flash (read-write) and the shims (read-only), both host
  // directories, reached through a Python-level VFS (_sen.SenVfs) so errno values are the
  // ESP32 port's, not Emscripten's.
  const ERRNO = { EPERM: 1, ENOENT: 2, EIO: 5, EBADF: 9, EACCES: 13, EEXIST: 17, ENOTDIR: 20, EISDIR: 21,
    EINVAL: 22, ENOSPC: 28, EROFS: 30, ENOTEMPTY: 39, ENAMETOOLONG: 36 };
  const roots = [[cfg.fs_root], cfg.shim_cache ? [cfg.shim_cache, ...cfg.shim_dirs] : cfg.shim_dirs];
  const openFiles = new Map();
  let nextHandle = 1;
  function errOf(e) {
    return ERRNO[e.code] || 5;
  }
  function resolveIn(rootId, p, mustExist) {
    const rel = path.posix.normalize("/" + p);
    const dirs = roots[rootId];
    if (rootId === 1 && cfg.shim_cache && rel.endsWith(".py") &&
        fs.existsSync(path.join(cfg.shim_cache, rel.slice(0, -3) + ".mpy"))) {
      // compiled shim present: hide the source so the importer takes the bytecode
      throw Object.assign(new Error("hidden"), { code: "ENOENT" });
    }
    if (mustExist && dirs.length > 1) {
      for (const d of dirs) {
        const full = path.join(d, rel);
        if (fs.existsSync(full)) return full;
      }
    }
    return path.join(dirs[0], rel);
  }
  function wrap(fn) {
    return (...args) => {
      try {
        const v = fn(...args);
        return JSON.stringify({ v: v === undefined ? null : v });
      } catch (e) {
        if (e.code) return JSON.stringify({ e: errOf(e) });
        if (typeof e.errno_ === "number") return JSON.stringify({ e: e.errno_ });
        throw e;
      }
    };
  }
  function erofs() {
    const e = new Error("read-only");
    e.errno_ = ERRNO.EROFS;
    return e;
  }
  function statTuple(st) {
    const t = Math.max(0, Math.floor(st.mtimeMs / 1000) - 946684800); // ESP32 epoch is 2000
    return [st.isDirectory() ? 0x4000 : 0x8000, 0, 0, 0, 0, 0, st.isDirectory() ? 0 : st.size, t, t, t];
  }
  function dirBytes(d) {
    let n = 0;
    for (const ent of fs.readdirSync(d, { withFileTypes: true })) {
      const f = path.join(d, ent.name);
      if (ent.isDirectory()) n += 4096 + dirBytes(f);
      else n += Math.ceil(fs.statSync(f).size / 4096) * 4096 || 4096;
    }
    return n;
  }
  const FLAGS = { r: "r", w: "w", a: "a", x: "wx", "r+": "r+", "w+": "w+", "a+": "a+" };
  const senfs = {
    stat: wrap((r, p) => statTuple(fs.statSync(resolveIn(r, p, true)))),
    listdir: wrap((r, p) => {
      const seen = new Map();
      const dirs = roots[r];
      let found = false;
      for (const d of dirs) {
        const full = path.join(d, path.posix.normalize("/" + p));
        let ents;
        try {
          ents = fs.readdirSync(full, { withFileTypes: true });
        } catch (e) {
          if (e.code === "ENOENT" && dirs.length > 1) continue;
          throw e;
        }
        found = true;
        for (const ent of ents) {
          if (seen.has(ent.name) || (r === 0 && p === "/" && ent.name === ".sen")) continue;
          const isDir = ent.isDirectory();
          const size = isDir ? 0 : fs.statSync(path.join(full, ent.name)).size;
          seen.set(ent.name, [ent.name, isDir ? 0x4000 : 0x8000, 0, size]);
        }
      }
      if (!found) fs.readdirSync(path.join(dirs[0], p)); // raises ENOENT
      return [...seen.values()];
    }),
    mkdir: wrap((r, p) => {
      if (r) throw erofs();
      fs.mkdirSync(resolveIn(r, p));
    }),
    rmdir: wrap((r, p) => {
      if (r) throw erofs();
      if (path.posix.normalize("/" + p) === "/") throw Object.assign(new Error(), { errno_: ERRNO.EPERM });
      fs.rmdirSync(resolveIn(r, p));
    }),
    remove: wrap((r, p) => {
      if (r) throw erofs();
      const f = resolveIn(r, p);
      if (fs.statSync(f).isDirectory()) throw Object.assign(new Error(), { errno_: ERRNO.EISDIR });
      fs.unlinkSync(f);
    }),
    rename: wrap((r, a, b) => {
      if (r) throw erofs();
      fs.renameSync(resolveIn(r, a), resolveIn(r, b));
    }),
    statvfs: wrap((r) => {
      const blocks = Math.floor(cfg.fs_bytes / 4096);
      const used = r ? blocks : Math.min(blocks, Math.ceil(dirBytes(roots[0][0]) / 4096) + 2);
      return [4096, 4096, blocks, blocks - used, blocks - used, 0, 0, 0, 0, 255];
    }),
    open: wrap((r, p, mode) => {
      const m = mode.replace(/[bt]/g, "");
      const flags = FLAGS[m];
      if (!flags) throw Object.assign(new Error(), { errno_: ERRNO.EINVAL });
      if (r && flags !== "r") throw erofs();
      const f = resolveIn(r, p, true);
      if (fs.existsSync(f) && fs.statSync(f).isDirectory()) throw Object.assign(new Error(), { errno_: ERRNO.EISDIR });
      const fd = fs.openSync(f, flags);
      const h = nextHandle++;
      openFiles.set(h, { fd, pos: flags[0] === "a" ? fs.fstatSync(fd).size : 0, append: flags[0] === "a" });
      return h;
    }),
    read: wrap((h, n) => {
      const f = openFiles.get(h);
      if (!f) throw Object.assign(new Error(), { errno_: ERRNO.EBADF });
      if (n < 0) n = Math.max(0, fs.fstatSync(f.fd).size - f.pos);
      const buf = Buffer.alloc(n);
      const got = n ? fs.readSync(f.fd, buf, 0, n, f.pos) : 0;
      f.pos += got;
      return buf.subarray(0, got).toString("hex");
    }),
    write: wrap((h, hex) => {
      const f = openFiles.get(h);
      if (!f) throw Object.assign(new Error(), { errno_: ERRNO.EBADF });
      const buf = Buffer.from(hex, "hex");
      if (f.append) f.pos = fs.fstatSync(f.fd).size;
      const n = fs.writeSync(f.fd, buf, 0, buf.length, f.pos);
      f.pos += n;
      return n;
    }),
    seek: wrap((h, off, whence) => {
      const f = openFiles.get(h);
      if (!f) throw Object.assign(new Error(), { errno_: ERRNO.EBADF });
      const base = whence === 0 ? 0 : whence === 1 ? f.pos : fs.fstatSync(f.fd).size;
      f.pos = Math.max(0, base + off);
      return f.pos;
    }),
    close: wrap((h) => {
      const f = openFiles.get(h);
      if (f) {
        fs.closeSync(f.fd);
        openFiles.delete(h);
      }
    }),
  };
  function closeAllFiles() {
    for (const f of openFiles.values()) {
      try {
        fs.closeSync(f.fd);
      } catch (e) {}
    }
    openFiles.clear();
  }
  return { senfs, closeAllFiles };
}
