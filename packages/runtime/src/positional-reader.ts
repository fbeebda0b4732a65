/**
 * What {@link sendFile} and {@link readAhead} read from: positional reads, then close. A
 * `FileHandle` is one; so is a handle on an object in an S3 bucket (ranged GETs).
 */
export interface PositionalReader {
  read(
    buffer: Buffer,
    offset: number,
    length: number,
    position: number,
  ): Promise<{ bytesRead: number; buffer: Buffer }>;
  close(): Promise<void>;
}
