/**
 * Storage for op outputs. Zero-filling a fresh Float32Array costs as much as a pass of the op
 * itself on large activations, so outputs that an op writes in full come uninitialised from
 * Node's Buffer allocator where it exists. Anything accumulated into must use `new Float32Array`.
 */
const NodeBuffer = (globalThis as { Buffer?: { allocUnsafeSlow(size: number): Uint8Array } }).Buffer;

export function uninitialized(length: number): Float32Array {
  if (NodeBuffer === undefined || length < 1024) return new Float32Array(length);
  const bytes = NodeBuffer.allocUnsafeSlow(length * 4);
  return new Float32Array(bytes.buffer, bytes.byteOffset, length);
}
