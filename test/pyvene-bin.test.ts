/**
 * pyvene's intkey_*.bin weights (PyTorch zip + pickle) read by tsvene's restricted unpickler:
 * the folders pyvene wrote (shared/fixtures/pyvene-saved) load and give pyvene's logits, and get
 * interventions.safetensors beside them; hostile or broken files are refused, naming them.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { chmod, cp, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, it } from "node:test";
import * as tv from "../src/index.js";
import { FakeHub } from "./support/hub-server.js";

const ROOT = fileURLToPath(new URL("../../../shared/fixtures/pyvene-saved/", import.meta.url));
const scratch = await mkdtemp(join(tmpdir(), "tsvene-pyvene-bin-"));
after(async () => {
  await chmod(join(scratch, "read-only"), 0o755).catch(() => undefined);
  await rm(scratch, { recursive: true, force: true });
});

interface SavedCase {
  name: string;
  folder: string;
  unit_locations: tv.ForwardOptions["unitLocations"];
  subspaces: unknown;
  batch: number;
}

const { cases } = JSON.parse(await readFile(join(ROOT, "cases.json"), "utf8")) as { cases: SavedCase[] };
const expected = (await tv.readSafetensors(join(ROOT, "expected.safetensors"))).tensors;
const model = async () => (await tv.loadPretrained(join(ROOT, "model"))).model;

/** The largest difference between the logits of the loaded folder and pyvene's. */
async function drift(c: SavedCase, folder: string): Promise<number> {
  const rows = (name: string) => ({
    inputIds: tv.intTensor([...expected.get(name)!.data].slice(0, c.batch * 6), [c.batch, 6]),
  });
  const im = await tv.loadIntervenable(folder, await model());
  const { intervened } = tv.noGrad(() =>
    im.forward(rows("base"), [rows("source")], { unitLocations: c.unit_locations, subspaces: c.subspaces }),
  );
  const want = expected.get(`${c.name}/logits`)!;
  assert.deepEqual(intervened.logits.shape, want.shape, c.name);
  return Math.max(...intervened.logits.data.map((v, i) => Math.abs(v - want.data[i])));
}

