/**
 * Error messages for people. Pure (no Node APIs), so workflows, the client and the CLI share it.
 */

/**
 * The innermost useful message of an error chain: walks `.cause` and keeps the deepest message
 * of an error that is not a mere wrapper ("Activity task failed", "Workflow execution failed").
 */
export function innermostMessage(err: unknown, isWrapper: (e: Error) => boolean = () => false): string {
  let msg = err instanceof Error ? err.message : String(err);
  for (let e: unknown = err; e instanceof Error; e = (e as { cause?: unknown }).cause) {
    if (!isWrapper(e) && e.message) msg = e.message;
  }
  return msg;
}
