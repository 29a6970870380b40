/**
 * Where a command's cluster comes from: a cluster spec (`--spec`) or a Kubespray inventory
 * (`--inventory`, with `--known-hosts`, `--cluster-name` and `--overlay`), read as Kubespray
 * resolves it (spec/kubespray.ts). Exactly one of the two.
 */
import type { Command } from 'commander';
import { type ClusterSpec, SpecError } from '../../spec/cluster';
import { type InventoryHost, loadInventory } from '../../spec/kubespray';
import { loadClusterSpec } from '../index';
import { readDoc } from './shared';

export interface ClusterSourceOptions {
  spec?: string;
  inventory?: string;
  knownHosts?: string;
  clusterName?: string;
  overlay?: string;
}

export interface ClusterSource {
  spec: ClusterSpec;
  /** Set when the spec came from an inventory: its etcd hosts, mapped. */
  inventory?: { file: string; hosts: InventoryHost[] };
}

/** Adds --spec and the inventory options to a command. */
export function clusterSourceOptions(cmd: Command): Command {
  return cmd
    .option('--spec <file>', 'the cluster spec (YAML or JSON)')
    .option('--inventory <file>', "a Kubespray inventory (inventory.ini or hosts.yaml, with its group_vars) instead of --spec: the etcd group's hosts are the members")
    .option('--known-hosts <file>', 'with --inventory: where the hosts\' SSH keys are pinned from (default ~/.ssh/known_hosts)')
    .option('--cluster-name <name>', 'with --inventory: the cluster\'s name (default: the inventory\'s directory name)')
    .option('--overlay <file>', 'with --inventory: a partial spec (YAML/JSON: name, token, layout, service, ca) laid over what the inventory implies');
}

/** The cluster a command names, from --spec or --inventory (one of them). */
export function loadClusterSource(o: ClusterSourceOptions): ClusterSource {
  if (o.spec && o.inventory) throw new SpecError('options', ['--spec and --inventory: give one of them']);
  if (!o.spec && !o.inventory) throw new SpecError('options', ['the cluster: give --spec FILE (a cluster spec) or --inventory FILE (a Kubespray inventory)']);
  const inventoryOnly = (['knownHosts', 'clusterName', 'overlay'] as const).filter((k) => o[k] !== undefined && !o.inventory);
  if (inventoryOnly.length) throw new SpecError('options', inventoryOnly.map((k) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} goes with --inventory`));
  if (o.spec) return { spec: loadClusterSpec(o.spec) };
  const overlay = o.overlay === undefined ? undefined : readDoc(o.overlay);
  if (overlay !== undefined && (typeof overlay !== 'object' || overlay === null || Array.isArray(overlay))) throw new SpecError(o.overlay!, ['must be a YAML or JSON object (name, token, layout, service, ca)']);
  const r = loadInventory(o.inventory!, {
    ...(o.knownHosts ? { knownHosts: o.knownHosts } : {}),
    ...(o.clusterName ? { clusterName: o.clusterName } : {}),
    ...(overlay ? { overlay: overlay as Record<string, unknown> } : {}),
  });
  return { spec: r.spec, inventory: { file: o.inventory!, hosts: r.hosts } };
}

/** A member named by its etcd name or, with an inventory, by its inventory hostname. */
export function memberName(source: ClusterSource, nameOrHost: string): string {
  return source.inventory?.hosts.find((h) => h.host === nameOrHost)?.member ?? nameOrHost;
}

/** "etcd4 (node4)" with an inventory, else the name. */
export function describeMember(source: ClusterSource, name: string): string {
  const h = source.inventory?.hosts.find((x) => x.member === name);
  return h && h.host !== name ? `${name} (${h.host})` : name;
}
