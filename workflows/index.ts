// The workflows the worker registers. Deterministic code only: no I/O, no clocks, no Node APIs.
export { clusterHealth } from './health';
export { scaleOut } from './scaleOut';
