// Unit: how the worker, the client and the CLI read their Temporal connection (client/connection.ts):
// the Temporal CLI's config file profiles and TEMPORAL_* variables through @temporalio/envconfig,
// their precedence, the deprecated STEWARD_* aliases, files that cannot be read named with the
// setting that named them, and no secret in what is printed.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TemporalConfigError, temporalConnection } from '../client/connection';

describe('the Temporal connection settings', () => {
  let dir: string;
  let toml: string;
  const f = (n: string) => join(dir, n);
  /** An environment with nothing of the machine's: no HOME config file, no TEMPORAL_* of the test run. */
  const env = (vars: Record<string, string> = {}) => ({ HOME: dir, PATH: process.env.PATH ?? '', ...vars });
  const warnings: string[] = [];
  const read = (vars: Record<string, string> = {}, more: Parameters<typeof temporalConnection>[0] = {}) => temporalConnection({ env: env(vars), warn: (m) => warnings.push(m), ...more });
  const refuses = (fn: () => unknown, re: RegExp) =>
    assert.throws(fn, (e: unknown) => {
      assert.ok(e instanceof TemporalConfigError, String(e));
      assert.match(e.message, re);
      return true;
    });

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'etcd-steward-conn-'));
    for (const n of ['client.pem', 'client-key.pem', 'ca.pem']) writeFileSync(f(n), `-----BEGIN TEST ${n}-----\n`);
    toml = f('temporal.toml');
    writeFileSync(
      toml,
      [
        '[profile.default]',
        'address = "temporal.lab:7233"',
        'namespace = "lab"',
        '',
        '[profile.prod]',
        'address = "temporal.prod:7233"',
        'namespace = "prod"',
        '[profile.prod.tls]',
        `client_cert_path = "${f('client.pem')}"`,
        `client_key_path = "${f('client-key.pem')}"`,
        `server_ca_cert_path = "${f('ca.pem')}"`,
        'server_name = "temporal.prod"',
        '',
        '[profile.broken.tls]',
        `client_cert_path = "${f('missing.pem')}"`,
        `client_key_path = "${f('client-key.pem')}"`,
        '',
      ].join('\n'),
    );
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('with nothing set: 127.0.0.1:7233, namespace default, no TLS', () => {
    const c = read();
    assert.deepEqual(c.options, { address: '127.0.0.1:7233' });
    assert.equal(c.namespace, 'default');
    assert.equal(c.security, 'plaintext');
    assert.equal(c.description, '127.0.0.1:7233 (plaintext), namespace default');
  });

  it('a profile of the config file, TEMPORAL_* over it, explicit options over both', () => {
    assert.equal(read({ TEMPORAL_CONFIG_FILE: toml }).options.address, 'temporal.lab:7233', 'the default profile');
    const prod = read({ TEMPORAL_CONFIG_FILE: toml, TEMPORAL_PROFILE: 'prod' });
    assert.equal(prod.options.address, 'temporal.prod:7233');
    assert.equal(prod.namespace, 'prod');
    assert.equal(prod.security, 'mTLS');
    const tls = prod.options.tls as { serverNameOverride?: string; clientCertPair?: { crt: Buffer; key: Buffer }; serverRootCACertificate?: Buffer };
    assert.equal(tls.serverNameOverride, 'temporal.prod');
    assert.match(Buffer.from(tls.clientCertPair!.crt).toString(), /client\.pem/);
    assert.match(Buffer.from(tls.serverRootCACertificate!).toString(), /ca\.pem/);
    assert.equal(prod.description, 'temporal.prod:7233 (mTLS, profile prod), namespace prod');
    const env = read({ TEMPORAL_CONFIG_FILE: toml, TEMPORAL_PROFILE: 'prod', TEMPORAL_ADDRESS: 'proxy.prod:443', TEMPORAL_NAMESPACE: 'ops' });
    assert.equal(env.options.address, 'proxy.prod:443', 'TEMPORAL_ADDRESS over the profile');
    assert.equal(env.namespace, 'ops');
    assert.equal(env.security, 'mTLS', 'the profile\'s TLS stays');
    const explicit = read({ TEMPORAL_CONFIG_FILE: toml, TEMPORAL_ADDRESS: 'proxy.prod:443' }, { address: '127.0.0.1:9999', namespace: 'given', profile: 'prod', configFile: toml });
    assert.equal(explicit.options.address, '127.0.0.1:9999', '--address over TEMPORAL_ADDRESS');
    assert.equal(explicit.namespace, 'given');
    assert.equal(explicit.security, 'mTLS', '--profile prod');
    const envTls = read({ TEMPORAL_ADDRESS: 'x:1', TEMPORAL_TLS_CLIENT_CERT_PATH: f('client.pem'), TEMPORAL_TLS_CLIENT_KEY_PATH: f('client-key.pem') });
    assert.equal(envTls.security, 'mTLS', 'TLS from the environment alone');
    assert.equal(read({ TEMPORAL_TLS: 'true' }).security, 'TLS');
  });

  it('files that cannot be read are named with the setting that named them; half a client pair is refused', () => {
    refuses(() => read({ TEMPORAL_TLS_CLIENT_CERT_PATH: f('nope.pem'), TEMPORAL_TLS_CLIENT_KEY_PATH: f('client-key.pem') }), /the Temporal TLS client certificate .*nope\.pem \(TEMPORAL_TLS_CLIENT_CERT_PATH\) cannot be read: ENOENT/);
    refuses(() => read({ TEMPORAL_CONFIG_FILE: toml, TEMPORAL_PROFILE: 'broken' }), /client certificate .*missing\.pem \(tls\.client_cert_path of profile "broken" in .*temporal\.toml\) cannot be read/);
    chmodSync(f('ca.pem'), 0o000);
    try {
      if (process.getuid?.() !== 0) refuses(() => read({ TEMPORAL_TLS_SERVER_CA_CERT_PATH: f('ca.pem') }), /server CA certificate .*ca\.pem \(TEMPORAL_TLS_SERVER_CA_CERT_PATH\) cannot be read: EACCES/);
    } finally {
      chmodSync(f('ca.pem'), 0o644);
    }
    refuses(() => read({ TEMPORAL_TLS_CLIENT_CERT_PATH: f('client.pem') }), /name a client certificate but no key: set both TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH/);
    refuses(() => read({ TEMPORAL_CONFIG_FILE: f('absent.toml') }), /the Temporal config file .*absent\.toml \(TEMPORAL_CONFIG_FILE\) cannot be read/);
    refuses(() => read({ TEMPORAL_CONFIG_FILE: toml, TEMPORAL_PROFILE: 'staging' }), /Profile 'staging' not found/);
    refuses(() => read({}, { profile: 'prod' }), /Temporal profile "prod" \(--profile\) asked for, but there is no config file/);
    refuses(() => read({ TEMPORAL_ADDRESS: 'temporal.example' }), /the Temporal address "temporal\.example" must be host:port \(from TEMPORAL_ADDRESS\)/);
  });

  it('STEWARD_TEMPORAL_ADDRESS and STEWARD_NAMESPACE still work for this release, saying so; TEMPORAL_* win when both are set', () => {
    warnings.length = 0;
    const old = read({ STEWARD_TEMPORAL_ADDRESS: 'old.example:7233', STEWARD_NAMESPACE: 'oldns' });
    assert.equal(old.options.address, 'old.example:7233');
    assert.equal(old.namespace, 'oldns');
    assert.ok(warnings.some((w) => /^STEWARD_TEMPORAL_ADDRESS is deprecated and read for this release only: set TEMPORAL_ADDRESS instead/.test(w)), warnings.join('\n'));
    assert.ok(warnings.some((w) => /^STEWARD_NAMESPACE is deprecated .*set TEMPORAL_NAMESPACE/.test(w)), warnings.join('\n'));
    const both = read({ STEWARD_TEMPORAL_ADDRESS: 'old2.example:7233', TEMPORAL_ADDRESS: 'new.example:7233' });
    assert.equal(both.options.address, 'new.example:7233');
    assert.ok(warnings.some((w) => /^STEWARD_TEMPORAL_ADDRESS is deprecated and ignored here: TEMPORAL_ADDRESS is set too, and wins/.test(w)), warnings.join('\n'));
  });

  it('no secret in what is printed: an API key turns TLS on and shows as "API key" only', () => {
    const secret = 'tmprl-secret-api-key-0123456789';
    const c = read({ TEMPORAL_ADDRESS: 'cloud.example:7233', TEMPORAL_API_KEY: secret });
    assert.equal(c.options.apiKey, secret);
    assert.equal(c.security, 'TLS');
    assert.equal(c.description, 'cloud.example:7233 (TLS, API key), namespace default');
    assert.ok(!JSON.stringify({ d: c.description, w: warnings }).includes(secret));
    const prod = read({ TEMPORAL_CONFIG_FILE: toml, TEMPORAL_PROFILE: 'prod' });
    assert.ok(!prod.description.includes('BEGIN'), 'no key material in the description');
  });
});
