'use strict';
// Loads the gaussian-kl WebAssembly module (wasm32-unknown-unknown, simd128)
// into Node, computes the full-rank KL of every oracle case, and checks:
//  1. f64 and f32 results are bit-identical to the native build's
//     (examples/oracle_kl.rs): same IEEE arithmetic, same libm, same order;
//  2. every packed layout gives the bit-identical result (the packing is
//     redone here in JavaScript);
//  3. sanity against the PyTorch float64 values: relative difference at
//     most 1e-9 (f64) and 1e-3 (f32). These gates catch a wrong buffer
//     layout or export, not rounding: the kernels' accuracy is asserted
//     natively by tests/suite/accuracy.rs, and (1) ties wasm to native exactly;
//  4. shape errors come back as a status code, not a trap.
// Usage: node wasm/check.js <module.wasm> <oracle.json> <native.json>
const fs = require('fs');
const [wasmPath, oraclePath, nativePath] = process.argv.slice(2);
const oracle = JSON.parse(fs.readFileSync(oraclePath, 'utf8')).full;
const native = JSON.parse(fs.readFileSync(nativePath, 'utf8'));

// Row-major packed (PyTorch) → the other layouts' orders.
function repack(d, rm, layout) {
  const out = new Array(rm.length);
  const rs = (i) => (i * (i + 1)) / 2;
  for (let i = 0; i < d; i++) {
    for (let j = 0; j <= i; j++) {
      let k;
      if (layout === 0) k = rs(i) + j;
      else if (layout === 1) k = j * d - (j * (j - 1)) / 2 + (i - j);
      else k = i === j ? i : d + (i * (i - 1)) / 2 + j;
      out[k] = rm[rs(i) + j];
    }
  }
  return out;
}

WebAssembly.instantiate(fs.readFileSync(wasmPath), {}).then(({ instance: { exports: e } }) => {
  const len = e.buffer_len();
  const views = {
    f64: () => new Float64Array(e.memory.buffer, e.buffer_f64(), len),
    f32: () => new Float32Array(e.memory.buffer, e.buffer_f32(), len),
  };
  const kl = (prec, c, layout) => {
    const d = c.d, buf = views[prec](), t = (d * (d + 1)) / 2;
    buf.set(c.mean1, 0);
    buf.set(repack(d, c.packed1, layout), d);
    buf.set(c.mean2, d + t);
    buf.set(repack(d, c.packed2, layout), 2 * d + t);
    const v = prec === 'f64' ? e.kl_f64(d, layout, 0) : e.kl_f32(d, layout, 0);
    if (e.status() !== 0) throw new Error(`case d=${d}: status ${e.status()}`);
    return v;
  };
  let passed = 0, failed = 0;
  const check = (ok, what) => {
    if (ok) passed++;
    else { failed++; console.log('FAIL', what); }
  };
  let worst64 = 0, worst32 = 0;
  oracle.forEach((c, i) => {
    const v64 = kl('f64', c, 0), v32 = kl('f32', c, 0);
    check(Object.is(v64, native.f64[i]), `case ${i} (d=${c.d}) f64: wasm ${v64} != native ${native.f64[i]}`);
    check(Object.is(v32, native.f32[i]), `case ${i} (d=${c.d}) f32: wasm ${v32} != native ${native.f32[i]}`);
    for (const layout of [1, 2]) {
      check(Object.is(kl('f64', c, layout), v64), `case ${i} f64 layout ${layout}`);
      check(Object.is(kl('f32', c, layout), v32), `case ${i} f32 layout ${layout}`);
    }
    const r64 = Math.abs(v64 - c.kl) / Math.abs(c.kl), r32 = Math.abs(v32 - c.kl) / Math.abs(c.kl);
    worst64 = Math.max(worst64, r64); worst32 = Math.max(worst32, r32);
    check(r64 <= 1e-9, `case ${i} (d=${c.d}) f64 vs PyTorch: relative difference ${r64}`);
    check(r32 <= 1e-3, `case ${i} (d=${c.d}) f32 vs PyTorch: relative difference ${r32}`);
  });
  // KL(p‖N(0, I)) for p = N(0, I): exactly 0.
  views.f64().fill(0, 0, 2 + 3);
  check(e.kl_std_normal_f64(2, 0, 0) === 0 && e.status() === 0, 'kl_std_normal_f64(N(0, I)) = 0');
  // Errors are reported, not trapped: d too large for the buffer, zero plain diagonal.
  check(Number.isNaN(e.kl_f64(65, 0, 0)) && e.status() === 4, 'd = 65 → DimensionTooLarge');
  views.f64().fill(0, 0, 2 * 2 + 2 * 3);
  check(Number.isNaN(e.kl_f64(2, 0, 1)) && e.status() === 5, 'zero plain diagonal → NonPositiveDiagonal');
  console.log(`${oracle.length} oracle cases, d = ${oracle[0].d}..${oracle[oracle.length - 1].d}; ` +
    `max relative difference to PyTorch float64: f64 ${worst64.toExponential(2)}, f32 ${worst32.toExponential(2)}`);
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}).catch((err) => { console.error(err); process.exit(101); });
