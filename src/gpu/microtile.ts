// The register-tiled `_rt` entry points (matmul_bias, linear_backward, logits_ce) give each thread a 16×16
// micro-tile held in 64 named vec4 accumulators — written out in full because a private array is not kept in
// registers on llvmpipe (2× slower). WGSL has no macros, so the shaders carry one-line directives that this
// function expands when a shader is loaded (src/gpu/shaders.ts), instead of ~90 unrolled lines per entry point:
//   // @microtile16 rows xr = min(r + {i}u, rm) * K      → let xr0 … xr15 (row offsets, clamped)
//   // @microtile16 cols wr = min(c + {i}u, cm) * K      → let wr0 … wr15 (column offsets)
//   // @microtile16 acc                                   → var a{i}_{q} = vec4(0), i < 16, q < 4
//   // @microtile16 fma w = ldW(wr{i} + k); x = X[xr{i} + k]
//        → w0..w3 = the 16 column loads as vec4s, then per row i: x{i} = its load, 4 fma into a{i}_0..3
//   // @microtile16 store store_rt(r + {i}u, c, M, N, array<vec4<f32>, 4>({acc})) | acc = a{i}_{q} + bias[{q}]
//        → the 16 store calls, {acc} = the row's 4 accumulators (default `a{i}_{q}`) joined by ', '
// Within one k step the statements touch different accumulators, so their order does not change any sum.
const N = 16;
const rows = [...Array(N).keys()];
const quads = [0, 1, 2, 3];
const sub = (t: string, v: Record<string, number>) => t.replace(/\{([iq])\}/g, (m, k: string) => (k in v ? String(v[k]) : m));

export function expandMicroTiles(src: string, file: string): string {
  return src.replace(/^([ \t]*)\/\/ @microtile16 (\w+)(?: (.*))?$/gm, (_line, ind: string, kind: string, arg = '') => {
    const bad = (why: string) => new Error(`${file}: @microtile16 ${kind}: ${why}`);
    switch (kind) {
      case 'rows':
      case 'cols': {
        const m = /^(\w+) = (.+)$/.exec(arg.trim());
        if (!m) throw bad(`expected "<name> = <expression with {i}>", got "${arg}"`);
        return rows.map((i) => `${ind}let ${m[1]}${i} = ${sub(m[2], { i })};`).join('\n');
      }
      case 'acc':
        return rows.map((i) => ind + quads.map((q) => `var a${i}_${q} = vec4<f32>(0.0);`).join(' ')).join('\n');
      case 'fma': {
        const m = /^(\w+) = (.+); (\w+) = (.+)$/.exec(arg.trim());
        if (!m) throw bad(`expected "<w> = <column load with {i}>; <x> = <row load with {i}>", got "${arg}"`);
        const [, w, wLoad, x, xLoad] = m;
        const out = quads.map((q) => `${ind}let ${w}${q} = vec4<f32>(${quads.map((t) => sub(wLoad, { i: 4 * q + t })).join(', ')});`);
        for (const i of rows) {
          out.push(`${ind}let ${x}${i} = vec4<f32>(${sub(xLoad, { i })});`);
          out.push(ind + quads.map((q) => `a${i}_${q} = fma(${x}${i}, ${w}${q}, a${i}_${q});`).join(' '));
        }
        return out.join('\n');
      }
      case 'store': {
        const [call, accDef] = arg.split(' | ');
        const acc = accDef ? /^acc = (.+)$/.exec(accDef.trim())?.[1] : 'a{i}_{q}';
        if (!call.includes('{acc}') || !acc)
          throw bad(`expected "<call with {i} and {acc}>[ | acc = <expression with {i}, {q}>]", got "${arg}"`);
        return rows.map((i) => `${ind}${sub(call, { i }).replace('{acc}', quads.map((q) => sub(acc, { i, q })).join(', '))};`).join('\n');
      }
      default:
        throw bad('unknown directive (rows, cols, acc, fma, store)');
    }
  });
}
