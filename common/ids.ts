/**
 * Names that the client, the worker and the workflows must agree on: workflow ids, the task
 * queue, search attributes. Pure (no Node APIs), so every side may import it.
 */
import { SearchAttributeType, defineSearchAttributeKey } from '@temporalio/common';

export const DEFAULT_TASK_QUEUE = 'etcd-steward';

/** Every operation's workflow id starts with this; the cluster name follows (one operation per cluster, I9). */
export const OPERATION_ID_PREFIX = 'etcd-steward-';
/** Health checks may run beside an operation: their ids carry a random suffix. */
export const HEALTH_ID_PREFIX = 'etcd-steward-health-';
/** So may plans (`plan`, a dry run of an operation): random suffix too. */
export const PLAN_ID_PREFIX = 'etcd-steward-plan-';

/** The workflow id of a cluster's operation: one at a time per cluster. */
export function operationWorkflowId(cluster: string): string {
  return `${OPERATION_ID_PREFIX}${cluster}`;
}

/** The workflow types etcd-steward registers. */
export const OPERATION_TYPES = ['scaleOut', 'rollingRestart', 'scaleIn', 'replaceMember'] as const;
export type OperationType = (typeof OPERATION_TYPES)[number];

/**
 * Search attributes set when an operation starts, so `list` and the Web UI filter by cluster and
 * operation without parsing workflow ids. A namespace needs them registered once:
 *   temporal operator search-attribute create --name EtcdCluster --type Keyword --name EtcdOperation --type Keyword
 */
export const ETCD_CLUSTER = defineSearchAttributeKey('EtcdCluster', SearchAttributeType.KEYWORD);
export const ETCD_OPERATION = defineSearchAttributeKey('EtcdOperation', SearchAttributeType.KEYWORD);
export const SEARCH_ATTRIBUTES = [ETCD_CLUSTER, ETCD_OPERATION] as const;
