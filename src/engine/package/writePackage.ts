// Writes a pruned copy of a model package: the decoder, and every dtype variant of it, with
// layers removed and weights replaced (variantEdits.ts), the config updated to match, the
// model's other files copied under the same name (modelFiles.ts says which; the user's own
// data in the folder is left out and listed).
// Everything goes to a temporary sibling folder that is renamed into place only when
// complete, so a failure or cancel never leaves a half-written package behind.

import * as fs from 'fs';
import * as path from 'path';
import { OnnxFile, writeOnnx, externalLocations } from '../onnx/onnxFile';
import { discoverLayers } from '../graph/layers';
import { removeLayers } from '../graph/surgery';
import { checkOutputLocation } from '../outputLocation';
import { ModelProto } from '../onnx/proto';
import { checkPackageConsistency } from './consistency';
import { splitModelFiles } from './modelFiles';
import { ModelPackage, PackageError } from './modelPackage';
import { adoptScratchDir, makeScratchDir, releaseScratchDir, removeScratchDir } from '../scratch';
import { applyToCalibrated, applyToVariant, Linears, linearsOf, placeReplacements, PlacedReplacement, VariantError } from './variantEdits';
import { partialPrefix, RECIPE_FILE, REPORT_FILE } from '../../protocol/files';
import type { DecoderVariantOutcome } from '../../protocol/report';

export interface PruneWriteOptions {
  remove: number[];
  /**
   * Initializer name in the calibrated decoder -> new float values of that weight: the
   * tensor's own shape for a float weight; for a quantised one the dequantised matrix
   * ([K, N], or [N, K] for MatMulNBits, as readWeightMatrix gives it). Carried over to every
   * dtype variant by place.
   */
  replace?: Map<string, Float32Array | Float64Array>;
  outDir: string;
  /** Replace an existing output folder (it is only removed once the new one is complete). */
  overwrite?: boolean;
  /**
   * Extra JSON files written at the package root (report, recipe), or a function giving them
   * once the decoder is written (the report records its size): either way they are written
   * once, into the temporary folder, before it is renamed into place.
   */
  extraJson?: Record<string, unknown> | ((written: { bytes: number; variants: VariantOutcome[]; leftOut: string[] }) => Record<string, unknown>);
  /** Checked between steps; throw to abort (cancel). */
  checkCancelled?: () => void;
}

export interface PruneWriteResult {
  outDir: string;
  removed: number[];
  numLayers: number;
  decoder: string;
  bytes: number;
  skippedVariants: string[];
  /** Every dtype variant of the decoder and what was done to it. */
  variants: VariantOutcome[];
  /** Files of the model folder that are not part of the model and were not copied (relative paths). */
  leftOut: string[];
}

const CHUNK_LIMIT = 2 ** 31 - 2 ** 20; // stay under what Node and browsers read in one call

/** What happened to one dtype variant of the decoder. */
export type VariantOutcome = DecoderVariantOutcome;

interface DecoderOut {
  rel: string;
  model: ModelProto;
  file: OnnxFile;
}

