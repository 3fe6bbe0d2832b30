import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as lambda from 'aws-cdk-lib/aws-lambda';

/** Name of the Cargo binary, and so of cargo-lambda's output folder. */
export const BINARY_NAME = 'sync-routes';

/** Where to find (or build) the function's `bootstrap`. */
export interface LambdaCodeOptions {
  /**
   * A directory that already holds the `bootstrap` executable (context `lambdaAsset`).
   * When given it is used as it is: nothing is built.
   *
   * @default - `<repo>/target/lambda/sync-routes`, built with cargo-lambda when missing or stale
   */
  readonly assetDir?: string;

  /**
   * Root of the Cargo project (the folder holding `Cargo.toml`).
   *
   * @default - the parent of the `cdk/` folder
   */
  readonly repoRoot?: string;

  /**
   * CPU architecture the binary must be built for.
   *
   * @default lambda.Architecture.X86_64
   */
  readonly architecture?: lambda.Architecture;

  /**
   * Environment to read `CARGO_TARGET_DIR` and `PATH` from.
   *
   * @default process.env
   */
  readonly env?: NodeJS.ProcessEnv;
}

/** The directory holding `bootstrap`, and whether this call built it. */
export interface ResolvedLambdaAsset {
  readonly dir: string;
  readonly built: boolean;
}

const DEFAULT_REPO_ROOT = path.resolve(__dirname, '..', '..');

/**
 * The directory cargo-lambda writes `bootstrap` to: `$CARGO_TARGET_DIR/lambda/sync-routes`.
 * Cargo resolves a relative CARGO_TARGET_DIR against its working directory, and we run it
 * in the repository root, so we do the same here.
 */
export function defaultAssetDir(repoRoot: string = DEFAULT_REPO_ROOT, env: NodeJS.ProcessEnv = process.env): string {
  const targetDir = env.CARGO_TARGET_DIR ? path.resolve(repoRoot, env.CARGO_TARGET_DIR) : path.join(repoRoot, 'target');
  return path.join(targetDir, 'lambda', BINARY_NAME);
}

/**
 * Finds the function's code, building it when needed, so that `cdk deploy` is the whole
 * install. The build is a plain `cargo lambda build --release` in the repository root rather
 * than CDK Docker bundling: cargo-lambda cross-links with zig against an old glibc, so no
 * container (and no Docker) is needed, and cargo's own incremental build does the caching.
 */
export function resolveLambdaAsset(options: LambdaCodeOptions = {}): ResolvedLambdaAsset {
  const arch = options.architecture ?? lambda.Architecture.X86_64;
  if (options.assetDir) {
    const dir = path.resolve(options.assetDir);
    const bootstrap = path.join(dir, 'bootstrap');
    if (!fs.existsSync(bootstrap)) {
      throw new Error(`lambdaAsset ${dir} holds no 'bootstrap' file; build it with 'cargo lambda build --release' or drop -c lambdaAsset`);
    }
    // An ELF built for the other architecture would deploy fine and then fail at every
    // invocation ("exec format error"); a non-ELF placeholder is only checked for existence.
    const found = elfArchitecture(bootstrap);
    if (found && found !== arch.name) {
      throw new Error(`${bootstrap} is built for ${found} but the function is ${arch.name}; rebuild it or set -c architecture=${found}`);
    }
    return { dir, built: false };
  }

  const repoRoot = options.repoRoot ?? DEFAULT_REPO_ROOT;
  const env = options.env ?? process.env;
  const dir = defaultAssetDir(repoRoot, env);
  const bootstrap = path.join(dir, 'bootstrap');
  const reason = rebuildReason(bootstrap, repoRoot, arch);
  if (!reason) {
    return { dir, built: false };
  }
  buildWithCargoLambda(repoRoot, arch, env, reason);
  if (!fs.existsSync(bootstrap)) {
    throw new Error(`'cargo lambda build' succeeded but wrote no ${bootstrap}; is CARGO_TARGET_DIR set differently for cargo?`);
  }
  return { dir, built: true };
}

