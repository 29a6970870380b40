/**
 * How the worker, the typed client and the CLI reach Temporal: one place, the ecosystem's way.
 *
 * Settings come from `@temporalio/envconfig`, exactly as the Temporal CLI and SDKs read them: a
 * profile of the TOML config file (`$TEMPORAL_CONFIG_FILE`, else
 * `~/.config/temporalio/temporal.toml`; profile `$TEMPORAL_PROFILE`, else `default`), overridden by
 * `TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`, `TEMPORAL_API_KEY`, `TEMPORAL_TLS`,
 * `TEMPORAL_TLS_CLIENT_CERT_PATH`/`_DATA`, `TEMPORAL_TLS_CLIENT_KEY_PATH`/`_DATA`,
 * `TEMPORAL_TLS_SERVER_CA_CERT_PATH`/`_DATA`, `TEMPORAL_TLS_SERVER_NAME`, `TEMPORAL_GRPC_META_*`;
 * then by what a caller gives explicitly (the CLI's `--address`, `--namespace`, `--profile`).
 *
 * The older `STEWARD_TEMPORAL_ADDRESS` and `STEWARD_NAMESPACE` are read as aliases of
 * `TEMPORAL_ADDRESS` and `TEMPORAL_NAMESPACE` for this release, with a warning when used.
 *
 * Files named by a setting are checked before connecting: a missing or unreadable certificate
 * or key is an error naming the setting and the file. Nothing secret (key, API key) is ever put
 * in a message or the description.
 */
import { accessSync, constants } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { type ClientConfigProfile, type ConfigDataSource, loadClientConfigProfile, toClientOptions } from '@temporalio/envconfig';
import type { TLSConfig } from '@temporalio/common/lib/internal-non-workflow';

/** The aliases read for one release: old name → the Temporal name it stands for. */
export const DEPRECATED_ALIASES = { STEWARD_TEMPORAL_ADDRESS: 'TEMPORAL_ADDRESS', STEWARD_NAMESPACE: 'TEMPORAL_NAMESPACE' } as const;

export const DEFAULT_TEMPORAL_ADDRESS = '127.0.0.1:7233';

export interface TemporalConnectionInput {
  /** The environment to read (default: process.env). */
  env?: NodeJS.ProcessEnv;
  /** The profile (else `$TEMPORAL_PROFILE`, else `default`). */
  profile?: string;
  /** The TOML config file (else `$TEMPORAL_CONFIG_FILE`, else ~/.config/temporalio/temporal.toml when it exists). */
  configFile?: string;
  /** Given explicitly (a CLI flag): wins over the profile and the environment. */
  address?: string;
  namespace?: string;
  /** Where deprecation notices go (default: stderr). */
  warn?: (message: string) => void;
}

export interface TemporalConnection {
  /** For `Connection.connect` (client) and `NativeConnection.connect` (worker). */
  options: { address: string; tls?: TLSConfig | boolean; apiKey?: string; metadata?: Record<string, string> };
  namespace: string;
  /** How it connects, for people and logs (never a secret): `temporal.example:7233 (mTLS, profile prod)`. */
  description: string;
  /** `plaintext`, `TLS` (server verified), or `mTLS` (a client certificate too). */
  security: 'plaintext' | 'TLS' | 'mTLS';
}

/** Raised for settings that cannot make a connection; the message names the setting and the fix. */
export class TemporalConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TemporalConfigError';
  }
}

const warned = new Set<string>();

/** The TLS file settings, as the environment names them and as the TOML profile does. */
const TLS_FILES = [
  { key: 'clientCert', env: 'TEMPORAL_TLS_CLIENT_CERT_PATH', toml: 'tls.client_cert_path', what: 'client certificate' },
  { key: 'clientKey', env: 'TEMPORAL_TLS_CLIENT_KEY_PATH', toml: 'tls.client_key_path', what: 'client key' },
  { key: 'serverCACert', env: 'TEMPORAL_TLS_SERVER_CA_CERT_PATH', toml: 'tls.server_ca_cert_path', what: 'server CA certificate' },
] as const;

