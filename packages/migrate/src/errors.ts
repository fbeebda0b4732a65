/** Codes of {@link MigrateConfigError}: part of the contract, unlike the messages. */
export type MigrateConfigErrorCode =
  | 'FILES_NOT_FOUND'
  | 'BAD_ROOT'
  | 'SERVER_UNREACHABLE'
  | 'NOT_A_FILETRACKER_SERVER'
  | 'STATE_MISMATCH'
  | 'STATE_UNUSABLE'
  | 'REPORT_UNWRITABLE';

/**
 * The command line or the setup cannot work (FILES missing, server unreachable, a state
 * file of another migration): nothing was uploaded. The message says what failed and what
 * to do; the CLI prints it on one line and exits 2.
 */
export class MigrateConfigError extends Error {
  readonly code: MigrateConfigErrorCode;

  constructor(code: MigrateConfigErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MigrateConfigError';
    this.code = code;
  }
}
