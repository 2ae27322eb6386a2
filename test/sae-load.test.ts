/**
 * SAE weights from the files people share: a SAELens folder (cfg.json + sae_weights.safetensors) and
 * Gemma Scope's params.npz, whose .npy members and zip archive this test writes byte by byte (stored
 * with np.savez's zip64 local headers, and deflated as np.savez_compressed does). The interventions
 * built from them are checked against the SAE formulas computed in plain loops:
 * JumpReLU f = 1[pre > θ]·ReLU(pre), pre = x·W_enc + b_enc; standard f = ReLU((x − b_dec)·W_enc + b_enc)
 * in SAELens (without the b_dec subtraction when apply_b_dec_to_input is false); recon = f·W_dec + b_dec.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { deflateRawSync } from "node:zlib";
import * as tv from "../src/index.js";

const [D_IN, D_SAE] = [4, 6];

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++)
    assert.ok(Math.abs(actual[i] - expected[i]) <= tol, `${what}[${i}]: ${actual[i]} vs ${expected[i]} (tol ${tol})`);
}

// ---- .npy and .zip bytes, written from the formats' specifications ----

/** A version-1.0 .npy file: magic, header length, the dict literal padded to 64 bytes with a newline, data. */
function npy(descr: string, shape: number[], data: Uint8Array, fortran = false): Uint8Array {
  const dims = shape.length === 1 ? `${shape[0]},` : shape.join(", ");
  let header = `{'descr': '${descr}', 'fortran_order': ${fortran ? "True" : "False"}, 'shape': (${dims}), }`;
  header = `${header.padEnd(header.length + 63 - ((10 + header.length) % 64))}\n`;
  const out = new Uint8Array(10 + header.length + data.byteLength);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, header.length & 0xff, header.length >> 8]);
  out.set(new TextEncoder().encode(header), 10);
  out.set(data, 10 + header.length);
  return out;
}

function f32(t: tv.Tensor): Uint8Array {
  return new Uint8Array(Float32Array.from(t.data).buffer);
}