/** Resolves the connection settings (reads no secret into a message; checks the files it names). */
export function temporalConnection(input: TemporalConnectionInput = {}): TemporalConnection {
  const source = input.env ?? process.env;
  const warn = input.warn ?? ((m: string) => process.stderr.write(`warning: ${m}\n`));
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(source)) if (v !== undefined) env[k] = v;
  for (const [old, name] of Object.entries(DEPRECATED_ALIASES)) {
    const v = env[old];
    if (v === undefined || v === '') continue;
    if (env[name] === undefined) env[name] = v;
    const key = `${old}=${v}`;
    if (!warned.has(key)) {
      warned.add(key);
      warn(
        env[name] === v
          ? `${old} is deprecated and read for this release only: set ${name} instead (the Temporal CLI and SDKs read it too)`
          : `${old} is deprecated and ignored here: ${name} is set too, and wins`,
      );
    }
  }
  const configFile = input.configFile ?? env.TEMPORAL_CONFIG_FILE;
  const profileName = input.profile ?? env.TEMPORAL_PROFILE;
  let profile: ClientConfigProfile;
  try {
    const defaultFile = join(env.HOME || homedir(), '.config', 'temporalio', 'temporal.toml');
    const readable = (f: string) => {
      try {
        accessSync(f, constants.R_OK);
        return true;
      } catch {
        return false;
      }
    };
    if (configFile !== undefined && !readable(configFile)) {
      throw new TemporalConfigError(`the Temporal config file ${configFile} (${input.configFile !== undefined ? '--config-file' : 'TEMPORAL_CONFIG_FILE'}) cannot be read`);
    }
    const file = configFile ?? (readable(defaultFile) ? defaultFile : undefined);
    profile = loadClientConfigProfile({
      ...(profileName !== undefined ? { profile: profileName } : {}),
      ...(file !== undefined ? { configSource: { path: file } } : { disableFile: true }),
      overrideEnvVars: env,
    });
    if (file === undefined && profileName !== undefined && profileName !== 'default') {
      throw new TemporalConfigError(`Temporal profile "${profileName}" (${input.profile !== undefined ? '--profile' : 'TEMPORAL_PROFILE'}) asked for, but there is no config file (TEMPORAL_CONFIG_FILE, or ${defaultFile})`);
    }
  } catch (e) {
    if (e instanceof TemporalConfigError) throw e;
    throw new TemporalConfigError(`cannot read the Temporal connection settings: ${(e as Error).message}${configFile ? ` (config file ${configFile})` : ''}`);
  }
  if (input.address !== undefined) profile.address = input.address;
  if (input.namespace !== undefined) profile.namespace = input.namespace;
  const address = profile.address ?? DEFAULT_TEMPORAL_ADDRESS;
  if (!/^[^\s:/]+:\d+$|^\[[0-9a-fA-F:]+\]:\d+$/.test(address)) {
    throw new TemporalConfigError(`the Temporal address "${address}" must be host:port (from ${input.address !== undefined ? '--address' : env.TEMPORAL_ADDRESS !== undefined ? 'TEMPORAL_ADDRESS' : 'the profile'})`);
  }
  profile.address = address;

  // Every file the TLS settings name must be readable: say which setting named it.
  for (const f of TLS_FILES) {
    const src = profile.tls?.[f.key] as ConfigDataSource | undefined;
    if (!src || !('path' in src)) continue;
    try {
      accessSync(src.path, constants.R_OK);
    } catch (e) {
      const by = env[f.env] === src.path ? f.env : `${f.toml} of profile "${profileName ?? 'default'}"${configFile ? ` in ${configFile}` : ''}`;
      throw new TemporalConfigError(`the Temporal TLS ${f.what} ${src.path} (${by}) cannot be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
  const hasCert = profile.tls?.clientCert !== undefined;
  const hasKey = profile.tls?.clientKey !== undefined;
  if (hasCert !== hasKey) {
    throw new TemporalConfigError(`the Temporal TLS settings name a client ${hasCert ? 'certificate but no key' : 'key but no certificate'}: set both ${TLS_FILES[0].env} and ${TLS_FILES[1].env} (or the profile's tls.client_cert_path and tls.client_key_path)`);
  }

  let connect;
  try {
    connect = toClientOptions(profile);
  } catch (e) {
    throw new TemporalConfigError(`cannot use the Temporal TLS settings: ${(e as Error).message}`);
  }
  const o = connect.connectionOptions;
  const tls = o.tls ?? undefined;
  const security: TemporalConnection['security'] = !tls ? 'plaintext' : typeof tls === 'object' && tls.clientCertPair ? 'mTLS' : 'TLS';
  const namespace = connect.namespace ?? 'default';
  const notes = [security, ...(o.apiKey ? ['API key'] : []), ...(profileName ? [`profile ${profileName}`] : [])];
  return {
    options: { address, ...(tls !== undefined ? { tls } : {}), ...(o.apiKey ? { apiKey: o.apiKey as string } : {}), ...(o.metadata ? { metadata: o.metadata as Record<string, string> } : {}) },
    namespace,
    description: `${address} (${notes.join(', ')}), namespace ${namespace}`,
    security,
  };
}
