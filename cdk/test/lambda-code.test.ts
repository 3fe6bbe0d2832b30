import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { defaultAssetDir, elfArchitecture, resolveLambdaAsset } from '../lib/lambda-code';
import { PLACEHOLDER_ASSET } from './helpers';

// None of these tests may run cargo: the only build attempts happen in a temporary folder
// without Cargo.toml and with a PATH where no cargo can be found.
const NO_CARGO_ENV = { PATH: '/nonexistent' };

// The build step announces itself on stderr; keep the test output clean.
beforeEach(() => jest.spyOn(process.stderr, 'write').mockImplementation(() => true));
afterEach(() => jest.restoreAllMocks());

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'sync-routes-code-'));
}

/** A 20-byte ELF header with the given e_machine. */
function fakeElf(file: string, machine: number): void {
  const header = Buffer.alloc(64);
  header.writeUInt32BE(0x7f454c46, 0);
  header.writeUInt16LE(machine, 18);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, header);
}

test('lambdaAsset: used as it is', () => {
  expect(resolveLambdaAsset({ assetDir: PLACEHOLDER_ASSET })).toEqual({ dir: PLACEHOLDER_ASSET, built: false });
});

test('lambdaAsset without bootstrap: clear error', () => {
  expect(() => resolveLambdaAsset({ assetDir: tmpDir() })).toThrow(/holds no 'bootstrap'/);
});

test('lambdaAsset built for the other architecture: refused', () => {
  const dir = tmpDir();
  fakeElf(path.join(dir, 'bootstrap'), 0xb7);
  expect(elfArchitecture(path.join(dir, 'bootstrap'))).toBe('arm64');
  expect(() => resolveLambdaAsset({ assetDir: dir })).toThrow(/built for arm64/);
  expect(resolveLambdaAsset({ assetDir: dir, architecture: lambda.Architecture.ARM_64 }).built).toBe(false);
});

test('default location honours CARGO_TARGET_DIR', () => {
  expect(defaultAssetDir('/repo', {})).toBe('/repo/target/lambda/sync-routes');
  expect(defaultAssetDir('/repo', { CARGO_TARGET_DIR: '/cache/t' })).toBe('/cache/t/lambda/sync-routes');
  expect(defaultAssetDir('/repo', { CARGO_TARGET_DIR: 'out' })).toBe('/repo/out/lambda/sync-routes');
});

test('an up-to-date build is used without building', () => {
  const repo = tmpDir();
  fs.mkdirSync(path.join(repo, 'src'));
  fs.writeFileSync(path.join(repo, 'src', 'main.rs'), '');
  const old = new Date(Date.now() - 60_000);
  fs.utimesSync(path.join(repo, 'src', 'main.rs'), old, old);
  fs.utimesSync(path.join(repo, 'src'), old, old);
  fakeElf(path.join(repo, 'target', 'lambda', 'sync-routes', 'bootstrap'), 0x3e);
  expect(resolveLambdaAsset({ repoRoot: repo, env: NO_CARGO_ENV }))
    .toEqual({ dir: path.join(repo, 'target', 'lambda', 'sync-routes'), built: false });
});

test('a missing or stale build is rebuilt, with a clear error when cargo-lambda is missing', () => {
  const repo = tmpDir();
  expect(() => resolveLambdaAsset({ repoRoot: repo, env: NO_CARGO_ENV })).toThrow(/pip install cargo-lambda/);
  // Built for x86_64 but arm64 wanted: rebuild.
  fakeElf(path.join(repo, 'target', 'lambda', 'sync-routes', 'bootstrap'), 0x3e);
  expect(() => resolveLambdaAsset({ repoRoot: repo, env: NO_CARGO_ENV, architecture: lambda.Architecture.ARM_64 }))
    .toThrow(/Could not build/);
  // Sources newer than the binary: rebuild.
  fs.mkdirSync(path.join(repo, 'src'));
  const future = new Date(Date.now() + 60_000);
  fs.writeFileSync(path.join(repo, 'src', 'main.rs'), '');
  fs.utimesSync(path.join(repo, 'src', 'main.rs'), future, future);
  expect(() => resolveLambdaAsset({ repoRoot: repo, env: NO_CARGO_ENV })).toThrow(/Could not build/);
});