it("each folder pyvene saved loads from its .bin, gives pyvene's logits, and gets safetensors beside it", async () => {
  assert.deepEqual(
    cases.map((c) => c.name),
    ["rotated_L1", "lowrank_r4_L0_mlp", "boundless_L2"],
  );
  for (const c of cases) {
    const folder = join(scratch, c.name);
    await cp(join(ROOT, c.folder), folder, { recursive: true });
    await chmod(folder, 0o755);
    const fromBin = await drift(c, folder);
    assert.ok(fromBin < 1e-5, `${c.name}: logits differ from pyvene's by ${fromBin}`);

    const written = (await tv.readSafetensorsHeader(join(folder, "interventions.safetensors"))).tensors;
    const population = [...written].find(([name]) => name.endsWith(".intervention_population"));
    if (population) assert.equal(population[1].dtype, "I64");
    for (const name of written.keys()) assert.match(name, /^layer_\d_comp_\w+_unit_pos_nunit_1#0\.\w/);
    // The second load reads the safetensors: with the .bin gone it still gives pyvene's logits.
    for (const f of await readdir(folder)) if (f.endsWith(".bin")) await rm(join(folder, f));
    const fromSafetensors = await drift(c, folder);
    assert.ok(fromSafetensors < 1e-5, `${c.name} (safetensors): logits differ by ${fromSafetensors}`);
  }
});

it("a Hub repo holding a folder pyvene saved (only .bin weights) loads by repo id with its logits", async () => {
  const hub = new FakeHub();
  const endpoint = await hub.start();
  try {
    for (const c of cases) {
      const dir = join(ROOT, c.folder);
      hub.addRepo(
        `pyvene-user/${c.name}`,
        new Map(await Promise.all((await readdir(dir)).map(async (f) => [f, await readFile(join(dir, f))] as const))),
      );
      const im = await tv.loadIntervenable(`pyvene-user/${c.name}`, await model(), {
        endpoint,
        cacheDir: join(scratch, "hub-cache"),
      });
      const rows = (name: string) => ({
        inputIds: tv.intTensor([...expected.get(name)!.data].slice(0, c.batch * 6), [c.batch, 6]),
      });
      const { intervened } = tv.noGrad(() =>
        im.forward(rows("base"), [rows("source")], { unitLocations: c.unit_locations, subspaces: c.subspaces }),
      );
      const want = expected.get(`${c.name}/logits`)!;
      const diff = Math.max(...intervened.logits.data.map((v, i) => Math.abs(v - want.data[i])));
      assert.ok(diff < 1e-5, `${c.name} from the Hub: logits differ from pyvene's by ${diff}`);
    }
  } finally {
    await hub.stop();
  }
});

it("pyvene's pytorch_model.bin (include_model) is read: its names are checked against the model's", async () => {
  const folder = join(scratch, "include-model");
  await cp(join(ROOT, "rotated_L1"), folder, { recursive: true });
  await chmod(folder, 0o755);
  const bin = (await readdir(folder)).find((f) => f.endsWith(".bin"))!;
  await cp(join(folder, bin), join(folder, "pytorch_model.bin"));
  await assert.rejects(tv.loadIntervenable(folder, await model(), { includeModel: true }), (error: Error) => {
    assert.match(
      error.message,
      /pytorch_model\.bin does not fit the model: embed_dim \(not a parameter of this model\); .*rotate_layer\./,
    );
    return true;
  });
  await writeFile(join(folder, "pytorch_model.bin"), "PK\x03\x04 cut short");
  await assert.rejects(tv.loadIntervenable(folder, await model(), { includeModel: true }), (error: Error) => {
    assert.match(
      error.message,
      /pytorch_model\.bin: not a readable PyTorch zip archive.*convert them once with Python/s,
    );
    return true;
  });
});

it("the transposed (strided) rotation base of LowRank is read by its strides", async () => {
  const dir = join(ROOT, "lowrank_r4_L0_mlp");
  const bin = (await readdir(dir)).find((f) => f.endsWith(".bin"))!;
  const state = await tv.readTorchStateDict(join(dir, bin));
  const base = state.get("rotate_layer.parametrizations.weight.0.base")!;
  assert.deepEqual(base.shape, [32, 32]);
  const gram = tv.matmul(tv.transpose(base as tv.Tensor), base as tv.Tensor);
  gram.data.forEach((v, i) => assert.ok(Math.abs(v - (i % 33 === 0 ? 1 : 0)) < 1e-4, `BᵀB[${i}] = ${v}`));
  assert.deepEqual([...state.get("embed_dim")!.data], [32]);
});

it("a read-only folder loads from the .bin and only warns that safetensors could not be written", {
  skip: process.getuid?.() === 0 ? "root writes to read-only folders" : false,
}, async () => {
  const c = cases[0];
  const folder = join(scratch, "read-only");
  await cp(join(ROOT, c.folder), folder, { recursive: true });
  await chmod(folder, 0o555);
  const warned = once(process, "warning");
  assert.ok((await drift(c, folder)) < 1e-5);
  const [warning] = (await warned) as [Error & { code?: string }];
  assert.equal(warning.code, "TSVENE_PYVENE_WEIGHTS_NOT_SAVED");
  assert.ok(!existsSync(join(folder, "interventions.safetensors")));
});

/** A zip of stored members (CRC left 0: the reader does not check it). */
function storedZip(members: Record<string, Buffer>): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const [name, data] of Object.entries(members)) {
    const nameBytes = Buffer.from(name);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(nameBytes.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(nameBytes.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, nameBytes, data);
    centrals.push(central, nameBytes);
    offset += 30 + nameBytes.length + data.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(Object.keys(members).length, 8);
  end.writeUInt16LE(Object.keys(members).length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}

/** A pyvene folder (rotated_L1's config) whose only .bin holds `bin`. */
async function folderWithBin(name: string, bin: Buffer): Promise<{ folder: string; file: string }> {
  const folder = join(scratch, name);
  await cp(join(ROOT, "rotated_L1"), folder, { recursive: true });
  await chmod(folder, 0o755);
  const file = (await readdir(folder)).find((f) => f.endsWith(".bin"))!;
  await rm(join(folder, file));
  await writeFile(join(folder, file), bin);
  return { folder, file };
}

it("a pickle naming os.system is refused by name, and nothing runs", async () => {
  const marker = join(scratch, "pwned");
  const pickle = Buffer.from(`\x80\x02cos\nsystem\nX${"\0".repeat(4)}touch ${marker}\x85R.`, "latin1");
  pickle.writeUInt32LE(`touch ${marker}`.length, 2 + "cos\nsystem\n".length + 1);
  const archive = storedZip({ "archive/data.pkl": pickle, "archive/version": Buffer.from("3\n") });
  assert.throws(() => tv.parseTorchStateDict(archive, "evil.bin"), /evil\.bin: data\.pkl: GLOBAL os\.system .*refused/);

  const { folder, file } = await folderWithBin("evil", archive);
  await assert.rejects(tv.loadIntervenable(folder, await model()), (error: Error) => {
    assert.match(error.message, new RegExp(`${file.replace(/[.#]/g, "\\$&")}: data\\.pkl: GLOBAL os\\.system`));
    return true;
  });
  assert.ok(!existsSync(marker), "the pickle's command ran");
  assert.ok(!existsSync(join(folder, "interventions.safetensors")));

  const opcode = storedZip({ "archive/data.pkl": Buffer.from("\x80\x02]\x94.", "latin1") });
  assert.throws(() => tv.parseTorchStateDict(opcode, "memoize.bin"), /opcode 0x94 at byte 3 .*refused/);
});

it("a truncated .bin is refused, naming the file", async () => {
  const dir = join(ROOT, "rotated_L1");
  const bin = (await readdir(dir)).find((f) => f.endsWith(".bin"))!;
  const whole = await readFile(join(dir, bin));
  const { folder, file } = await folderWithBin("truncated", whole.subarray(0, whole.length - 200));
  await assert.rejects(tv.loadIntervenable(folder, await model()), (error: Error) => {
    assert.ok(error.message.includes(`${file}: not a readable PyTorch zip archive`), error.message);
    return true;
  });
  assert.throws(() => tv.parseTorchStateDict(whole.subarray(0, 1000), "cut.bin"), /cut\.bin: not a readable/);
});
