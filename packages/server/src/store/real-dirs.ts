import path from 'node:path';
import { LRUCache } from 'lru-cache';
import { lstat } from './fs-calls.js';

/**
 * What a directory under `links/` is: `real` (it and every directory above it are
 * directories, none a symlink), `missing` (one of them does not exist: nothing is under it
 * yet) or `blocked` (one of them is a symlink or a file, so a name under it is not ours).
 */
export type DirState = 'real' | 'missing' | 'blocked';

/**
 * Directories kept as checked. A directory's key is about 50 bytes; the cache's own arrays
 * cost about 30 bytes a slot: some 8 MB when full. A store has far fewer directories than
 * names, and a directory dropped from the cache only costs an lstat when next used.
 */
const KNOWN_DIRS = 100_000;

/**
 * Walks to names under `links/` without following a symlink on the way (issue 16 item 2):
 * `ln -s /some/dir links/evil` must not let `PUT /files/evil/x` replace `/some/dir/x`, nor
 * `/list/evil` list it. Node has no `openat2(RESOLVE_NO_SYMLINKS)`, so each directory of a
 * name is lstat'ed top-down, once: the directories found real are remembered, and a name
 * whose parent is remembered costs no call at all (a small PUT makes about ten, and this
 * one would be per level).
 *
 * The memory holds because nothing that runs with the store's lock turns a directory into
 * a symlink: ft-server makes directories (mkdir -p) and never removes them, and its own
 * symlinks point at blob files, which a path cannot go through (ENOTDIR). A hand edit that
 * swaps a checked directory for a symlink while the server runs is not seen until the
 * directory drops out of the cache or the server restarts; `links/` itself (where the
 * operator put the store) is trusted.
 */
export class RealDirs {
  readonly #root: string;
  readonly #known: LRUCache<string, true>;

  constructor(root: string, max = KNOWN_DIRS) {
    this.#root = root;
    this.#known = new LRUCache({ max });
  }

  /**
   * The state of the directory made of the first `depth` components (0: the root itself,
   * always real). Synchronous when the directory was found real before.
   */
  state(components: readonly string[], depth = components.length): DirState | Promise<DirState> {
    if (depth <= 0 || this.#known.get(keyOf(components, depth))) return 'real';
    return this.#check(components, depth);
  }

  /** Forgets every directory found real (the tree was removed behind our back). */
  clear(): void {
    this.#known.clear();
  }

  async #check(components: readonly string[], depth: number): Promise<DirState> {
    // The deepest directory known real: only those below it are looked at.
    let known = depth - 1;
    while (known > 0 && !this.#known.has(keyOf(components, known))) known--;
    for (let n = known + 1; n <= depth; n++) {
      let st;
      try {
        st = await lstat(path.join(this.#root, ...components.slice(0, n)));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENAMETOOLONG') return 'missing';
        // Only if something changed the tree since the level above was looked at.
        if (code === 'ENOTDIR' || code === 'ELOOP') return 'blocked';
        throw err;
      }
      if (!st.isDirectory()) return 'blocked';
      this.#known.set(keyOf(components, n), true);
    }
    return 'real';
  }
}

/** The first `depth` components joined with `/` (which no component holds). */
function keyOf(components: readonly string[], depth: number): string {
  let key = components[0]!;
  for (let i = 1; i < depth; i++) key += '/' + components[i]!;
  return key;
}