/** `lambda.Code` for the function, see {@link resolveLambdaAsset}. */
export function syncRoutesCode(options: LambdaCodeOptions = {}): lambda.Code {
  return lambda.Code.fromAsset(resolveLambdaAsset(options).dir);
}

/** Why the binary must be (re)built, or undefined when the existing one is good. */
function rebuildReason(bootstrap: string, repoRoot: string, arch: lambda.Architecture): string | undefined {
  if (!fs.existsSync(bootstrap)) {
    return `no ${bootstrap} yet`;
  }
  const found = elfArchitecture(bootstrap);
  if (found && found !== arch.name) {
    // cargo-lambda writes both architectures to the same folder.
    return `${bootstrap} is built for ${found}, the function is ${arch.name}`;
  }
  // A `git pull` must not deploy the old binary: rebuild when any source is newer.
  const builtAt = fs.statSync(bootstrap).mtimeMs;
  const sources = ['Cargo.toml', 'Cargo.lock', 'src'].map((p) => path.join(repoRoot, p));
  const newer = sources.find((p) => newestMtime(p) > builtAt);
  return newer ? `${path.relative(repoRoot, newer)} changed since the last build` : undefined;
}

function newestMtime(p: string): number {
  if (!fs.existsSync(p)) {
    return 0;
  }
  const stat = fs.statSync(p);
  if (!stat.isDirectory()) {
    return stat.mtimeMs;
  }
  return fs.readdirSync(p).reduce((max, entry) => Math.max(max, newestMtime(path.join(p, entry))), stat.mtimeMs);
}

/** 'x86_64' or 'arm64' from an ELF header, or undefined for anything else (a placeholder). */
export function elfArchitecture(file: string): string | undefined {
  const header = Buffer.alloc(20);
  const fd = fs.openSync(file, 'r');
  try {
    if (fs.readSync(fd, header, 0, 20, 0) < 20 || header.readUInt32BE(0) !== 0x7f454c46) {
      return undefined;
    }
  } finally {
    fs.closeSync(fd);
  }
  // e_machine, little-endian on both Lambda architectures.
  switch (header.readUInt16LE(18)) {
    case 0x3e:
      return lambda.Architecture.X86_64.name;
    case 0xb7:
      return lambda.Architecture.ARM_64.name;
    default:
      return 'unknown';
  }
}

function buildWithCargoLambda(repoRoot: string, arch: lambda.Architecture, env: NodeJS.ProcessEnv, reason: string): void {
  const args = ['lambda', 'build', '--release'];
  if (arch.name === lambda.Architecture.ARM_64.name) {
    args.push('--arm64');
  }
  // cargo-lambda comes from `pip install cargo-lambda` (on PATH) or from the repository's
  // tests/tools/setup.sh virtualenv; look there too so the venv need not be activated.
  const venvBin = path.join(repoRoot, '.venv', 'bin');
  const childEnv = { ...env, PATH: [venvBin, env.PATH ?? ''].join(path.delimiter) };
  // stdout would mix into `cdk synth`'s template output, so everything goes to stderr.
  process.stderr.write(`sync-routes: ${reason}; running 'cargo ${args.join(' ')}' in ${repoRoot}\n`);
  const result = spawnSync('cargo', args, { cwd: repoRoot, env: childEnv, stdio: ['ignore', 2, 2] });
  if (result.error || result.status !== 0) {
    const why = result.error ? result.error.message : `exit status ${result.status}`;
    throw new Error(
      `Could not build the sync-routes Lambda (${why}).\n` +
        `It needs Rust (rustup) and cargo-lambda: 'pip install cargo-lambda', or 'bash tests/tools/setup.sh' ` +
        `for the repository's .venv. Or build it elsewhere and pass -c lambdaAsset=<dir holding bootstrap>.`,
    );
  }
}
