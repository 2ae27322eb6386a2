/**
 * PyTorch's torch.save files (a zip of data.pkl and raw storages, torch-zip.ts) read as a state
 * dict, for pyvene's intkey_*.bin. Pickle is a program for a stack machine that may import and
 * call anything, so this is not an unpickler but a small interpreter of the opcodes a state dict
 * needs: the only names it resolves are collections.OrderedDict, torch's tensor rebuilders and
 * storage types, and those are not called but interpreted here. Any other name or opcode is
 * refused by name before anything is built; nothing in the file is ever executed.
 */
import { IntTensor, Tensor } from "../tensor/index.js";
import { decodeTensor, elementBytes, type LoadableDtype } from "./dtypes.js";
import { readZipMembers } from "./torch-zip.js";
import { readFile } from "node:fs/promises";

/** The storage types a tensor may live in, by PyTorch's name, as safetensors dtypes. */
const STORAGE_DTYPES: Readonly<Record<string, LoadableDtype>> = {
  DoubleStorage: "F64",
  FloatStorage: "F32",
  HalfStorage: "F16",
  BFloat16Storage: "BF16",
  LongStorage: "I64",
  IntStorage: "I32",
  ShortStorage: "I16",
  CharStorage: "I8",
  ByteStorage: "U8",
  BoolStorage: "BOOL",
};
const ORDERED_DICT = "collections.OrderedDict";
const REBUILD_TENSOR = "torch._utils._rebuild_tensor_v2";
const REBUILD_PARAMETER = "torch._utils._rebuild_parameter";

type Global = { global: string };
type Storage = { storage: LoadableDtype; key: string; numel: number };
type Dict = { dict: Map<string | number, Value> };
type Value =
  | null
  | boolean
  | number
  | string
  | Value[]
  | { tuple: Value[] }
  | Dict
  | Global
  | Storage
  | Tensor
  | IntTensor;
const MARK = Symbol("mark");

/** The tensors saved by torch.save(state_dict) at `path`, by state-dict name. */
export async function readTorchStateDict(path: string): Promise<Map<string, Tensor | IntTensor>> {
  return parseTorchStateDict(new Uint8Array(await readFile(path)), path);
}

/** The tensors of a torch.save archive held in `bytes`; `source` names it in errors. */
export function parseTorchStateDict(bytes: Uint8Array, source: string): Map<string, Tensor | IntTensor> {
  const members = readZipMembers(bytes, source);
  const pickleName = [...members.keys()].find((name) => /^[^/]+\/data\.pkl$/.test(name));
  if (pickleName === undefined)
    throw new Error(`${source}: the archive has no <folder>/data.pkl, so torch.save did not write it`);
  const folder = pickleName.slice(0, -"data.pkl".length);
  const order = members.get(`${folder}byteorder`);
  if (order !== undefined && new TextDecoder().decode(order) !== "little")
    throw new Error(`${source}: storages saved big-endian are not supported`);
  const storage = (key: string): Uint8Array | undefined => members.get(`${folder}data/${key}`);
  const root = unpickle(members.get(pickleName)!, storage, `${source}: data.pkl`);
  if (root === null || typeof root !== "object" || !("dict" in root))
    throw new Error(`${source}: data.pkl holds ${describe(root)}, not a state dict`);
  const tensors = new Map<string, Tensor | IntTensor>();
  for (const [name, value] of root.dict) {
    if (typeof name !== "string" || !(value instanceof Tensor || value instanceof IntTensor))
      throw new Error(`${source}: state-dict entry ${JSON.stringify(name)} is ${describe(value)}, not a tensor`);
    tensors.set(name, value);
  }
  return tensors;
}

