// Static checks of docker-compose.yml and the Dockerfiles it builds. There is no Docker engine
// where the tests run, so the compose file is validated by reading it, against the repository.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parse, parseDocument } from 'yaml';
import { SEARCH_ATTRIBUTES } from '../common/ids';
import { DEFAULT_TASK_QUEUE, workerConfigFromEnv } from '../worker/config';

const ROOT = path.resolve(__dirname, '..');
const COMPOSE_FILE = path.join(ROOT, 'docker-compose.yml');

type Build = string | { context?: string; dockerfile?: string };
type Port = string | number | { target?: number; published?: string | number; host_ip?: string };
type DependsOn = string[] | Record<string, { condition?: string }>;
type NamedRefs = (string | { source?: string })[];
interface Service {
  image?: string;
  build?: Build;
  command?: string | string[];
  environment?: Record<string, string | number | boolean | null> | string[];
  ports?: Port[];
  depends_on?: DependsOn;
  secrets?: NamedRefs;
  volumes?: (string | { type?: string; source?: string })[];
  networks?: string[] | Record<string, unknown>;
  healthcheck?: { test?: string | string[] };
}
interface Compose {
  services?: Record<string, Service>;
  secrets?: Record<string, { file?: string; environment?: string } | null>;
  volumes?: Record<string, unknown>;
  networks?: Record<string, unknown>;
}

const composeText = readFileSync(COMPOSE_FILE, 'utf8');
// Compose resolves YAML merge keys (`<<: *anchor`); so must the parser here.
const compose = parse(composeText, { merge: true }) as Compose;
const services = compose.services ?? {};
const serviceEntries = Object.entries(services);

const EXPECTED_SERVICES = ['postgresql', 'temporal', 'temporal-search-attributes', 'temporal-ui', 'worker', 'etcd1', 'etcd2', 'etcd3', 'etcd4', 'etcd5'];
const ETCD_HOSTS = EXPECTED_SERVICES.filter((s) => s.startsWith('etcd'));

/** The private IPv4 ranges (RFC 1918), as dotted quads (with or without a /prefix). */
const PRIVATE_IPV4 = /(?<![\d.])(?:10\.\d{1,3}|172\.(?:1[6-9]|2\d|3[01])|192\.168)\.\d{1,3}\.\d{1,3}(?![\d.]*\d)/g;
const ANY_IPV4 = /(?<![\d.])\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?![\d.]*\d)/g;

/** `name:tag` (or `name@sha256:...`) with a registry host:port allowed; the tag must not be `latest`. */
function imageTag(image: string): string | undefined {
  if (/@sha256:[0-9a-f]{64}$/.test(image)) return image.slice(image.indexOf('@') + 1);
  const last = image.slice(image.lastIndexOf('/') + 1);
  const i = last.indexOf(':');
  return i < 0 ? undefined : last.slice(i + 1);
}

function assertPinned(image: string, where: string): void {
  const tag = imageTag(image);
  assert.ok(tag, `${where}: image "${image}" has no explicit tag`);
  assert.notEqual(tag, 'latest', `${where}: image "${image}" is pinned to "latest"`);
  assert.doesNotMatch(image, /\$\{/, `${where}: image "${image}" depends on a variable`);
}

function buildOf(b: Build): { context: string; dockerfile: string } {
  return typeof b === 'string' ? { context: b, dockerfile: 'Dockerfile' } : { context: b.context ?? '.', dockerfile: b.dockerfile ?? 'Dockerfile' };
}

function names(refs: NamedRefs | string[] | Record<string, unknown> | undefined): string[] {
  if (!refs) return [];
  if (!Array.isArray(refs)) return Object.keys(refs);
  return refs.map((r) => (typeof r === 'string' ? r : (r.source ?? '')));
}

function envOf(s: Service): Record<string, string> {
  const env = s.environment ?? {};
  if (Array.isArray(env)) {
    return Object.fromEntries(env.map((kv) => {
      const i = kv.indexOf('=');
      return i < 0 ? [kv, ''] : [kv.slice(0, i), kv.slice(i + 1)];
    }));
  }
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v == null ? '' : String(v)]));
}

/** Host IP of a published port, or undefined when it binds to every interface. */
function hostIpOf(p: Port): string | undefined {
  if (typeof p === 'number') return undefined;
  if (typeof p === 'object') return p.host_ip; // without `published`, Compose picks a host port: still published
  // [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]; an IPv6 host IP is bracketed
  const spec = p.replace(/\/(tcp|udp|sctp)$/, '');
  const v6 = /^\[([^\]]+)\]:/.exec(spec);
  if (v6) return v6[1];
  const parts = spec.split(':');
  return parts.length === 3 ? parts[0] : undefined;
}