export function writePrunedPackage(pkg: ModelPackage, opts: PruneWriteOptions): PruneWriteResult {
  const outDir = path.resolve(opts.outDir);
  if (outDir === pkg.root || (pkg.layout !== 'single' && outDir.startsWith(pkg.root + path.sep))) {
    throw new PackageError('the output folder must be outside the model folder: the original package is never modified');
  }
  if (pkg.root.startsWith(outDir + path.sep) || pkg.decoder.startsWith(outDir + path.sep)) {
    // With overwrite, the old output folder is deleted: it must not hold the model being read.
    throw new PackageError('the output folder must not contain the model folder: the original package is never modified');
  }
  if (fs.existsSync(outDir) && !opts.overwrite) {
    throw new PackageError(`${outDir} already exists; choose another --out or pass --overwrite`);
  }
  checkOutputLocation(outDir);
  // Read and prune before creating anything, so that a bad model or layer list leaves no folder.
  const src = OnnxFile.open(pkg.decoder);
  const opened: OnnxFile[] = [src];
  let tmp: string | undefined;
  try {
    const check = opts.checkCancelled ?? (() => undefined);
    // The file is validated on opening (shapes against data, external ranges, topology);
    // the config must describe this decoder before a copy of both is written.
    checkPackageConsistency(pkg, src, discoverLayers(src.graph));
    // Replace weights by their original names first: removal renumbers `layers.N` names.
    const replace = opts.replace ?? new Map<string, Float32Array | Float64Array>();
    let lin: Linears | undefined;
    let placed: PlacedReplacement[] = [];
    let edited = src.model;
    if (replace.size) {
      lin = linearsOf(src);
      placed = placeReplacements(src, replace, lin);
      edited = applyToCalibrated(src, placed, lin);
    }
    const removal = removeLayers(edited, opts.remove);
    const model = removal.model;
    const kept = new Set(model.graph.initializer.map((t) => t.rawData));
    const editedInits = new Map(edited.graph.initializer.map((t) => [t.name, t]));
    for (const [name] of replace) {
      if (!kept.has(editedInits.get(name)?.rawData)) {
        throw new PackageError(`weight ${name} belongs to a removed layer; only retained layers' weights can be replaced`);
      }
    }
    check();

    // The other dtype variants of the same decoder: the same layers removed, the same weights replaced.
    const decoderRel = path.relative(pkg.root, pkg.decoder);
    const outs: DecoderOut[] = [{ rel: decoderRel, model, file: src }];
    const variants: VariantOutcome[] = [{ file: decoderRel, status: 'calibrated' }];
    for (const rel of pkg.decoderVariants ?? []) {
      let vf: OnnxFile;
      let vModel: ModelProto;
      let status: VariantOutcome['status'] = replace.size ? 'compensated' : 'layers-only';
      let note: string | undefined;
      try {
        vf = OnnxFile.open(path.join(pkg.root, rel));
        opened.push(vf);
        for (const t of vf.initializerMap().values()) vf.externalRef(t);
        const vLin = linearsOf(vf);
        vModel = vf.model;
        if (replace.size) {
          try {
            vModel = applyToVariant(vf, placed, vLin, lin!.structure.layers.length);
          } catch (e) {
            // Nothing was changed yet (the edits are built on copies): prune without them.
            status = 'layers-only';
            note = `layers removed without compensation: ${(e as Error).message}`;
          }
        }
        if (vLin.structure.layers.length !== removal.numLayers + removal.removed.length) {
          throw new VariantError(`it has ${vLin.structure.layers.length} layers, the calibrated decoder ${removal.numLayers + removal.removed.length}`);
        }
        vModel = removeLayers(vModel, opts.remove).model;
      } catch (e) {
        // A variant that cannot have the same layers removed would contradict the new config.
        variants.push({ file: rel, status: 'dropped', note: `not carried over: ${(e as Error).message}` });
        continue;
      }
      outs.push({ rel, model: vModel, file: vf });
      variants.push({ file: rel, status, note });
      check();
    }

    fs.mkdirSync(path.dirname(outDir), { recursive: true });
    tmp = makeScratchDir(path.dirname(outDir), partialPrefix(path.basename(outDir)));
    // The folder was made with the user's umask; copies get the source's mode under it, as cp does.
    const allowedMode = fs.statSync(tmp).mode & 0o777;
    const skip = new Set<string>();
    const chunks = new Map<string, number>();
    let written = { bytes: 0 };
    for (const o of outs) {
      const srcLocations = externalLocations(o.file.model).sort();
      skip.add(o.rel);
      for (const l of srcLocations) skip.add(path.join(path.dirname(o.rel), l));
      const w = writeDecoder(o, srcLocations, path.join(tmp, o.rel));
      chunks.set(path.basename(o.rel), w.dataFiles.length);
      if (o.file === src) written = w;
      check();
    }

    // Copy the rest of the package, minus the decoders' own files and decoders that were not pruned.
    const skippedVariants: string[] = [];
    const dropped = [...pkg.otherDecoderVariants.filter((v) => !(pkg.decoderVariants ?? []).includes(v)), ...variants.filter((v) => v.status === 'dropped').map((v) => v.file)];
    for (const v of dropped) {
      skip.add(v);
      skippedVariants.push(v);
      const vdir = path.dirname(v);
      const vbase = path.basename(v);
      for (const f of pkg.files) if (path.dirname(f) === vdir && path.basename(f).startsWith(vbase + '_data') || f === v + '.data') skip.add(f);
    }
    const { model: ownFiles, leftOut } = splitModelFiles(pkg);
    for (const f of ownFiles) {
      if (skip.has(f) || skip.has(f.split('/').join(path.sep))) continue;
      if (f === REPORT_FILE || f === RECIPE_FILE) continue;
      const dst = path.join(tmp, f);
      fs.mkdirSync(path.dirname(dst), { recursive: true });
      fs.copyFileSync(path.join(pkg.root, f), dst, fs.constants.COPYFILE_FICLONE);
      fs.chmodSync(dst, fs.statSync(dst).mode & allowedMode);
      check();
    }

    updateConfig(pkg, tmp, removal.removed, removal.numLayers, chunks);
    const extra = typeof opts.extraJson === 'function' ? opts.extraJson({ bytes: written.bytes, variants, leftOut }) : opts.extraJson ?? {};
    for (const [name, value] of Object.entries(extra)) {
      fs.writeFileSync(path.join(tmp, name), JSON.stringify(value, null, 1) + '\n');
    }
    check();

    if (fs.existsSync(outDir)) {
      const old = `${tmp}.old`;
      fs.renameSync(outDir, old);
      try {
        fs.renameSync(tmp, outDir);
      } catch (e) {
        fs.renameSync(old, outDir); // the previous output stays in place
        throw e;
      }
      removeScratchDir(adoptScratchDir(old));
    } else fs.renameSync(tmp, outDir);
    releaseScratchDir(tmp);
    tmp = undefined;
    return {
      outDir,
      removed: removal.removed,
      numLayers: removal.numLayers,
      decoder: path.join(outDir, decoderRel),
      bytes: written.bytes,
      skippedVariants,
      variants,
      leftOut,
    };
  } catch (e) {
    if (tmp) removeScratchDir(tmp);
    throw e;
  } finally {
    for (const f of opened) f.close();
  }
}

