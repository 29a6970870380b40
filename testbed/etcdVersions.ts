/**
 * Which etcd the bed runs. Debian's etcd-server (3.4.23) by default; `ETCD_VERSION=3.5|3.6|3.7`
 * (or a full version such as 3.6.16, or a directory holding `etcd` and `etcdctl`) runs that
 * version instead, built once from etcd's own Go modules into a cache outside the repository
 * ($STEWARD_CACHE_DIR, else $XDG_CACHE_HOME/etcd-steward, else ~/.cache/etcd-steward), like the
 * Temporal CLI: a version is built only when asked for.
 *
 * `go install go.etcd.io/etcd/server/v3@vX` does not work (the module's go.mod has `replace`
 * directives, and the binary would be named `server`), so the build is a tiny main module of our
 * own that requires go.etcd.io/etcd/server/v3 and go.etcd.io/etcd/etcdctl/v3 at the version and
 * calls their entry points (etcdmain.Main, ctlv3.MustStart).
 */
import { execFile } from 'node:child_process';
import { accessSync, constants, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

/** The release each minor version stands for here (served by the Go module proxy this machine reaches). */
export const ETCD_RELEASES: Record<string, string> = { '3.5': '3.5.35', '3.6': '3.6.16', '3.7': '3.7.3' };
/** Debian's etcd-server, the bed's quick default. */
export const DEBIAN_ETCD = { etcd: '/usr/bin/etcd', etcdctl: '/usr/bin/etcdctl' };

export interface EtcdBinaries {
  /** What was asked for ("3.4 (Debian)", "3.6.16", or the directory). */
  label: string;
  etcd: string;
  etcdctl: string;
}

export function stewardCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.STEWARD_CACHE_DIR || join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'etcd-steward');
}

const executable = (p: string) => {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
};

/**
 * The binaries for `request` (default $ETCD_VERSION): building them first when a version is asked
 * for and not in the cache yet. Throws a message naming the choices for anything else.
 */
export async function resolveEtcd(request: string | undefined = process.env.ETCD_VERSION, log: (line: string) => void = () => undefined): Promise<EtcdBinaries> {
  const asked = (request ?? '').trim();
  if (asked === '' || asked === '3.4' || asked === 'debian') {
    if (!executable(DEBIAN_ETCD.etcd)) throw new Error(`etcd 3.4 is Debian's etcd-server, and ${DEBIAN_ETCD.etcd} is not there: run scripts/setup.sh (it installs etcd-server)`);
    return { label: '3.4 (Debian)', ...DEBIAN_ETCD };
  }
  if (asked.startsWith('/') || asked.startsWith('.')) {
    const dir = resolve(asked);
    const b = { label: dir, etcd: join(dir, 'etcd'), etcdctl: join(dir, 'etcdctl') };
    if (!executable(b.etcd)) throw new Error(`ETCD_VERSION=${asked}: no executable etcd in ${dir} (a directory holding etcd and etcdctl)`);
    return b;
  }
  const full = ETCD_RELEASES[asked] ?? (/^3\.\d+\.\d+$/.test(asked) ? asked : undefined);
  if (!full) throw new Error(`ETCD_VERSION=${asked} is not one the bed knows: use 3.4 (Debian's, the default), ${Object.keys(ETCD_RELEASES).join(', ')} (${Object.values(ETCD_RELEASES).join(', ')}), a full version such as 3.6.16, or a directory holding etcd and etcdctl`);
  const dir = join(stewardCacheDir(), 'etcd', `v${full}`);
  const b = { label: full, etcd: join(dir, 'etcd'), etcdctl: join(dir, 'etcdctl') };
  if (executable(b.etcd) && executable(b.etcdctl)) return b;
  await buildEtcd(full, dir, log);
  return b;
}

/** Builds etcd and etcdctl `version` into `dir` (atomically: a half-built version is never used). */
export async function buildEtcd(version: string, dir: string, log: (line: string) => void = () => undefined): Promise<{ seconds: number }> {
  const t0 = Date.now();
  const go = ['/usr/local/go/bin/go', join(process.env.GOROOT ?? '', 'bin', 'go')].find(executable) ?? 'go';
  const src = `${dir}.src`;
  rmSync(src, { recursive: true, force: true });
  mkdirSync(join(src, 'etcd'), { recursive: true });
  mkdirSync(join(src, 'etcdctl'), { recursive: true });
  writeFileSync(join(src, 'go.mod'), 'module etcd-steward.local/etcd-build\n\ngo 1.24\n');
  writeFileSync(join(src, 'etcd', 'main.go'), 'package main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\nfunc main() { etcdmain.Main(os.Args) }\n');
  writeFileSync(join(src, 'etcdctl', 'main.go'), 'package main\n\nimport "go.etcd.io/etcd/etcdctl/v3/ctlv3"\n\nfunc main() { ctlv3.MustStart() }\n');
  const run = async (args: string[]) => {
    try {
      await promisify(execFile)(go, args, { cwd: src, env: { ...process.env, GOFLAGS: '-mod=mod', CGO_ENABLED: '0' }, maxBuffer: 16 * 1024 * 1024 });
    } catch (e) {
      const err = e as { stderr?: string; message: string };
      throw new Error(`building etcd ${version} failed at \`go ${args.join(' ')}\`: ${(err.stderr || err.message).trim().split('\n').slice(-6).join(' | ')}`);
    }
  };
  log(`building etcd ${version} and etcdctl from go.etcd.io/etcd/{server,etcdctl}/v3@v${version} (once; cached in ${dir})`);
  await run(['get', `go.etcd.io/etcd/server/v3@v${version}`, `go.etcd.io/etcd/etcdctl/v3@v${version}`]);
  await run(['mod', 'tidy']);
  const out = `${dir}.tmp`;
  rmSync(out, { recursive: true, force: true });
  await run(['build', '-trimpath', '-o', join(out, 'etcd'), './etcd']);
  await run(['build', '-trimpath', '-o', join(out, 'etcdctl'), './etcdctl']);
  rmSync(dir, { recursive: true, force: true });
  renameSync(out, dir);
  rmSync(src, { recursive: true, force: true });
  const seconds = Math.round((Date.now() - t0) / 100) / 10;
  log(`etcd ${version} built in ${seconds} s`);
  return { seconds };
}