/** The Dockerfiles the compose file builds, with their build contexts (absolute). */
function dockerfiles(): { service: string; context: string; file: string }[] {
  return serviceEntries
    .filter(([, s]) => s.build !== undefined)
    .map(([name, s]) => {
      const b = buildOf(s.build!);
      const context = path.resolve(ROOT, b.context);
      return { service: name, context, file: path.resolve(context, b.dockerfile) };
    });
}

/** Sources of the simple (non-JSON) COPY/ADD instructions, minus flags; `--from` copies are skipped. */
function copySources(dockerfileText: string): string[] {
  const joined = dockerfileText.replace(/\\\r?\n/g, ' ');
  const out: string[] = [];
  for (const line of joined.split(/\r?\n/)) {
    const m = /^\s*(?:COPY|ADD)\s+(.*)$/i.exec(line);
    if (!m) continue;
    const words = m[1]!.trim().split(/\s+/);
    if (words.some((w) => w.startsWith('--from'))) continue;
    const args = words.filter((w) => !w.startsWith('--'));
    out.push(...args.slice(0, -1));
  }
  return out;
}

/** Top-level repository entries (directories or files) that `entry` loads at run time, through relative imports. */
function runtimeTopLevelEntries(entry: string): Set<string> {
  const seen = new Set<string>();
  const queue = [path.resolve(ROOT, entry)];
  const resolveModule = (from: string, spec: string): string => {
    const base = path.resolve(path.dirname(from), spec);
    for (const c of [base, `${base}.ts`, `${base}.js`, path.join(base, 'index.ts'), path.join(base, 'index.js')]) {
      if (existsSync(c) && statSync(c).isFile()) return c;
    }
    assert.fail(`${path.relative(ROOT, from)} imports ${spec}, which does not resolve to a file`);
  };
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const src = readFileSync(file, 'utf8');
    const specs = [...src.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|\brequire(?:\.resolve)?\(\s*)['"](\.{1,2}\/[^'"]*|\.{1,2})['"]/g)].map((m) => m[1]!);
    for (const spec of specs) queue.push(resolveModule(file, spec));
  }
  return new Set([...seen].map((f) => path.relative(ROOT, f).split(path.sep)[0]!));
}