/** Writes one pruned decoder with its external data named as in the original. */
function writeDecoder(o: DecoderOut, srcLocations: string[], outDecoder: string): { dataFiles: string[]; bytes: number } {
  fs.mkdirSync(path.dirname(outDecoder), { recursive: true });
  if (!srcLocations.length) return writeOnnx(o.model, o.file, outDecoder);
  const sizes = srcLocations.map((l) => fs.statSync(o.file.resolveExternal(l)).size);
  const maxChunk = srcLocations.length > 1 ? Math.min(CHUNK_LIMIT, Math.max(...sizes)) : CHUNK_LIMIT;
  return writeOnnx(o.model, o.file, outDecoder, { baseName: srcLocations[0], maxChunkBytes: maxChunk, chunkName: (i) => `${srcLocations[0]}_${i}` });
}

/** Per-layer lists in a text config (layer_types, no_rope_layers, ...) lose the removed entries. */
function pruneLayerLists(cfg: Record<string, unknown>, removed: number[], oldL: number): void {
  for (const [k, v] of Object.entries(cfg)) {
    if (Array.isArray(v) && v.length === oldL && /layer/.test(k)) {
      cfg[k] = v.filter((_, i) => !removed.includes(i));
    }
  }
}

function updateConfig(pkg: ModelPackage, tmp: string, removed: number[], newL: number, chunks: Map<string, number>): void {
  if (!pkg.configFile) return;
  const rel = path.relative(pkg.root, pkg.configFile);
  const cfg = JSON.parse(fs.readFileSync(pkg.configFile, 'utf8')) as Record<string, any>;
  if (pkg.layout === 'genai') {
    const d = cfg.model?.decoder;
    if (d) {
      const oldL = d.num_hidden_layers;
      d.num_hidden_layers = newL;
      if (typeof oldL === 'number') pruneLayerLists(d, removed, oldL);
    }
  } else {
    const t = cfg.text_config && typeof cfg.text_config === 'object' ? cfg.text_config : cfg;
    const oldL = t.num_hidden_layers ?? t.n_layer ?? t.num_layers;
    for (const key of ['num_hidden_layers', 'n_layer', 'num_layers']) if (typeof t[key] === 'number') t[key] = newL;
    if (typeof oldL === 'number') pruneLayerLists(t, removed, oldL);
    updateChunkCounts(cfg, chunks, pkg.files.filter((f) => f.endsWith('.onnx')).map((f) => path.basename(f)));
  }
  fs.writeFileSync(path.join(tmp, rel), JSON.stringify(cfg, null, 2) + '\n');
}

/**
 * Keeps transformers.js_config.use_external_data_format in step with the chunks written for
 * each decoder file. A single global value stays global while every decoder agrees with it;
 * otherwise it becomes per file (other files keep the old global value).
 */
function updateChunkCounts(cfg: Record<string, any>, chunks: Map<string, number>, onnxFiles: string[]): void {
  const tj = cfg['transformers.js_config'];
  if (!tj || typeof tj !== 'object' || !('use_external_data_format' in tj)) return;
  const ext = tj.use_external_data_format;
  const valueFor = (name: string, n: number) => {
    const before = ext && typeof ext === 'object' ? ext[name] : ext;
    return n === 0 ? false : n === 1 && before === true ? true : n;
  };
  if (ext && typeof ext === 'object') {
    for (const [name, n] of chunks) if (name in ext || n > 0) ext[name] = valueFor(name, n);
    return;
  }
  const values = [...chunks].map(([name, n]) => valueFor(name, n));
  const same = values.every((v) => v === values[0]);
  if (same && (values[0] === ext || (!values[0] && !ext) || chunks.size === 1)) {
    tj.use_external_data_format = values[0];
    return;
  }
  const perFile: Record<string, unknown> = {};
  if (ext) for (const f of onnxFiles) perFile[f] = ext;
  for (const [name, n] of chunks) perFile[name] = valueFor(name, n);
  tj.use_external_data_format = perFile;
}
