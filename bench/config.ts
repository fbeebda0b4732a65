const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

/** Sizes, counts and durations of one bench run. */
export interface BenchConfig {
  short: boolean;
  /** Rounds of each side-by-side comparison; figures are medians over them. */
  rounds: number;
  get: {
    files: number;
    minBytes: number;
    maxBytes: number;
    connections: number[];
    warmupS: number;
    durationS: number;
  };
  put: {
    /** Rounds here (cheap and noisy: fsync times vary with other work on the disk). */
    rounds: number;
    connections: number[];
    durationS: number;
    /** Distinct bodies prepared for wrk; a run that sends more repeats names (noted). */
    pool: number;
    /**
     * Thread counts the bare store script is swept over in round 1 (issue 19: the limit at
     * that script's best), in both call styles: libuv's pool size for async calls, worker
     * threads for sync calls. From libuv's default (4), doubling, up to the most
     * connections (64): one thread per file in flight, where every fsync can wait at once.
     * Only counts up to the connections are run: no more files are in flight than that, so
     * more threads would have nothing to do.
     */
    limitThreads: number[];
  };
  large: { bytes: number };
  /** The scale-out section (PostgreSQL + Swift beside the local store); rounds: `rounds`. */
  scaleout: {
    /** Small files seeded for GET (1-10 KiB, as `get`). */
    files: number;
    /** wrk connections in all (split between the ports when 2 processes serve). */
    connections: number;
    warmupS: number;
    durationS: number;
    /** Distinct PUT bodies per wrk run (a run that sends more repeats names: noted). */
    putSlice: number;
    /** Sequential bare S3 PUTs and GETs of small objects per round (the store's latency). */
    s3Requests: number;
    largeBytes: number;
  };
  memory: { uploads: number; bytes: number };
  migrate: {
    smallFiles: number;
    largeFiles: number;
    largeBytes: number;
    /** -j values tried on the small tree (the default of ft-migrate is added). */
    jobs: number[];
    /**
     * -j values at which ft-migrate's files/s is compared with ft-server's own PUT rate
     * over wrk (as many connections) for the same gzip bodies (issue 15, item 1).
     */
    wrkJobs: number[];
    /** Runs of ft-migrate on an empty tree, for its start-up time. */
    startupRuns: number;
    /** -j values tried on the large tree. */
    largeJobs: number[];
    /** gzip levels whose pipeline limit is measured, to choose the client's level. */
    gzipLevels: number[];
    /** Tree sizes of the migrator's peak-RSS measurement (flat in the file count?). */
    rssFiles: number[];
  };
}

/** The full run (`pnpm bench`): the sizes, about 15 minutes on 2 busy cores. */
export const FULL: BenchConfig = {
  short: false,
  rounds: 3,
  get: {
    files: 3000,
    minBytes: 1 * KiB,
    maxBytes: 10 * KiB,
    connections: [8, 64],
    warmupS: 2,
    durationS: 5,
  },
  put: {
    rounds: 5,
    connections: [8, 64],
    durationS: 5,
    pool: 40_000,
    limitThreads: [4, 8, 16, 32, 64],
  },
  large: { bytes: 1 * GiB },
  scaleout: {
    files: 500,
    connections: 32,
    warmupS: 2,
    durationS: 5,
    putSlice: 3000,
    s3Requests: 50,
    largeBytes: 256 * MiB,
  },
  memory: { uploads: 64, bytes: 1 * GiB },
  migrate: {
    smallFiles: 20_000,
    largeFiles: 4,
    largeBytes: 256 * MiB,
    jobs: [4, 16, 64],
    wrkJobs: [16, 64],
    startupRuns: 5,
    largeJobs: [1, 2, 4],
    gzipLevels: [1, 6],
    rssFiles: [50_000, 200_000],
  },
};

/** `--short` / BENCH_SHORT=1: every section at toy sizes, one round, about a minute. */
export const SHORT: BenchConfig = {
  short: true,
  rounds: 1,
  get: {
    files: 300,
    minBytes: 1 * KiB,
    maxBytes: 10 * KiB,
    connections: [8, 64],
    warmupS: 1,
    durationS: 1,
  },
  put: {
    rounds: 1,
    connections: [8, 64],
    durationS: 1,
    pool: 8000,
    // Both styles at the fewest and the most threads: the sweep's code, not its figures.
    limitThreads: [4, 64],
  },
  large: { bytes: 64 * MiB },
  scaleout: {
    files: 100,
    connections: 16,
    warmupS: 1,
    // A scale-out PUT takes most of a second on a busy machine: 1 s may complete none.
    durationS: 3,
    putSlice: 1000,
    s3Requests: 10,
    largeBytes: 16 * MiB,
  },
  memory: { uploads: 8, bytes: 32 * MiB },
  migrate: {
    smallFiles: 1000,
    largeFiles: 2,
    largeBytes: 16 * MiB,
    jobs: [16],
    wrkJobs: [16],
    startupRuns: 2,
    largeJobs: [2],
    gzipLevels: [6],
    rssFiles: [500, 2000],
  },
};

export const UNITS = { KiB, MiB, GiB };
