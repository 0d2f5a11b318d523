// Protobuf wire format, just enough for ONNX: varints, length-delimited fields, fixed32/64.
// Every read is bounds-checked so that a truncated or corrupted file raises an
// OnnxFormatError instead of reading garbage or looping forever.

export class OnnxFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OnnxFormatError';
  }
}

export const enum WireType {
  Varint = 0,
  Fixed64 = 1,
  LengthDelimited = 2,
  StartGroup = 3,
  EndGroup = 4,
  Fixed32 = 5,
}

export class WireReader {
  pos: number;
  constructor(readonly buf: Uint8Array, start = 0, readonly end = buf.length, readonly what = 'message') {
    this.pos = start;
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  private fail(detail: string): never {
    throw new OnnxFormatError(`corrupt or truncated ONNX data in ${this.what} at byte ${this.pos}: ${detail}`);
  }

  /** Reads a varint as a bigint (exact for the full 64-bit range). */
  varintBig(): bigint {
    let result = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) this.fail('varint runs past the end');
      const b = this.buf[this.pos++];
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return BigInt.asIntN(64, result);
      shift += 7n;
    }
    this.fail('varint longer than 10 bytes');
  }

  /** Reads a varint that must fit a JS number exactly (lengths, tags, enums, dims). */
  varint(): number {
    // Fast path for the common 1-4 byte case.
    let result = 0;
    let shift = 0;
    const start = this.pos;
    for (let i = 0; i < 4; i++) {
      if (this.pos >= this.end) this.fail('varint runs past the end');
      const b = this.buf[this.pos++];
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
      shift += 7;
    }
    this.pos = start;
    const big = this.varintBig();
    if (big > BigInt(Number.MAX_SAFE_INTEGER) || big < BigInt(Number.MIN_SAFE_INTEGER)) {
      this.fail(`integer ${big} does not fit a safe number`);
    }
    return Number(big);
  }

  tag(): { field: number; wire: WireType } {
    const t = this.varint();
    const field = Math.floor(t / 8);
    const wire = (t & 7) as WireType;
    if (field === 0) this.fail('field number 0');
    return { field, wire };
  }

  /** Returns [start, end) of a length-delimited payload and advances past it. */
  lengthDelimited(): [number, number] {
    const len = this.varint();
    if (len < 0 || this.pos + len > this.end) this.fail(`length ${len} runs past the end`);
    const start = this.pos;
    this.pos += len;
    return [start, this.pos];
  }

  bytes(): Uint8Array {
    const [s, e] = this.lengthDelimited();
    return this.buf.subarray(s, e);
  }

  string(): string {
    return textDecoder.decode(this.bytes());
  }

  fixed32(): Uint8Array {
    if (this.pos + 4 > this.end) this.fail('fixed32 runs past the end');
    const b = this.buf.subarray(this.pos, this.pos + 4);
    this.pos += 4;
    return b;
  }

  float(): number {
    const b = this.fixed32();
    return new DataView(b.buffer, b.byteOffset, 4).getFloat32(0, true);
  }

  fixed64(): Uint8Array {
    if (this.pos + 8 > this.end) this.fail('fixed64 runs past the end');
    const b = this.buf.subarray(this.pos, this.pos + 8);
    this.pos += 8;
    return b;
  }

  /** Skips a field's payload; returns the raw bytes of the whole field (tag included). */
  skip(fieldStart: number, wire: WireType): Uint8Array {
    switch (wire) {
      case WireType.Varint:
        this.varintBig();
        break;
      case WireType.Fixed64:
        this.fixed64();
        break;
      case WireType.LengthDelimited:
        this.lengthDelimited();
        break;
      case WireType.Fixed32:
        this.fixed32();
        break;
      default:
        this.fail(`unsupported wire type ${wire}`);
    }
    return this.buf.subarray(fieldStart, this.pos);
  }

  /** Reads a repeated scalar field that may be packed or not: calls `one` per element. */
  repeated(wire: WireType, scalarWire: WireType, one: (r: WireReader) => void): void {
    if (wire === WireType.LengthDelimited && scalarWire !== WireType.LengthDelimited) {
      const [s, e] = this.lengthDelimited();
      const sub = new WireReader(this.buf, s, e, this.what);
      while (!sub.done) one(sub);
    } else if (wire === scalarWire) {
      one(this);
    } else {
      this.fail(`unexpected wire type ${wire}`);
    }
  }
}

