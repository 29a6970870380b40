/**
 * Quorum arithmetic. Pure and deterministic: used by workflows, activities and the CLI alike.
 *
 * etcd needs a majority of voting members: quorum(n) = floor(n/2) + 1. The number of voting
 * members that may be down at once is n - quorum(n) = floor((n-1)/2), less those already
 * unhealthy. (`floor(n/2)`, as Kubespray's throttled restart uses, is wrong for even n:
 * 4 members with 2 down leave 2 < quorum 3.)
 */

export function quorum(voters: number): number {
  if (!Number.isInteger(voters) || voters < 1) throw new RangeError(`voting member count must be a positive integer, got ${voters}`);
  return Math.floor(voters / 2) + 1;
}

/** How many more voting members may go down without losing quorum (never negative). */
export function failureTolerance(voters: number, unhealthy = 0): number {
  return Math.max(0, voters - quorum(voters) - unhealthy);
}

/** An even voter count tolerates no more failures than the odd count below it, at a higher quorum. */
export function isEvenSizeWasteful(voters: number): boolean {
  return voters > 0 && voters % 2 === 0;
}
