/**
 * Storage for op outputs. Zero-filling a fresh Float32Array costs as much as a pass of the op
 * itself on large activations, so outputs that an op writes in full come uninitialised from
 * Node's Buffer allocator where it exists. Anything accumulated into must use `new Float32Array`.
 *
 * A fresh array is dear in another way: JavaScript frees it only at a garbage collection, which
 * every few tens of megabytes of allocation triggers, and until then it is memory untouched for a
 * long while. Code that knows an intermediate result is dead hands its array to `recycle`, and the
 * next output of that length reuses it: no allocation, and no collection to come for it.
 */
const NodeBuffer = (globalThis as { Buffer?: { allocUnsafeSlow(size: number): Uint8Array } }).Buffer;

/** Below this many elements arrays are cheap to allocate, and are not kept. */
export const SMALLEST_RECYCLED = 1024;
/** Arrays kept per length, and in all: enough for the intermediates of a transformer block. */
const KEPT_PER_LENGTH = 8;
const KEPT_BYTES = 64 << 20;

const recycled = new Map<number, Float32Array[]>();
let recycledBytes = 0;

export function uninitialized(length: number): Float32Array {
  if (length < SMALLEST_RECYCLED) return new Float32Array(length);
  const sameLength = recycled.get(length);
  const kept = sameLength?.pop();
  if (kept !== undefined && sameLength !== undefined) {
    recycledBytes -= kept.byteLength;
    markRecentlyUsed(length, sameLength);
    return kept;
  }
  if (NodeBuffer === undefined) return new Float32Array(length);
  const bytes = NodeBuffer.allocUnsafeSlow(length * 4);
  return new Float32Array(bytes.buffer, bytes.byteOffset, length);
}

/**
 * Hands `data` back for a later `uninitialized` of its length to reuse. Only for an array that
 * nothing can read or write any more (no tensor, view, hook or gradient node holds it): whoever
 * calls this must know that, because the array's next owner overwrites it. Arrays that share their
 * buffer with other views, small ones and those beyond the pool's size are left to the collector.
 */
export function recycle(data: Float32Array): void {
  if (!recyclable(data)) return;
  if (data.byteLength > KEPT_BYTES) return;
  let kept = recycled.get(data.length);
  if (kept === undefined) {
    kept = [];
    recycled.set(data.length, kept);
  }
  if (kept.length >= KEPT_PER_LENGTH || kept.includes(data)) return;
  evictUntilRoomFor(data.byteLength);
  markRecentlyUsed(data.length, kept);
  kept.push(data);
  recycledBytes += data.byteLength;
}

/** The Map's order is its recency: a length asked for or handed back moves to the end. */
function markRecentlyUsed(length: number, kept: Float32Array[]): void {
  recycled.delete(length);
  recycled.set(length, kept);
}

/**
 * Drops the arrays of the lengths least recently used, so that the shapes of the work at hand
 * (W3's batches after W1's single prompts, say) are kept rather than those of work long done.
 */
function evictUntilRoomFor(bytes: number): void {
  for (const [length, kept] of recycled) {
    if (recycledBytes + bytes <= KEPT_BYTES) return;
    while (kept.length > 0 && recycledBytes + bytes > KEPT_BYTES)
      recycledBytes -= (kept.pop() as Float32Array).byteLength;
    if (kept.length === 0) recycled.delete(length);
  }
}

/** Whether `recycle` would take `data`: large enough, and alone in its buffer. */
export function recyclable(data: Float32Array): boolean {
  return data.length >= SMALLEST_RECYCLED && data.byteOffset === 0 && data.byteLength === data.buffer.byteLength;
}