function f64(t: tv.Tensor): Uint8Array {
  return new Uint8Array(Float64Array.from(t.data).buffer);
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/**
 * A zip archive (PKWARE APPNOTE): local headers then data, the central directory, the end record.
 * Stored members get zip64 local headers (sizes 0xffffffff plus a zip64 extra field), as Python's
 * zipfile writes them under np.savez's force_zip64; deflated ones plain headers.
 */
function zip(members: [string, Uint8Array][], deflate: boolean): Uint8Array {
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const [name, content] of members) {
    const nameBytes = new TextEncoder().encode(name);
    const data = deflate ? new Uint8Array(deflateRawSync(content)) : content;
    const extra = deflate ? new Uint8Array(0) : new Uint8Array(20);
    if (!deflate) {
      const x = new DataView(extra.buffer);
      x.setUint16(0, 1, true);
      x.setUint16(2, 16, true);
      x.setBigUint64(4, BigInt(content.byteLength), true);
      x.setBigUint64(12, BigInt(data.byteLength), true);
    }
    const local = new Uint8Array(30 + nameBytes.length + extra.length);
    const l = new DataView(local.buffer);
    l.setUint32(0, 0x04034b50, true);
    l.setUint16(4, 45, true);
    l.setUint16(8, deflate ? 8 : 0, true);
    l.setUint32(14, crc32(content), true);
    l.setUint32(18, deflate ? data.byteLength : 0xffffffff, true);
    l.setUint32(22, deflate ? content.byteLength : 0xffffffff, true);
    l.setUint16(26, nameBytes.length, true);
    l.setUint16(28, extra.length, true);
    local.set(nameBytes, 30);
    local.set(extra, 30 + nameBytes.length);
    const entry = new Uint8Array(46 + nameBytes.length);
    const c = new DataView(entry.buffer);
    c.setUint32(0, 0x02014b50, true);
    c.setUint16(4, 45, true);
    c.setUint16(6, 45, true);
    c.setUint16(10, deflate ? 8 : 0, true);
    c.setUint32(16, crc32(content), true);
    c.setUint32(20, data.byteLength, true);
    c.setUint32(24, content.byteLength, true);
    c.setUint16(28, nameBytes.length, true);
    c.setUint32(42, offset, true);
    entry.set(nameBytes, 46);
    parts.push(local, data);
    central.push(entry);
    offset += local.length + data.byteLength;
  }
  const centralBytes = central.reduce((s, e) => s + e.length, 0);
  const end = new Uint8Array(22);
  const e = new DataView(end.buffer);
  e.setUint32(0, 0x06054b50, true);
  e.setUint16(8, members.length, true);
  e.setUint16(10, members.length, true);
  e.setUint32(12, centralBytes, true);
  e.setUint32(16, offset, true);
  const all = [...parts, ...central, end];
  const out = new Uint8Array(all.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of all) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

// ---- the SAE ----

const gen = new tv.Generator(5);
const W_enc = tv.randn([D_IN, D_SAE], { generator: gen });
const W_dec = tv.randn([D_SAE, D_IN], { generator: gen });
const b_enc = tv.mul(tv.randn([D_SAE], { generator: gen }), 0.3);
const b_dec = tv.mul(tv.randn([D_IN], { generator: gen }), 0.5);
const threshold = tv.tensor([0.1, 0.5, 0.9, 0.2, 0.05, 1.5]);
const x = tv.randn([3, D_IN], { generator: gen });
const source = tv.randn([3, D_IN], { generator: gen });

/** pre = (x − shift)·W_enc + b_enc, by loops. */
function preActivations(input: tv.Tensor, shift: ArrayLike<number> | null): number[][] {
  const out: number[][] = [];
  for (let r = 0; r < input.shape[0]; r++) {
    const row: number[] = [];
    for (let j = 0; j < D_SAE; j++) {
      let s = b_enc.data[j];
      for (let i = 0; i < D_IN; i++)
        s += (input.data[r * D_IN + i] - (shift ? shift[i] : 0)) * W_enc.data[i * D_SAE + j];
      row.push(s);
    }
    out.push(row);
  }
  return out;
}

const jumpReLU = (pre: number[][]) => pre.map((row) => row.map((p, j) => (p > threshold.data[j] ? Math.max(p, 0) : 0)));
const relu = (pre: number[][]) => pre.map((row) => row.map((p) => Math.max(p, 0)));

function decode(latents: number[][]): number[] {
  return latents.flatMap((f) =>
    Array.from({ length: D_IN }, (_, i) => f.reduce((s, v, j) => s + v * W_dec.data[j * D_IN + i], b_dec.data[i])),
  );
}

let root: string;

async function saeLensFolder(name: string, config: object, tensors: Record<string, tv.Tensor>): Promise<string> {
  const folder = join(root, name);
  await mkdir(folder, { recursive: true });
  await writeFile(join(folder, "cfg.json"), JSON.stringify(config));
  await tv.writeSafetensors(join(folder, "sae_weights.safetensors"), tensors);
  return folder;
}

async function npzFile(name: string, members: [string, Uint8Array][], deflate = false): Promise<string> {
  const path = join(root, name);
  await writeFile(path, zip(members, deflate));
  return path;
}

const gemmaMembers = (): [string, Uint8Array][] => [
  ["W_enc.npy", npy("<f4", [D_IN, D_SAE], f32(W_enc))],
  ["W_dec.npy", npy("<f4", [D_SAE, D_IN], f32(W_dec))],
  ["b_enc.npy", npy("<f8", [D_SAE], f64(b_enc))],
  ["b_dec.npy", npy("<f4", [D_IN], f32(b_dec))],
  ["threshold.npy", npy("<f4", [D_SAE], f32(threshold))],
];

before(async () => {
  root = await mkdtemp(join(tmpdir(), "tsvene-sae-"));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("Gemma Scope params.npz", () => {
  for (const deflate of [false, true]) {
    const kind = deflate ? "deflated (savez_compressed)" : "stored (savez)";
    it(`loads a ${kind} archive into a JumpReLU intervention`, async () => {
      const path = await npzFile(`params-${deflate}.npz`, gemmaMembers(), deflate);
      const sae = await tv.loadSae(path);
      assert.equal(sae.format, "gemma-scope");
      assert.equal(sae.architecture, "jumprelu");
      assert.deepEqual([sae.dIn, sae.dSae, sae.applyBDecToInput], [D_IN, D_SAE, false]);
      const iv = tv.saeIntervention(sae);
      assert.ok(iv instanceof tv.JumpReLUAutoencoderIntervention);
      const expected = jumpReLU(preActivations(x, null));
      assert.ok(
        expected.flat().some((v, k) => v === 0 && preActivations(x, null).flat()[k] > 0),
        "a gate closes on a positive pre",
      );
      close(iv.encode(x).data, expected.flat(), 1e-5, "latents");
      close(iv.decode(iv.encode(x)).data, decode(expected), 1e-5, "reconstruction");
      // Swapping latents 1 and 3 from the source, per pyvene's interchange.
      const mixed = expected.map((row, r) =>
        row.map((v, j) => (j === 1 || j === 3 ? jumpReLU(preActivations(source, null))[r][j] : v)),
      );
      const out = iv.call(x, {
        source,
        subspaces: [
          [1, 3],
          [1, 3],
          [1, 3],
        ],
      });
      close(out.data, decode(mixed), 1e-5, "intervened output");
    });
  }

  it("loads params.npz from its folder, and converts float16 arrays", async () => {
    const folder = join(root, "gemma-folder");
    await mkdir(folder);
    const half = tv.tensor([0.5, -2, 1.25, 0]);
    const members = gemmaMembers().map(([name, bytes]): [string, Uint8Array] =>
      name === "b_dec.npy"
        ? [name, npy("<f2", [D_IN], new Uint8Array(new Uint16Array([0x3800, 0xc000, 0x3d00, 0]).buffer))]
        : [name, bytes],
    );
    await writeFile(join(folder, "params.npz"), zip(members, false));
    const sae = await tv.loadSae(folder);
    close(sae.b_dec.data, half.data, 0, "float16 b_dec");
  });

  it("refuses bad arrays and archives, naming what is wrong", async () => {
    const without = gemmaMembers().filter(([name]) => name !== "W_dec.npy");
    await assert.rejects(tv.loadSae(await npzFile("missing.npz", without)), /W_dec \[6, 4\] is missing/);
    const misshaped = gemmaMembers().map(([n, b]): [string, Uint8Array] =>
      n === "b_enc.npy" ? [n, npy("<f4", [D_SAE - 1], f32(tv.zeros([D_SAE - 1])))] : [n, b],
    );
    await assert.rejects(tv.loadSae(await npzFile("shape.npz", misshaped)), /b_enc has shape \[5\], expected \[6\]/);
    const fortran = gemmaMembers().map(([n, b]): [string, Uint8Array] =>
      n === "W_enc.npy" ? [n, npy("<f4", [D_IN, D_SAE], f32(W_enc), true)] : [n, b],
    );
    await assert.rejects(
      tv.loadSae(await npzFile("fortran.npz", fortran)),
      /array "W_enc".*Fortran \(column-major\) order/,
    );
    const objects = [...gemmaMembers(), ["names.npy", npy("|O", [2], new Uint8Array(16))] as [string, Uint8Array]];
    await assert.rejects(tv.loadSae(await npzFile("object.npz", objects)), /'\|O' is an object array/);
    const ints = gemmaMembers().map(([n, b]): [string, Uint8Array] =>
      n === "b_dec.npy" ? [n, npy("<i4", [D_IN], new Uint8Array(16))] : [n, b],
    );
    await assert.rejects(
      tv.loadSae(await npzFile("ints.npz", ints)),
      /dtype '<i4' is not read; expected little-endian floats/,
    );
    const truncated = gemmaMembers().map(([n, b]): [string, Uint8Array] =>
      n === "W_dec.npy" ? [n, b.subarray(0, b.length - 4)] : [n, b],
    );
    await assert.rejects(tv.loadSae(await npzFile("short.npz", truncated)), /needs 96 data bytes, the file has 92/);
    const whole = zip(gemmaMembers(), true);
    await assert.rejects(tv.gemmaScopeSae(whole.subarray(0, 100), "cut"), /cut: not a readable NumPy \.npz archive/);
    const extra = [...gemmaMembers(), ["W_skip.npy", npy("<f4", [D_IN], f32(b_dec))] as [string, Uint8Array]];
    await assert.rejects(tv.loadSae(await npzFile("extra.npz", extra)), /unexpected tensors W_skip/);
  });
});

describe("SAELens folders", () => {
  const base = { d_in: D_IN, d_sae: D_SAE, dtype: "float32", normalize_activations: "none" };

  it("jumprelu: threshold gates ReLU(x·W_enc + b_enc) when apply_b_dec_to_input is false", async () => {
    const folder = await saeLensFolder(
      "jumprelu",
      {
        ...base,
        architecture: "jumprelu",
        apply_b_dec_to_input: false,
        metadata: { hook_name: "blocks.2.hook_resid_post" },
      },
      { W_enc, W_dec, b_enc, b_dec, threshold },
    );
    const sae = await tv.loadSae(folder);
    assert.equal(sae.format, "saelens");
    assert.equal(sae.hookName, "blocks.2.hook_resid_post");
    const iv = tv.saeIntervention(sae) as tv.JumpReLUAutoencoderIntervention;
    close(iv.encode(x).data, jumpReLU(preActivations(x, null)).flat(), 1e-5, "latents");
  });

  it("jumprelu with log_threshold and b_dec subtracted from the input", async () => {
    const folder = await saeLensFolder(
      "jumprelu-log",
      { ...base, architecture: "jumprelu", apply_b_dec_to_input: true },
      { W_enc, W_dec, b_enc, b_dec, log_threshold: tv.log(threshold) },
    );
    const iv = tv.saeIntervention(await tv.loadSae(folder)) as tv.JumpReLUAutoencoderIntervention;
    const expected = jumpReLU(preActivations(x, b_dec.data));
    close(iv.encode(x).data, expected.flat(), 1e-5, "latents of x − b_dec");
    close(iv.call(x, { source: x, subspaces: null }).data, decode(expected), 1e-5, "reconstruction");
  });

  for (const apply of [true, false]) {
    it(`standard (apply_b_dec_to_input ${apply}) becomes pyvene's AutoencoderIntervention`, async () => {
      const folder = await saeLensFolder(
        `standard-${apply}`,
        { ...base, architecture: "standard", apply_b_dec_to_input: apply, hook_name: "blocks.0.hook_mlp_out" },
        { W_enc, W_dec, b_enc, b_dec },
      );
      const sae = await tv.loadSae(folder);
      assert.equal(sae.hookName, "blocks.0.hook_mlp_out");
      const iv = tv.saeIntervention(sae) as tv.AutoencoderIntervention;
      assert.ok(iv instanceof tv.AutoencoderIntervention);
      const latents = relu(preActivations(x, apply ? b_dec.data : null));
      close(iv.autoencoder.encode(x).data, latents.flat(), 1e-5, "latents");
      iv.setInterchangeDim([2]);
      const swapped = latents.map((row, r) =>
        row.map((v, j) => (j === 2 ? relu(preActivations(source, apply ? b_dec.data : null))[r][j] : v)),
      );
      close(iv.call(x, { source, subspaces: null }).data, decode(swapped), 1e-5, "latent 2 swapped");
    });
  }

  it("reads pre-6.0 configs (no architecture: standard; hook_point)", async () => {
    const folder = await saeLensFolder(
      "old",
      { d_in: D_IN, d_sae: D_SAE, hook_point: "blocks.1.hook_resid_pre", normalize_activations: false },
      { W_enc, W_dec, b_enc, b_dec, scaling_factor: tv.ones([D_SAE]) },
    );
    const sae = await tv.loadSae(folder);
    assert.deepEqual(
      [sae.architecture, sae.hookName, sae.applyBDecToInput],
      ["standard", "blocks.1.hook_resid_pre", true],
    );
  });

  it("refuses what it cannot compute exactly, and broken folders, naming the problem", async () => {
    const tensors = { W_enc, W_dec, b_enc, b_dec };
    const cases: [string, object, Record<string, tv.Tensor>, RegExp][] = [
      [
        "gated",
        { ...base, architecture: "gated" },
        tensors,
        /architecture "gated" is not supported; .*"standard" and "jumprelu"/,
      ],
      ["topk", { ...base, architecture: "topk" }, tensors, /architecture "topk" is not supported/],
      ["norm", { ...base, normalize_activations: "layer_norm" }, tensors, /normalize_activations "layer_norm"/],
      ["tanh", { ...base, activation_fn_str: "tanh-relu" }, tensors, /activation_fn "tanh-relu" is not supported/],
      ["no-threshold", { ...base, architecture: "jumprelu" }, tensors, /threshold \[6\] is missing/],
      ["no-dec", base, { W_enc, b_enc, b_dec }, /not a standard SAE of d_in 4, d_sae 6: W_dec \[6, 4\] is missing/],
      ["transposed", base, { ...tensors, W_enc: tv.transpose(W_enc) }, /W_enc has shape \[6, 4\], expected \[4, 6\]/],
      ["scaled", base, { ...tensors, scaling_factor: tv.full([D_SAE], 2) }, /scaling_factor other than ones/],
      ["d-in", { ...base, d_in: 0 }, tensors, /d_in must be a positive integer, got 0/],
    ];
    for (const [name, config, weights, message] of cases)
      await assert.rejects(tv.loadSae(await saeLensFolder(`bad-${name}`, config, weights)), message, name);
    const lonely = join(root, "cfg-only");
    await mkdir(lonely);
    await writeFile(join(lonely, "cfg.json"), JSON.stringify(base));
    await assert.rejects(tv.loadSae(lonely), /sae_weights\.safetensors is missing/);
    const empty = join(root, "empty");
    await mkdir(empty);
    await assert.rejects(tv.loadSae(empty), /found neither SAELens' cfg\.json .* nor Gemma Scope's params\.npz/);
    await assert.rejects(tv.loadSae(join(root, "nowhere")), /no such file or folder/);
    await assert.rejects(tv.loadSae(join(lonely, "cfg.json")), /a file must be Gemma Scope's params\.npz/);
    assert.throws(() => tv.saeIntervention({} as tv.SaeWeights), /expected the result of loadSae/);
  });
});