/** Runs the restricted pickle machine over `code`; `storage` gives the bytes of data/<key>. */
function unpickle(code: Uint8Array, storage: (key: string) => Uint8Array | undefined, where: string): Value {
  const view = new DataView(code.buffer, code.byteOffset, code.byteLength);
  const stack: (Value | typeof MARK)[] = [];
  const memo = new Map<number, Value>();
  const decoded = new Map<string, Tensor | IntTensor>();
  let at = 0;
  const fail = (why: string): never => {
    throw new Error(`${where}: ${why}`);
  };
  const take = (n: number): number => {
    if (at + n > code.byteLength) fail(`the pickle ends inside an opcode at byte ${at}`);
    at += n;
    return at - n;
  };
  const pop = (): Value => {
    const v = stack.pop();
    if (v === undefined || v === MARK) return fail("the pickle pops past its stack or a mark");
    return v;
  };
  const popMark = (): Value[] => {
    const mark = stack.lastIndexOf(MARK);
    if (mark < 0) fail("the pickle has no mark to pop to");
    return stack.splice(mark).slice(1) as Value[];
  };
  const text = (n: number): string => new TextDecoder().decode(code.subarray(take(n), at));
  const top = (): Value => {
    const v = stack.at(-1);
    return v === undefined || v === MARK ? fail("the pickle's stack is empty") : v;
  };
  const setItems = (dict: Value, items: Value[]): void => {
    if (dict === null || typeof dict !== "object" || !("dict" in dict)) fail(`SETITEM on ${describe(dict)}`);
    if (items.length % 2 !== 0) fail("SETITEMS with a key and no value");
    for (let i = 0; i < items.length; i += 2) {
      const key = items[i];
      if (typeof key !== "string" && typeof key !== "number") fail(`a dict key is ${describe(key)}`);
      (dict as Dict).dict.set(key as string | number, items[i + 1]);
    }
  };

  for (;;) {
    const opAt = take(1);
    const op = code[opAt];
    switch (op) {
      case 0x80: // PROTO
        if (code[take(1)] > 5) fail(`pickle protocol ${code[at - 1]} is newer than any torch.save writes`);
        break;
      case 0x2e: // STOP
        return pop();
      case 0x28: // MARK
        stack.push(MARK);
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
      case 0x89: // NEWFALSE
        stack.push(op === 0x88);
        break;
      case 0x4b: // BININT1
        stack.push(code[take(1)]);
        break;
      case 0x4d: // BININT2
        stack.push(view.getUint16(take(2), true));
        break;
      case 0x4a: // BININT
        stack.push(view.getInt32(take(4), true));
        break;
      case 0x8a: // LONG1
        stack.push(readLong(code.subarray(take(code[take(1)]), at), fail));
        break;
      case 0x47: // BINFLOAT
        stack.push(view.getFloat64(take(8), false));
        break;
      case 0x58: // BINUNICODE
        stack.push(text(view.getUint32(take(4), true)));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(text(code[take(1)]));
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push({ tuple: [] });
        break;
      case 0x85: // TUPLE1
      case 0x86: // TUPLE2
      case 0x87: {
        // TUPLE3
        const items = Array.from({ length: op - 0x84 }, pop).reverse();
        stack.push({ tuple: items });
        break;
      }
      case 0x74: // TUPLE
        stack.push({ tuple: popMark() });
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x61: // APPEND
      case 0x65: {
        // APPENDS
        const items = op === 0x61 ? [pop()] : popMark();
        const list = top();
        if (!Array.isArray(list)) fail(`APPEND to ${describe(list)}`);
        (list as Value[]).push(...items);
        break;
      }
      case 0x7d: // EMPTY_DICT
        stack.push({ dict: new Map() });
        break;
      case 0x73: {
        // SETITEM
        const value = pop();
        const key = pop();
        setItems(top(), [key, value]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x71: // BINPUT
      case 0x72: // LONG_BINPUT
        memo.set(op === 0x71 ? code[take(1)] : view.getUint32(take(4), true), top());
        break;
      case 0x68: // BINGET
      case 0x6a: {
        // LONG_BINGET
        const index = op === 0x68 ? code[take(1)] : view.getUint32(take(4), true);
        stack.push(memo.has(index) ? memo.get(index)! : fail(`BINGET of memo entry ${index}, never put`));
        break;
      }
      case 0x63: // GLOBAL
        stack.push(allowedGlobal(readLine(), readLine(), fail));
        break;
      case 0x51: // BINPERSID
        stack.push(persistentStorage(pop(), storage, fail));
        break;
      case 0x52: {
        // REDUCE
        const args = pop();
        stack.push(reduce(pop(), args, storage, decoded, fail));
        break;
      }
      case 0x62: {
        // BUILD: torch.save sets the OrderedDict's `_metadata` (module versions); the state is not needed.
        const state = pop();
        const target = top();
        if (!(isDict(target) && isDict(state))) fail(`BUILD of ${describe(target)} from ${describe(state)}`);
        break;
      }
      default:
        fail(`opcode 0x${op.toString(16).padStart(2, "0")} at byte ${opAt} is not one a state dict needs; refused`);
    }
  }

  function readLine(): string {
    const end = code.indexOf(0x0a, at);
    if (end < 0) fail("a GLOBAL name has no end of line");
    return text(end - at + 1).slice(0, -1);
  }
}

function allowedGlobal(module: string, name: string, fail: (why: string) => never): Global {
  const full = `${module}.${name}`;
  const allowed =
    full === ORDERED_DICT ||
    full === REBUILD_TENSOR ||
    full === REBUILD_PARAMETER ||
    (module === "torch" && Object.hasOwn(STORAGE_DTYPES, name));
  return allowed ? { global: full } : fail(`GLOBAL ${full} is not a tensor or plain container; refused`);
}

/** torch.save's persistent id ('storage', storage type, key, location, numel), checked against the archive. */
function persistentStorage(
  pid: Value,
  storage: (key: string) => Uint8Array | undefined,
  fail: (why: string) => never,
): Storage {
  const items = isTuple(pid) ? pid.tuple : [];
  const [kind, type, key, , numel] = items;
  if (items.length !== 5 || kind !== "storage" || !isGlobal(type) || typeof key !== "string" || !isCount(numel))
    return fail(`a persistent id is ${describe(pid)}, not a storage`);
  const dtype = STORAGE_DTYPES[type.global.slice("torch.".length)];
  if (dtype === undefined) return fail(`persistent storage type ${type.global} is not a storage type`);
  const bytes = storage(key);
  if (bytes === undefined) return fail(`storage data/${key} is not in the archive`);
  if (bytes.byteLength !== numel * elementBytes(dtype)!)
    fail(
      `storage data/${key} has ${bytes.byteLength} bytes, not the ${numel * elementBytes(dtype)!} of ${numel} ${dtype}`,
    );
  return { storage: dtype, key, numel };
}

/** A call of one of the allowed globals, interpreted: nothing named in the file is run. */
function reduce(
  callable: Value,
  args: Value,
  storage: (key: string) => Uint8Array | undefined,
  decoded: Map<string, Tensor | IntTensor>,
  fail: (why: string) => never,
): Value {
  if (!isGlobal(callable) || !isTuple(args)) return fail(`REDUCE of ${describe(callable)}`);
  const a = args.tuple;
  if (callable.global === ORDERED_DICT) {
    if (a.length > 0) fail("collections.OrderedDict called with arguments");
    return { dict: new Map() };
  }
  if (callable.global === REBUILD_PARAMETER) {
    if (!(a[0] instanceof Tensor || a[0] instanceof IntTensor)) fail(`${REBUILD_PARAMETER} of ${describe(a[0])}`);
    return a[0];
  }
  if (callable.global !== REBUILD_TENSOR) return fail(`REDUCE of ${callable.global}, which is not callable here`);
  const [source, offset, size, stride] = a;
  const shape = isTuple(size) ? size.tuple : [];
  const strides = isTuple(stride) ? stride.tuple : [];
  if (
    !isStorage(source) ||
    !isCount(offset) ||
    !shape.every(isCount) ||
    !strides.every(isCount) ||
    shape.length !== strides.length
  )
    return fail(`${REBUILD_TENSOR} with arguments ${describe(args)}`);
  const sizes = shape as number[];
  const steps = strides as number[];
  const count = sizes.reduce((p, s) => p * s, 1);
  const last = offset + sizes.reduce((p, s, d) => p + (s - 1) * steps[d], 0);
  if (count > 0 && last >= source.numel)
    fail(`a tensor of shape [${sizes}] (strides [${steps}], offset ${offset}) reaches past storage data/${source.key}`);
  let whole = decoded.get(source.key);
  if (whole === undefined) {
    // A copy: decodeTensor views its bytes in place, which needs an 8-aligned start the zip does not give.
    whole = decodeTensor(source.storage, [source.numel], storage(source.key)!.slice(), `storage data/${source.key}`);
    decoded.set(source.key, whole);
  }
  return strided(whole, sizes, steps, offset, count);
}

/** The elements of `whole` that a strided view selects, copied in row-major order (a transpose reads by column). */
function strided(
  whole: Tensor | IntTensor,
  shape: number[],
  strides: number[],
  offset: number,
  count: number,
): Tensor | IntTensor {
  const data = whole instanceof Tensor ? new Float32Array(count) : new Int32Array(count);
  const index = new Array<number>(shape.length).fill(0);
  let from = offset;
  for (let i = 0; i < count; i++) {
    data[i] = whole.data[from];
    for (let d = shape.length - 1; d >= 0; d--) {
      index[d]++;
      from += strides[d];
      if (index[d] < shape[d]) break;
      from -= strides[d] * shape[d];
      index[d] = 0;
    }
  }
  return data instanceof Float32Array ? new Tensor(data, shape) : new IntTensor(data, shape);
}

/** LONG1's little-endian two's-complement integer, which must be exact as a number. */
function readLong(bytes: Uint8Array, fail: (why: string) => never): number {
  let value = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i]);
  if (bytes.length > 0 && bytes[bytes.length - 1] & 0x80) value -= 1n << BigInt(8 * bytes.length);
  if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER))
    fail(`the integer ${value} is too large`);
  return Number(value);
}

const isTuple = (v: Value): v is { tuple: Value[] } => v !== null && typeof v === "object" && "tuple" in v;
const isDict = (v: Value): v is Dict => v !== null && typeof v === "object" && "dict" in v;
const isGlobal = (v: Value): v is Global => v !== null && typeof v === "object" && "global" in v;
const isStorage = (v: Value): v is Storage => v !== null && typeof v === "object" && "storage" in v;
const isCount = (v: Value): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;

/** A short description of a pickled value for errors. */
function describe(v: Value): string {
  if (v instanceof Tensor || v instanceof IntTensor) return `a tensor [${v.shape}]`;
  if (Array.isArray(v)) return "a list";
  if (isTuple(v)) return `(${v.tuple.map(describe).join(", ")})`;
  if (isDict(v)) return "a dict";
  if (isGlobal(v)) return v.global;
  if (isStorage(v)) return `storage data/${v.key}`;
  return JSON.stringify(v);
}
