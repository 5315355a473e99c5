// A minimal ONNX (protobuf) reader: where the float tensors' raw bytes lie in a ModelProto, so a merged
// export can overwrite them in place (same length) without re-serialising the graph. Only the fields
// on the path to an initializer are decoded (onnx.proto3):
//   ModelProto.graph = 7 · GraphProto.node = 1, .initializer = 5 · NodeProto.attribute = 5
//   AttributeProto.t = 5, .g = 6, .tensors = 10, .graphs = 11 (subgraphs of If / Loop: the merged decoder)
//   TensorProto.dims = 1, .data_type = 2, .name = 8, .raw_data = 9, .data_location = 14 (1 = external)

export interface OnnxInitializer {
  name: string;
  dims: number[];
  /** 1 = FLOAT, 10 = FLOAT16 (only these are reported) */
  dataType: 1 | 10;
  /** absolute byte offset and length of raw_data in the file */
  offset: number;
  length: number;
}

class Reader {
  constructor(
    readonly b: Uint8Array,
    readonly file: string,
  ) {}
  varint(pos: { p: number }): number {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (pos.p >= this.b.length) throw new Error(`${this.file}: protobuf truncated at byte ${pos.p}`);
      const c = this.b[pos.p++];
      v += (c & 0x7f) * mul; // dims and lengths fit in 2^53
      if (c < 0x80) return v;
      mul *= 128;
    }
    throw new Error(`${this.file}: bad varint at byte ${pos.p}`);
  }
  /** Calls fn(field, wireType, pos, end) for each field of the message in [start, end). */
  fields(start: number, end: number, fn: (field: number, wire: number, at: { p: number }, len: number) => void): void {
    const at = { p: start };
    while (at.p < end) {
      const key = this.varint(at);
      const field = Math.floor(key / 8);
      const wire = key & 7;
      if (wire === 0) {
        const vAt = { p: at.p };
        this.varint(at);
        fn(field, wire, vAt, at.p - vAt.p);
      } else if (wire === 2) {
        const len = this.varint(at);
        if (at.p + len > end) throw new Error(`${this.file}: field ${field} runs past its message (byte ${at.p}, length ${len})`);
        fn(field, wire, { p: at.p }, len);
        at.p += len;
      } else if (wire === 5) at.p += 4;
      else if (wire === 1) at.p += 8;
      else throw new Error(`${this.file}: unsupported protobuf wire type ${wire} at byte ${at.p}`);
    }
  }
}

/** Every FLOAT / FLOAT16 tensor with raw_data in the model: graph initializers, subgraphs, Constant attributes. */
export function findFloatInitializers(bytes: Uint8Array, file = 'model.onnx'): OnnxInitializer[] {
  const r = new Reader(bytes, file);
  const out: OnnxInitializer[] = [];
  const tensor = (start: number, len: number) => {
    const dims: number[] = [];
    let dataType = 0;
    let name = '';
    let raw: { offset: number; length: number } | null = null;
    let external = false;
    r.fields(start, start + len, (f, w, at, l) => {
      if (f === 1 && w === 0) dims.push(r.varint({ p: at.p }));
      else if (f === 1 && w === 2) {
        const p = { p: at.p };
        while (p.p < at.p + l) dims.push(r.varint(p));
      } else if (f === 2 && w === 0) dataType = r.varint({ p: at.p });
      else if (f === 8 && w === 2) name = new TextDecoder().decode(bytes.subarray(at.p, at.p + l));
      else if (f === 9 && w === 2) raw = { offset: at.p, length: l };
      else if (f === 14 && w === 0) external = r.varint({ p: at.p }) === 1;
    });
    if (external)
      throw new Error(
        `${file}: tensor ${name} keeps its data in an external file (not supported: export the model with its weights inside)`,
      );
    if ((dataType === 1 || dataType === 10) && raw) out.push({ name, dims, dataType, ...(raw as { offset: number; length: number }) });
  };
  const graph = (start: number, len: number) => {
    r.fields(start, start + len, (f, w, at, l) => {
      if (w !== 2) return;
      if (f === 5) tensor(at.p, l);
      else if (f === 1) node(at.p, l);
    });
  };
  const node = (start: number, len: number) => {
    r.fields(start, start + len, (f, w, at, l) => {
      if (f !== 5 || w !== 2) return;
      r.fields(at.p, at.p + l, (af, aw, aat, al) => {
        if (aw !== 2) return;
        if (af === 5 || af === 10) tensor(aat.p, al);
        else if (af === 6 || af === 11) graph(aat.p, al);
      });
    });
  };
  let sawGraph = false;
  r.fields(0, bytes.length, (f, w, at, l) => {
    if (f === 7 && w === 2) {
      sawGraph = true;
      graph(at.p, l);
    }
  });
  if (!sawGraph) throw new Error(`${file}: no graph in this file (not an ONNX model?)`);
  return out;
}