export const textDecoder = new TextDecoder('utf-8', { fatal: false });
export const textEncoder = new TextEncoder();

/** Growable output buffer with protobuf field writers. */
export class WireWriter {
  private chunks: Uint8Array[] = [];
  private cur: Uint8Array;
  private curLen = 0;
  private total = 0;

  /** Nested messages start small: a graph has thousands of them. */
  constructor(initial = 256) {
    this.cur = new Uint8Array(initial);
  }

  get length(): number {
    return this.total + this.curLen;
  }

  private ensure(n: number): void {
    if (this.curLen + n <= this.cur.length) return;
    const next = Math.min(1 << 16, this.cur.length * 4);
    this.flushCur(Math.max(next, n));
  }

  private flushCur(nextSize = 1 << 16): void {
    if (this.curLen > 0) {
      this.chunks.push(this.cur.subarray(0, this.curLen));
      this.total += this.curLen;
    }
    this.cur = new Uint8Array(nextSize);
    this.curLen = 0;
  }

  raw(bytes: Uint8Array): void {
    if (bytes.length > 4096) {
      this.flushCur();
      this.chunks.push(bytes);
      this.total += bytes.length;
      return;
    }
    this.ensure(bytes.length);
    this.cur.set(bytes, this.curLen);
    this.curLen += bytes.length;
  }

  varint(v: number | bigint): void {
    this.ensure(10);
    if (typeof v === 'number' && v >= 0 && v < 2 ** 31) {
      while (v >= 0x80) {
        this.cur[this.curLen++] = (v & 0x7f) | 0x80;
        v >>>= 7;
      }
      this.cur[this.curLen++] = v;
      return;
    }
    let b = BigInt.asUintN(64, BigInt(v));
    while (b >= 0x80n) {
      this.cur[this.curLen++] = Number(b & 0x7fn) | 0x80;
      b >>= 7n;
    }
    this.cur[this.curLen++] = Number(b);
  }

  tag(field: number, wire: WireType): void {
    this.varint(field * 8 + wire);
  }

  uint(field: number, v: number | bigint): void {
    this.tag(field, WireType.Varint);
    this.varint(v);
  }

  bytesField(field: number, bytes: Uint8Array): void {
    this.tag(field, WireType.LengthDelimited);
    this.varint(bytes.length);
    this.raw(bytes);
  }

  stringField(field: number, s: string): void {
    this.bytesField(field, textEncoder.encode(s));
  }

  floatField(field: number, v: number): void {
    this.tag(field, WireType.Fixed32);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.raw(b);
  }

  /** Writes a nested message produced by `body`. */
  message(field: number, body: (w: WireWriter) => void): void {
    const sub = new WireWriter();
    body(sub);
    this.tag(field, WireType.LengthDelimited);
    this.varint(sub.length);
    for (const c of sub.finishChunks()) this.raw(c);
  }

  packedVarints(field: number, values: ArrayLike<number | bigint>): void {
    if (values.length === 0) return;
    const sub = new WireWriter();
    for (let i = 0; i < values.length; i++) sub.varint(values[i]);
    this.bytesField(field, sub.finish());
  }

  finishChunks(): Uint8Array[] {
    this.flushCur();
    return this.chunks;
  }

  finish(): Uint8Array {
    const chunks = this.finishChunks();
    if (chunks.length === 1) return chunks[0];
    const out = new Uint8Array(this.total);
    let o = 0;
    for (const c of chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }
}
