// The workflows the worker registers. Deterministic code only: no I/O, no clocks, no Node APIs
// (npm run lint enforces it). Each operation is a step list on the kernel (kernel.ts).
export { clusterHealth } from './health';
export { planOperation } from './plan';
export { scaleOut } from './scaleOut';
export { rollingRestart } from './rollingRestart';
export { scaleIn } from './scaleIn';
export { replaceMember } from './replaceMember';
