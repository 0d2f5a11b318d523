// Writes a pruned copy of a model package: the decoder with layers removed and weights
// replaced, the config updated to match, every other file copied under the same name.
// Everything goes to a temporary sibling folder that is renamed into place only when
// complete, so a failure or cancel never leaves a half-written package behind.

import * as fs from 'fs';
import * as path from 'path';
import { OnnxFile, writeOnnx, externalLocations } from '../onnx/onnxFile';
import { discoverLayers } from '../graph/layers';
import { removeLayers, replaceInitializer } from '../graph/surgery';
import { checkOutputLocation } from '../outputLocation';
import { checkPackageConsistency } from './consistency';
import { ModelPackage, PackageError, recordedChunks } from './modelPackage';
import { makeScratchDir, releaseScratchDir, removeScratchDir } from '../scratch';
import { partialPrefix, RECIPE_FILE, REPORT_FILE } from '../../protocol/files';

export interface PruneWriteOptions {
  remove: number[];
  /** Initializer name -> new values (same shape and dtype as the original). */
  replace?: Map<string, Float32Array | Float64Array>;
  outDir: string;
  /** Replace an existing output folder (it is only removed once the new one is complete). */
  overwrite?: boolean;
  /**
   * Extra JSON files written at the package root (report, recipe), or a function giving them
   * once the decoder is written (the report records its size): either way they are written
   * once, into the temporary folder, before it is renamed into place.
   */
  extraJson?: Record<string, unknown> | ((written: { bytes: number }) => Record<string, unknown>);
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
}

const CHUNK_LIMIT = 2 ** 31 - 2 ** 20; // stay under what Node and browsers read in one call

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
  let tmp: string | undefined;
  try {
    const check = opts.checkCancelled ?? (() => undefined);
    // The file is validated on opening (shapes against data, external ranges, topology);
    // the config must describe this decoder before a copy of both is written.
    checkPackageConsistency(pkg, src, discoverLayers(src.graph));
    // Replace weights by their original names first: removal renumbers `layers.N` names.
    let edited = src.model;
    const inits = src.initializerMap();
    for (const [name, values] of opts.replace ?? []) {
      const orig = inits.get(name);
      if (!orig) throw new PackageError(`weight ${name} not found in ${path.basename(pkg.decoder)}`);
      edited = replaceInitializer(edited, name, values, orig);
    }
    const removal = removeLayers(edited, opts.remove);
    const model = removal.model;
    const kept = new Set(model.graph.initializer.map((t) => t.rawData));
    for (const [name] of opts.replace ?? []) {
      if (!kept.has(edited.graph.initializer.find((t) => t.name === name)?.rawData)) {
        throw new PackageError(`weight ${name} belongs to a removed layer; only retained layers' weights can be replaced`);
      }
    }
    check();

    fs.mkdirSync(path.dirname(outDir), { recursive: true });
    tmp = makeScratchDir(path.dirname(outDir), partialPrefix(path.basename(outDir)));
    // The folder was made with the user's umask; copies get the source's mode under it, as cp does.
    const allowedMode = fs.statSync(tmp).mode & 0o777;
    const decoderRel = path.relative(pkg.root, pkg.decoder);
    const outDecoder = path.join(tmp, decoderRel);
    fs.mkdirSync(path.dirname(outDecoder), { recursive: true });
    const srcLocations = externalLocations(src.model).sort();
    let dataFiles: string[] = [];
    let written;
    if (srcLocations.length) {
      const sizes = srcLocations.map((l) => fs.statSync(src.resolveExternal(l)).size);
      const maxChunk = srcLocations.length > 1 ? Math.min(CHUNK_LIMIT, Math.max(...sizes)) : CHUNK_LIMIT;
      written = writeOnnx(model, src, outDecoder, { baseName: srcLocations[0], maxChunkBytes: maxChunk, chunkName: (i) => `${srcLocations[0]}_${i}` });
      dataFiles = written.dataFiles;
    } else {
      written = writeOnnx(model, src, outDecoder);
    }
    check();

    // Copy the rest of the package, minus the decoder's own files and stale decoder variants.
    const skip = new Set<string>([decoderRel, ...srcLocations.map((l) => path.join(path.dirname(decoderRel), l))]);
    const skippedVariants: string[] = [];
    for (const v of pkg.otherDecoderVariants) {
      skip.add(v);
      skippedVariants.push(v);
      const vdir = path.dirname(v);
      const vbase = path.basename(v);
      for (const f of pkg.files) if (path.dirname(f) === vdir && path.basename(f).startsWith(vbase + '_data') || f === v + '.data') skip.add(f);
    }
    for (const f of pkg.files) {
      if (skip.has(f) || skip.has(f.split('/').join(path.sep))) continue;
      if (f === REPORT_FILE || f === RECIPE_FILE) continue;
      const dst = path.join(tmp, f);
      fs.mkdirSync(path.dirname(dst), { recursive: true });
      fs.copyFileSync(path.join(pkg.root, f), dst, fs.constants.COPYFILE_FICLONE);
      fs.chmodSync(dst, fs.statSync(dst).mode & allowedMode);
      check();
    }

    updateConfig(pkg, tmp, removal.removed, removal.numLayers, path.basename(pkg.decoder), dataFiles.length);
    const extra = typeof opts.extraJson === 'function' ? opts.extraJson({ bytes: written.bytes }) : opts.extraJson ?? {};
    for (const [name, value] of Object.entries(extra)) {
      fs.writeFileSync(path.join(tmp, name), JSON.stringify(value, null, 1) + '\n');
    }
    check();

    if (fs.existsSync(outDir)) {
      const old = `${tmp}.old`;
      fs.renameSync(outDir, old);
      fs.renameSync(tmp, outDir);
      fs.rmSync(old, { recursive: true, force: true });
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
    };
  } catch (e) {
    if (tmp) removeScratchDir(tmp);
    throw e;
  } finally {
    src.close();
  }
}

/** Per-layer lists in a text config (layer_types, no_rope_layers, ...) lose the removed entries. */
function pruneLayerLists(cfg: Record<string, unknown>, removed: number[], oldL: number): void {
  for (const [k, v] of Object.entries(cfg)) {
    if (Array.isArray(v) && v.length === oldL && /layer/.test(k)) {
      cfg[k] = v.filter((_, i) => !removed.includes(i));
    }
  }
}

function updateConfig(pkg: ModelPackage, tmp: string, removed: number[], newL: number, decoderName: string, chunks: number): void {
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
    if (recordedChunks(cfg, decoderName) !== undefined) {
      const tj = cfg['transformers.js_config'];
      const ext = tj.use_external_data_format;
      const value = chunks === 0 ? false : chunks === 1 && (ext === true || ext?.[decoderName] === true) ? true : chunks;
      if (ext && typeof ext === 'object') {
        ext[decoderName] = value;
      } else tj.use_external_data_format = value;
    }
  }
  fs.writeFileSync(path.join(tmp, rel), JSON.stringify(cfg, null, 2) + '\n');
}
