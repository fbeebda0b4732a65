import {
  DeletedError,
  FallbackError,
  formatHttpDate,
  joinName,
} from '@filetracker/shared-protocol/wire';
import { ForwardingStore } from './forwarding-store.js';
import type {
  DeleteResult,
  NameLookup,
  PutAdmission,
  PutRequest,
  PutResult,
  Store,
} from './store-api.js';

/**
 * Migration mode's say on a PUT (see {@link PutAdmission}): a tombstone of an absent name
 * refuses a version `<=` its version with a {@link DeletedError} (410), and a newer PUT
 * clears it. Also what `ft-migrate --into` puts with, so that an offline import after an
 * online start does not bring back what clients deleted meanwhile.
 */
export function tombstoneAdmission(store: Store): PutAdmission {
  return async (name: string, version: number, existing: NameLookup) => {
    const tombstone = await store.tombstone(name);
    if (tombstone !== undefined && existing === 'absent' && tombstone >= version) {
      // Nothing is stored, so there is no version to answer with (a 200 would make the
      // client believe in a name@version that cannot be read): see DeletedError.
      throw new DeletedError(
        `Deleted during the migration: versions up to ${formatHttpDate(tombstone)} are refused`,
      );
    }
    return tombstone !== undefined;
  };
}

/**
 * Migration mode (DESIGN.md "Online migration"), in one place: a {@link Store} whose writes
 * keep tombstones, wrapping the store it migrates into, and which reads go to the
 * fallback (a static server over a 1.x tree, or a filetracker 2.x server). The HTTP layer
 * uses it as its store and only turns {@link redirects} into a 307; asking the fallback is
 * `askFallback`'s job (a HEAD there). Reads pass through.
 */
export class MigrationMode extends ForwardingStore {
  readonly #askFallback: (name: string) => Promise<number | null>;
  readonly #warn: (details: Record<string, unknown>, message: string) => void;

  /**
   * `askFallback` gives the fallback's version of a name (a 1.x file's mtime, a 2.x
   * server's version), null when it lacks it, or throws a FallbackError when it cannot
   * answer (down, or too slow).
   */
  constructor(
    store: Store,
    askFallback: (name: string) => Promise<number | null>,
    warn: (details: Record<string, unknown>, message: string) => void = () => {},
  ) {
    super(store);
    this.#askFallback = askFallback;
    this.#warn = warn;
  }

  /**
   * Whether a read of a name the store lacks goes to the fallback: yes unless the name was
   * deleted during the migration (a tombstone), which answers 404.
   */
  async redirects(components: readonly string[]): Promise<boolean> {
    if (components.length === 0) return false;
    return (await this.inner.tombstone(joinName(components))) === undefined;
  }

  /**
   * {@link Store.put}, where a tombstone of the name makes a PUT with a version `<=` its
   * version store nothing and throw a {@link DeletedError} (410), and a newer PUT clears it.
   */
  override put(req: PutRequest): Promise<PutResult> {
    return this.inner.put(req, this.#admit);
  }

  readonly #admit = tombstoneAdmission(this.inner);

  /**
   * A DELETE in migration mode. The fallback is asked for the name's legacy version (under
   * the name's lock, so no PUT interleaves); if it has it at a version `<=` the request's, a
   * tombstone with the **fallback's** version is recorded, so the migrator cannot bring it
   * back while a re-upload in the same second still can. A name we hold is deleted as usual
   * either way. A name only the fallback has, at a version newer than the request's, is kept
   * and answered as found, like a held name newer than the request.
   *
   * When the fallback cannot be asked (`askFallback` throws a {@link FallbackError}: down,
   * or no answer in time), a name we hold is still deleted, and the tombstone gets the
   * **held** version H instead. The migrator can only bring back the legacy copy, at its
   * mtime L: if L <= H the tombstone stops it; if L > H, its PUT would have replaced the
   * held file anyway (the newer version wins), so the delete is ordered before it. In
   * practice L <= H: clients write at their current time, after the 1.x store was frozen,
   * and the migrator's own upload holds H = L, the very tombstone the fallback would have
   * given. The cost: a re-upload at a version <= H is refused (410) until migration mode
   * ends. A name we do not hold still needs the fallback (we cannot know whether it
   * exists), so its DELETE fails with the FallbackError (502/504).
   */
  override delete(components: readonly string[], version: number): Promise<DeleteResult> {
    const name = joinName(components);
    return this.inner.withName(components, async ({ existing, remove, putTombstone }) => {
      const held = typeof existing === 'object' ? existing : undefined;
      if (held && held.version > version) return { deleted: false, found: true };
      if (!held && (await this.inner.tombstone(name)) !== undefined) {
        return { deleted: false, found: false };
      }
      // Asked even for a name we hold: if the migrator has not reached it yet, only a
      // tombstone stops it from bringing the legacy copy back after this delete.
      let unanswered: FallbackError | undefined;
      const legacyVersion = await this.#askFallback(name).catch((err: unknown) => {
        if (!held || !(err instanceof FallbackError)) throw err;
        unanswered = err;
        return null;
      });
      if (held && unanswered !== undefined) {
        this.#warn(
          { name, version: held.version, err: unanswered },
          'the fallback did not answer: deleted a held name, tombstone at its version',
        );
        // The tombstone first: if the delete then fails, a tombstone beside a held link
        // changes nothing (it only stops PUTs of absent names), and the next PUT clears it.
        await putTombstone(held.version);
        await remove(held);
        return { deleted: true, found: true };
      }
      const legacyDeleted = legacyVersion !== null && legacyVersion <= version;
      // A legacy file newer than the DELETE exists and is kept, as a held name newer than
      // the DELETE is: found, not deleted (issue 18, item 4; it used to be a 404).
      if (!held && !legacyDeleted) return { deleted: false, found: legacyVersion !== null };
      // The tombstone before the link goes, for the same reason: a crash in between must
      // not leave a name that the migrator can bring back.
      if (legacyDeleted) await putTombstone(legacyVersion);
      if (held) await remove(held);
      return { deleted: true, found: true };
    });
  }
}