describe('docker-compose.yml', () => {
  it('parses as a single YAML document without errors or warnings', () => {
    const doc = parseDocument(composeText, { merge: true });
    assert.deepEqual(doc.errors.map((e) => e.message), []);
    assert.deepEqual(doc.warnings.map((e) => e.message), []);
    assert.equal(typeof compose, 'object');
    assert.ok(compose.services && typeof compose.services === 'object', 'no services: section');
    // a merge key the parser left as a plain key would mean Compose sees something else than this test
    assert.doesNotMatch(JSON.stringify(compose), /"<<"/);
  });

  it('defines exactly the expected services', () => {
    assert.deepEqual(Object.keys(services).sort(), [...EXPECTED_SERVICES].sort());
  });

  it('pins every image to an explicit tag that is not "latest", and every service has an image or a build', () => {
    for (const [name, s] of serviceEntries) {
      assert.ok(s.image !== undefined || s.build !== undefined, `${name}: neither image nor build`);
      if (s.image !== undefined) assertPinned(s.image, name);
    }
    assert.equal(services.postgresql?.image, 'postgres:16');
    assert.equal(services.temporal?.image, 'temporalio/auto-setup:1.29.1');
    assert.equal(services['temporal-ui']?.image, 'temporalio/ui:2.42.1');
    assert.match(services['temporal-search-attributes']?.image ?? '', /^temporalio\/admin-tools:1\.29\.1-/);
  });

  it('registers every search attribute the client starts operations with', () => {
    const cmd = JSON.stringify(services['temporal-search-attributes']?.command ?? '');
    for (const key of SEARCH_ATTRIBUTES) assert.match(cmd, new RegExp(`--name ${key.name} --type Keyword`), `${key.name} is not registered`);
  });

  it('pins the base image of every Dockerfile it builds', () => {
    const files = dockerfiles();
    assert.ok(files.length > 0);
    for (const { service, file } of files) {
      const froms = [...readFileSync(file, 'utf8').matchAll(/^\s*FROM\s+(?:--\S+\s+)*(\S+)/gim)].map((m) => m[1]!);
      assert.ok(froms.length > 0, `${service}: ${file} has no FROM`);
      for (const image of froms) assertPinned(image, `${service} (${path.relative(ROOT, file)})`);
    }
  });

  it('publishes ports on 127.0.0.1 only', () => {
    let published = 0;
    for (const [name, s] of serviceEntries) {
      for (const p of s.ports ?? []) {
        published++;
        assert.equal(hostIpOf(p), '127.0.0.1', `${name}: port ${JSON.stringify(p)} is not bound to 127.0.0.1`);
      }
    }
    assert.ok(published >= 2, 'expected Temporal and the Web UI to be published');
    assert.deepEqual(services.temporal?.ports, ['127.0.0.1:7233:7233']);
    assert.deepEqual(services['temporal-ui']?.ports, ['127.0.0.1:8080:8080']);
  });

  it('depends only on defined services, and waits for health only where there is a healthcheck', () => {
    for (const [name, s] of serviceEntries) {
      const deps = s.depends_on ?? [];
      for (const dep of names(deps)) {
        assert.ok(dep in services, `${name} depends on undefined service "${dep}"`);
        assert.notEqual(dep, name, `${name} depends on itself`);
        const condition = Array.isArray(deps) ? undefined : deps[dep]?.condition;
        if (condition === 'service_healthy') assert.ok(services[dep]?.healthcheck, `${name} waits for ${dep} to be healthy, but ${dep} has no healthcheck`);
      }
    }
    assert.deepEqual(services.temporal?.depends_on, { postgresql: { condition: 'service_healthy' } });
    assert.match(JSON.stringify(services.postgresql?.healthcheck?.test), /pg_isready/);
  });

  it('builds from contexts and Dockerfiles that exist, copying only files that exist', () => {
    const files = dockerfiles();
    assert.deepEqual(files.map((f) => f.service).sort(), ['etcd1', 'etcd2', 'etcd3', 'etcd4', 'etcd5', 'worker']);
    for (const { service, context, file } of files) {
      assert.ok(existsSync(context) && statSync(context).isDirectory(), `${service}: build context ${context} is not a directory`);
      assert.ok(file.startsWith(ROOT + path.sep), `${service}: Dockerfile ${file} is outside the repository`);
      assert.ok(existsSync(file), `${service}: Dockerfile ${path.relative(ROOT, file)} does not exist`);
      for (const src of copySources(readFileSync(file, 'utf8'))) {
        assert.ok(existsSync(path.resolve(context, src)), `${service}: ${path.relative(ROOT, file)} copies ${src}, which is not in the build context`);
      }
    }
    assert.equal(buildOf(services.worker!.build!).dockerfile, 'docker/worker/Dockerfile');
    for (const h of ETCD_HOSTS) assert.equal(buildOf(services[h]!.build!).dockerfile, 'docker/etcd-host/Dockerfile');
  });

  it('copies into the worker image every part of the repository the worker loads', () => {
    const { context, file } = dockerfiles().find((f) => f.service === 'worker')!;
    const copied = new Set(copySources(readFileSync(file, 'utf8')).map((s) => path.relative(context, path.resolve(context, s)).split(path.sep)[0]!));
    const needed = runtimeTopLevelEntries('worker/main.ts');
    assert.ok(needed.has('worker') && needed.has('activities') && needed.has('workflows'), `import walk found only ${[...needed].join(', ')}`);
    for (const n of [...needed, 'package.json', 'package-lock.json']) assert.ok(copied.has(n), `the worker loads ${n}/, which docker/worker/Dockerfile does not copy`);
    assert.match(readFileSync(file, 'utf8'), /npm ci --omit=dev/);
    // --omit=dev works only while the runner the `worker` script uses is a runtime dependency
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string>; dependencies: Record<string, string> };
    assert.match(pkg.scripts.worker ?? '', /\btsx\b/);
    assert.ok(pkg.dependencies.tsx, 'tsx must be a runtime dependency for npm ci --omit=dev');
  });

  it('runs the worker with `npm run worker`, a script package.json defines', () => {
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    assert.ok(pkg.scripts.worker);
    assert.deepEqual(services.worker?.command, ['npm', 'run', 'worker']);
  });

  it('gives the worker exactly the environment worker/config.ts reads, and a valid one', () => {
    const configSrc = readFileSync(path.join(ROOT, 'worker/config.ts'), 'utf8');
    const read = new Set([...configSrc.matchAll(/\b(STEWARD_[A-Z0-9_]+)\s*:/g)].map((m) => m[1]!));
    assert.ok(read.size >= 5, `found only ${[...read].join(', ')} in worker/config.ts`);
    const env = envOf(services.worker!);
    // its own settings, and the connection the Temporal way (client/connection.ts reads TEMPORAL_*)
    assert.deepEqual(Object.keys(env).filter((k) => k.startsWith('STEWARD_')).sort(), [...read].sort());
    assert.deepEqual(Object.keys(env).filter((k) => !k.startsWith('STEWARD_')).sort(), ['TEMPORAL_ADDRESS', 'TEMPORAL_NAMESPACE']);
    // the values pass the worker's own validation
    const config = workerConfigFromEnv({ ...env, HOME: '/nonexistent' });
    assert.equal(config.taskQueue, DEFAULT_TASK_QUEUE);
    assert.equal(config.temporal.options.address, 'temporal:7233');
    assert.ok(config.temporal.options.address.split(':')[0]! in services, 'TEMPORAL_ADDRESS does not name a service');
  });

  it('points the worker at its secret files under /run/secrets/, each one granted to it', () => {
    const env = envOf(services.worker!);
    const granted = names(services.worker!.secrets);
    for (const v of ['STEWARD_SSH_KEY', 'STEWARD_ETCD_CA', 'STEWARD_ETCD_CERT', 'STEWARD_ETCD_KEY']) {
      const m = /^\/run\/secrets\/([A-Za-z0-9_.-]+)$/.exec(env[v] ?? '');
      assert.ok(m, `${v}=${env[v]} is not a file under /run/secrets/`);
      assert.ok(granted.includes(m[1]!), `${v} names secret "${m[1]}", which the worker is not given`);
    }
  });

  it('declares every secret a service uses, reads them from files under ./secrets/, which git ignores', () => {
    const declared = compose.secrets ?? {};
    const used = new Set<string>();
    for (const [name, s] of serviceEntries) {
      for (const secret of names(s.secrets)) {
        assert.ok(secret in declared, `${name} uses secret "${secret}", which is not declared under top-level secrets:`);
        used.add(secret);
      }
    }
    assert.ok(used.size >= 4);
    for (const [secret, def] of Object.entries(declared)) {
      assert.ok(used.has(secret), `secret "${secret}" is declared but no service uses it`);
      const file = def?.file;
      assert.ok(file, `secret "${secret}" has no file:`);
      const abs = path.resolve(ROOT, file);
      assert.ok(abs.startsWith(path.join(ROOT, 'secrets') + path.sep), `secret "${secret}" is read from ${file}, not from ./secrets/`);
      // git check-ignore exits 0 when the path is ignored (the file need not exist)
      execFileSync('git', ['check-ignore', '-q', '--no-index', path.relative(ROOT, abs)], { cwd: ROOT });
    }
  });

  it('declares every named volume and network a service uses', () => {
    const volumes = compose.volumes ?? {};
    const networks = compose.networks ?? {};
    for (const [name, s] of serviceEntries) {
      for (const v of s.volumes ?? []) {
        const source = typeof v === 'string' ? v.split(':')[0]! : (v.source ?? '');
        const named = typeof v === 'string' ? !/^[./~$]/.test(source) && v.includes(':') : v.type === 'volume';
        if (named) assert.ok(source in volumes, `${name} uses volume "${source}", which is not declared`);
      }
      const nets = names(s.networks);
      assert.ok(nets.length > 0, `${name} is on no user-defined network`);
      for (const n of nets) assert.ok(n in networks, `${name} is on network "${n}", which is not declared`);
    }
    assert.match(JSON.stringify(services.postgresql?.volumes), /postgresql-data:/);
  });

  it('lets every service reach the services it addresses by name', () => {
    const shares = (a: string, b: string) => names(services[a]!.networks).some((n) => names(services[b]!.networks).includes(n));
    const pairs: [string, string][] = [
      ['temporal', 'postgresql'],
      ['temporal-ui', 'temporal'],
      ['worker', 'temporal'],
      ...ETCD_HOSTS.map((h): [string, string] => ['worker', h]),
    ];
    for (const [a, b] of pairs) assert.ok(shares(a, b), `${a} and ${b} share no network`);
    assert.equal(envOf(services.temporal!).POSTGRES_SEEDS, 'postgresql');
    assert.equal(envOf(services['temporal-ui']!).TEMPORAL_ADDRESS, 'temporal:7233');
  });

  it('contains no private-range IPv4 address, and no IPv4 literal but loopback', () => {
    // the patterns themselves
    const cases = JSON.parse(readFileSync(path.join(__dirname, 'fixtures', 'ipv4-pattern-cases.json'), 'utf8')) as { private: string[]; notPrivate: string[] };
    for (const ip of cases.private) assert.match(ip, new RegExp(PRIVATE_IPV4.source));
    for (const ip of cases.notPrivate) assert.doesNotMatch(ip, new RegExp(PRIVATE_IPV4.source));

    const files = [COMPOSE_FILE, ...new Set(dockerfiles().map((f) => f.file)), path.join(ROOT, 'docker/etcd-host/entrypoint.sh')];
    for (const f of files) {
      const text = readFileSync(f, 'utf8');
      assert.deepEqual([...text.matchAll(PRIVATE_IPV4)].map((m) => m[0]), [], `${path.relative(ROOT, f)} has a private-range address`);
      const others = [...text.matchAll(ANY_IPV4)].map((m) => m[0]).filter((ip) => !ip.startsWith('127.'));
      assert.deepEqual(others, [], `${path.relative(ROOT, f)} has a non-loopback IPv4 literal`);
    }
  });
});
