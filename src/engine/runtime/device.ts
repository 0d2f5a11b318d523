// Which onnxruntime execution provider the engine's sessions use. onnxruntime-node lists the
// providers its build knows; CUDA on Linux is listed but its libraries are downloaded only
// when the package is installed with them, so their presence is checked on disk too. A
// missing provider is a one-line error saying how to get it, before any model is loaded.

import * as fs from 'fs';
import * as path from 'path';
import * as ort from 'onnxruntime-node';

import type { Device } from '../../protocol/engineApi';
export type { Device };
import { DEVICES } from '../../protocol/options';
export { DEVICES };

const HOW_TO: Record<Exclude<Device, 'cpu'>, string> = {
  cuda: 'needs Linux or Windows x64, CUDA 12 and cuDNN 9, and onnxruntime-node installed with its CUDA libraries: ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node (README, "GPUs")',
  dml: 'DirectML comes with onnxruntime-node on Windows x64 only (README, "GPUs")',
  coreml: 'CoreML comes with onnxruntime-node on macOS only (README, "GPUs")',
};

export interface Backend {
  name: string;
  bundled: boolean;
}

/** onnxruntime-node's own list (name, shipped in the package or installed on demand). */
export function installedBackends(): Backend[] {
  return (ort as unknown as { listSupportedBackends?: () => Backend[] }).listSupportedBackends?.() ?? [{ name: 'cpu', bundled: true }];
}

/** Folder of onnxruntime-node's native libraries for this platform. */
function nativeDir(): string {
  const pkg = path.dirname(require.resolve('onnxruntime-node/package.json'));
  const bin = path.join(pkg, 'bin');
  const napi = fs.existsSync(bin) ? fs.readdirSync(bin).find((d) => d.startsWith('napi-')) ?? 'napi-v6' : 'napi-v6';
  return path.join(bin, napi, process.platform, process.arch);
}

/** Whether a provider that is installed on demand has its library in place. */
function providerLibraryPresent(device: Device, dir = nativeDir()): boolean {
  if (device !== 'cuda') return true;
  const lib = process.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so';
  return fs.existsSync(path.join(dir, lib));
}

export class DeviceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DeviceError';
  }
}

/** Throws a one-line DeviceError when `device` cannot run here. */
export function checkDevice(device: Device, backends: Backend[] = installedBackends(), libraryPresent: (d: Device) => boolean = (d) => providerLibraryPresent(d)): void {
  if (!DEVICES.includes(device)) throw new DeviceError(`unknown device "${device}": use one of ${DEVICES.join(', ')}`);
  if (device === 'cpu') return;
  const have = backends.map((b) => b.name);
  const entry = backends.find((b) => b.name === device);
  if (!entry) throw new DeviceError(`the ${device} execution provider is not in this onnxruntime-node (it has ${have.join(', ')}): ${HOW_TO[device]}`);
  if (!entry.bundled && !libraryPresent(device)) throw new DeviceError(`the ${device} execution provider is not installed in onnxruntime-node: ${HOW_TO[device]}`);
}

const checked = new Set<Device>();

/** Session options for a device (checked once per process). CPU runs what the provider cannot. */
export function providerOptions(device: Device | undefined): Pick<ort.InferenceSession.SessionOptions, 'executionProviders'> {
  if (!device || device === 'cpu') return {};
  if (!checked.has(device)) {
    checkDevice(device);
    checked.add(device);
  }
  return { executionProviders: [device, 'cpu'] };
}
