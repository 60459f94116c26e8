// One DWG to DXF with LibreDWG (WebAssembly build of @mlightcad/libredwg-web), for
// documents/dwg_readers.py. One process per file: after a WebAssembly abort every later call
// in the same process fails, so a process never serves a second file.
//
//   node --disable-wasm-trap-handler --liftoff-only dwg2dxf.mjs INPUT.dwg
//
// stdout: one JSON line {"status", "error_code", "dwg_version", "entities": {TYPE: count}},
// then the DXF bytes. LibreDWG's own messages go to stderr. Exit 0 when a DXF was written.
import { readFileSync } from 'node:fs';
import { LibreDwg, Dwg_File_Type, Dwg_Object_Type } from '@mlightcad/libredwg-web';

console.log = console.error; // stdout carries the result only; the wrapper logs with console.log
const CRITICAL = 128; // LibreDWG: error codes from 128 up mean no usable drawing
const [, , input] = process.argv;
const wasmDir = new URL('./node_modules/@mlightcad/libredwg-web/wasm/', import.meta.url).pathname;
const lib = await LibreDwg.create(wasmDir);
const wasm = lib.wasmInstance;
const content = readFileSync(input);

// Entity types as the DWG stores them, counted over every space (layouts and blocks), so the
// caller can tell what the DXF writer left out.
function entityCounts() {
  const data = lib.dwg_read_data(content.buffer.slice(content.byteOffset, content.byteOffset + content.byteLength), Dwg_File_Type.DWG);
  if (!data) return {};
  const counts = {};
  const total = wasm.dwg_get_num_objects(data);
  for (let i = 0; i < total; i++) {
    const obj = wasm.dwg_get_object(data, i);
    if (!obj || wasm.dwg_object_get_supertype(obj) !== 0) continue; // 0: entity
    const fixed = wasm.dwg_object_get_fixedtype(obj);
    let name = Dwg_Object_Type[fixed]?.replace(/^DWG_TYPE_/, '');
    if (!name || name === 'UNKNOWN_ENT') {
      const type = wasm.dwg_object_get_type(obj);
      name = (type >= 500 && lib.dwg_get_class(data, type - 500)?.dxfname) || `TYPE_${type}`;
    }
    counts[name] = (counts[name] ?? 0) + 1;
  }
  lib.dwg_free(data);
  return counts;
}

wasm.FS.writeFile('in.dwg', new Uint8Array(content));
const code = wasm.dwg_write_dxf('in.dwg', 'out.dxf');
const written = wasm.FS.analyzePath('out.dxf', false).exists;
const dxf = written ? wasm.FS.readFile('out.dxf') : new Uint8Array();
wasm.FS.unlink('in.dwg');
if (written) wasm.FS.unlink('out.dxf');
const ok = written && dxf.length > 0 && code < CRITICAL;
const head = {
  status: ok ? 'ok' : 'failed',
  error_code: code,
  dwg_version: content.subarray(0, 6).toString('latin1'),
  entities: ok ? entityCounts() : {},
};
process.stdout.write(JSON.stringify(head) + '\n');
if (ok) process.stdout.write(dxf);
process.exitCode = ok ? 0 : 3;
